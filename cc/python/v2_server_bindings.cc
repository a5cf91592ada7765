// SPDX-License-Identifier: Apache-2.0
// The server side of the v2 codec (cc/core/v2_server_codec.h) for
// tf_graphpipe.server.v2_wire: requests decoded into arrays that view the
// body (JSON `data` into storage the arrays own), answers encoded into the
// parts an HTTP layer writes in order (numeric outputs referenced, not
// copied). Failures become tf_graphpipe.errors exceptions through the same
// table as every other binding: the caller's mistakes are ValueError
// (kInvalidArgument), the model's outputs that cannot be sent GraphPipeError
// (kInternal). The GIL is released while large bodies are decoded or
// encoded.
#include "cc/python/v2_server_bindings.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <climits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cc/core/v2_server_codec.h"
#include "cc/python/numpy_views.h"

namespace py = pybind11;

namespace tf_graphpipe {
namespace {

// Below this many bytes of JSON (or BYTES elements) decoding or encoding
// takes microseconds: cheaper than handing the GIL to another thread and
// waiting to take it back. Binary numeric tensors cost nothing here (views
// and references), whatever their size.
constexpr size_t kReleaseGilBytes = 64 * 1024;

py::str Utf8(std::string_view text) {
  PyObject* decoded = PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "replace");
  if (decoded == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(decoded);
}

// As native_module.cc raises: the exception tf_graphpipe.errors builds.
[[noreturn]] void Raise(const Status& status) {
  py::object error = py::module_::import("tf_graphpipe.errors")
                         .attr("_from_native")(static_cast<int>(status.code()), Utf8(status.message()), 0,
                                               py::none());
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error.ptr())), error.ptr());
  throw py::error_already_set();
}

// JSON `data` a request carried, decoded: the base of the arrays viewing it.
struct V2RequestStorage {
  std::vector<ByteBuffer> buffers;
};

// An encoded answer whose BYTES blobs the answer's parts view.
struct V2AnswerBytes {
  V2EncodedAnswer answer;
};

// A contiguous, exported view of a bytes-like body, kept alive as the base
// of the arrays viewing it (a memoryview pins a bytearray's size).
struct Body {
  py::object view;
  const uint8_t* data = nullptr;
  size_t size = 0;
  bool writeable = false;
};

Body ExportBody(py::handle object) {
  PyObject* view = PyMemoryView_FromObject(object.ptr());
  if (view == nullptr) throw py::error_already_set();
  Body out{py::reinterpret_steal<py::object>(view)};
  Py_buffer* buffer = PyMemoryView_GET_BUFFER(view);
  if (!PyBuffer_IsContiguous(buffer, 'C')) throw py::value_error("a v2 request body must be contiguous");
  out.data = static_cast<const uint8_t*>(buffer->buf);
  out.size = static_cast<size_t>(buffer->len);
  out.writeable = buffer->readonly == 0;
  return out;
}

// (id, input_names, inputs, output_names, output_binary, binary_default,
//  timeout_us, priority), the fields of v2_wire.V2Request in order.
py::tuple RequestTuple(V2InferRequest& request, const Body& body) {
  py::object storage = py::none();
  if (!request.storage.empty()) {
    storage = py::cast(std::make_unique<V2RequestStorage>(V2RequestStorage{std::move(request.storage)}));
  }
  py::list names;
  py::list inputs;
  for (size_t i = 0; i < request.inputs.size(); ++i) {
    const TensorView& view = request.inputs[i];
    const bool in_body = view.data != nullptr && view.data >= body.data && view.data < body.data + body.size;
    names.append(Utf8(request.input_names[i]));
    inputs.append(in_body ? ArrayOfView(view, body.view, body.writeable) : ArrayOfView(view, storage, true));
  }
  py::list output_names;
  for (const std::string& name : request.output_names) output_names.append(Utf8(name));
  py::list output_binary;
  for (bool binary : request.output_binary) output_binary.append(py::bool_(binary));
  const auto optional_int = [](const std::optional<uint64_t>& v) {
    return v ? py::object(py::int_(*v)) : py::object(py::none());
  };
  return py::make_tuple(request.id ? py::object(Utf8(*request.id)) : py::object(py::none()), names, inputs,
                        output_names, output_binary, py::bool_(request.binary_default),
                        optional_int(request.timeout_us), optional_int(request.priority));
}

// A Python int as the int64 the decoder range-checks (saturating: any
// value past int64 is out of range all the same).
std::optional<int64_t> HeaderLength(py::handle value) {
  if (value.is_none()) return std::nullopt;
  int overflow = 0;
  const long long n = PyLong_AsLongLongAndOverflow(value.ptr(), &overflow);
  if (n == -1 && PyErr_Occurred()) throw py::error_already_set();
  if (overflow != 0) return overflow > 0 ? LLONG_MAX : LLONG_MIN;
  return static_cast<int64_t>(n);
}

py::tuple DecodeV2RequestPy(py::handle data, py::handle header_length) {
  const std::optional<int64_t> length = HeaderLength(header_length);
  const Body body = ExportBody(data);
  V2InferRequest request;
  Status status;
  const uint64_t json_size = length && *length >= 0 ? static_cast<uint64_t>(*length) : body.size;
  if (json_size >= kReleaseGilBytes) {
    py::gil_scoped_release release;
    status = DecodeV2InferRequest(body.data, body.size, length, &request);
  } else {
    status = DecodeV2InferRequest(body.data, body.size, length, &request);
  }
  if (!status.ok()) Raise(status);
  return RequestTuple(request, body);
}

py::tuple DecodeV2RawBinaryRequestPy(py::handle data, const std::string& input_name, int type_id,
                                     const std::optional<std::vector<int64_t>>& shape) {
  const Body body = ExportBody(data);
  const DType type = type_id >= 0 && type_id <= kMaxDType ? static_cast<DType>(type_id) : DType::kNull;
  V2InferRequest request;
  Status status;
  const auto decode = [&] {
    status = DecodeV2RawBinaryRequest(body.data, body.size, input_name, type, shape ? &*shape : nullptr,
                                      &request);
  };
  if (type == DType::kBool && body.size >= kReleaseGilBytes) {  // else a view: O(1) in the body's size
    py::gil_scoped_release release;
    decode();
  } else {
    decode();
  }
  if (!status.ok()) Raise(status);
  return RequestTuple(request, body);
}

// A flat uint8 array over `bytes`, with `base` keeping them alive: what the
// HTTP layer writes (memoryview(part).cast("B") works on any dtype's bytes).
py::array BytesPart(const BytesSpan& bytes, py::handle base) {
  return py::array(py::dtype::of<uint8_t>(), {static_cast<py::ssize_t>(bytes.size)}, {1}, bytes.data, base);
}

// (parts, json_size or None, length): parts[0] is the JSON header (bytes),
// then one flat uint8 array per binary output.
py::tuple EncodeV2AnswerPy(const std::string& model_name, const std::string& model_version,
                           const std::optional<std::string>& id, const std::vector<std::string>& output_names,
                           const py::list& outputs, const py::list& type_ids, const std::vector<bool>& binary,
                           bool binary_default) {
  V2AnswerSpec spec;
  // The arrays (converted ones too) live as long as the parts viewing them.
  ArrayViews arrays;
  try {
    arrays = ViewsOfArrays(outputs, type_ids);
    spec.outputs = arrays.views;
  } catch (const py::builtin_exception& e) {  // an output that is not a tensor: the model's
    Raise(Status(Code::kInternal, e.what()));
  } catch (py::error_already_set& e) {
    Raise(Status(Code::kInternal, e.what()));
  }
  spec.model_name = model_name;
  spec.model_version = model_version;
  if (id) spec.id = *id;
  spec.output_names.assign(output_names.begin(), output_names.end());
  spec.binary = binary;
  spec.binary_default = binary_default;
  size_t work = 0;  // bytes written as JSON or into BYTES blobs
  for (size_t i = 0; i < spec.outputs.size(); ++i) {
    const TensorView& view = spec.outputs[i];
    const bool as_blob = i < binary.size() ? binary[i] : binary_default;
    if (!as_blob) work += view.nbytes + view.strings.size() * 8;
    for (std::string_view s : view.strings) work += s.size();
  }

  auto encoded = std::make_unique<V2AnswerBytes>();
  Status status;
  if (work >= kReleaseGilBytes) {
    py::gil_scoped_release release;
    status = EncodeV2InferAnswer(spec, &encoded->answer);
  } else {
    status = EncodeV2InferAnswer(spec, &encoded->answer);
  }
  if (!status.ok()) Raise(status);

  const V2EncodedAnswer& answer = encoded->answer;
  const size_t length = answer.size();
  const py::object json_size = answer.binary() ? py::object(py::int_(answer.header().size())) : py::object(py::none());
  py::list parts;
  parts.append(py::bytes(answer.header()));
  py::object owner = py::none();
  for (const V2EncodedAnswer::Blob& blob : answer.blobs()) {
    if (blob.output != V2EncodedAnswer::kOwned) {
      parts.append(BytesPart(blob.bytes, arrays.arrays[blob.output]));
      continue;
    }
    if (owner.is_none()) owner = py::cast(std::move(encoded));  // the answer's address stays put
    parts.append(BytesPart(blob.bytes, owner));
  }
  return py::make_tuple(parts, json_size, length);
}

}  // namespace

void RegisterV2Server(py::module_& m) {
  py::class_<V2RequestStorage>(m, "V2RequestStorage", "JSON data of a v2 request, decoded (arrays view it).");
  py::class_<V2AnswerBytes>(m, "V2AnswerBytes", "BYTES blobs of an encoded v2 answer (its parts view them).");
  m.def("decode_v2_request", &DecodeV2RequestPy, py::arg("body"), py::arg("header_length"),
        "Decodes a v2 infer request body (header_length: the Inference-Header-Content-Length, None when "
        "absent): (id, input_names, inputs, output_names, output_binary, binary_default, timeout_us, "
        "priority). Binary inputs view the body. Raises ValueError naming what is wrong.");
  m.def("decode_v2_raw_binary_request", &DecodeV2RawBinaryRequestPy, py::arg("body"), py::arg("input_name"),
        py::arg("type_id"), py::arg("shape"),
        "Decodes a raw binary request (Inference-Header-Content-Length: 0) for a model's one input of "
        "declared type id (0: undeclared) and shape (None: undeclared; -1: unknown): the same tuple.");
  m.def("encode_v2_answer", &EncodeV2AnswerPy, py::arg("model_name"), py::arg("model_version"), py::arg("id"),
        py::arg("output_names"), py::arg("outputs"), py::arg("type_ids"), py::arg("binary"),
        py::arg("binary_default"),
        "Encodes a v2 infer answer: (parts, json_size or None, length). ValueError when the request asked "
        "for JSON that cannot be (FP16, BF16); GraphPipeError for outputs that cannot be sent.");
}

}  // namespace tf_graphpipe
