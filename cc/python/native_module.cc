// SPDX-License-Identifier: Apache-2.0
// tf_graphpipe._native: thin bindings over cc/core. Every failure becomes an
// exception built by tf_graphpipe.errors (the one Python-side mapping); the
// GIL is released while bytes are copied or moved over the network.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cc/core/call_plan.h"
#include "cc/core/codec.h"
#include "cc/core/graphpipe_answer.h"
#include "cc/core/http_client.h"
#include "cc/core/v2_answer.h"
#include "cc/core/v2_codec.h"
#include "cc/python/numpy_views.h"
#include "cc/python/v2_server_bindings.h"

namespace py = pybind11;

namespace tf_graphpipe {
namespace {

// Text that came from the network: invalid UTF-8 is replaced, not raised.
py::str Utf8(std::string_view text) {
  PyObject* decoded =
      PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "replace");
  if (decoded == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(decoded);
}

[[noreturn]] void Raise(const Status& status) {
  const RemoteDetail& remote = status.remote();
  py::object error = py::module_::import("tf_graphpipe.errors")
                         .attr("_from_native")(
                             static_cast<int>(status.code()), Utf8(status.message()),
                             remote.http_status,
                             remote.has_error_code ? py::object(py::int_(remote.error_code))
                                                   : py::object(py::none()));
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error.ptr())), error.ptr());
  throw py::error_already_set();
}

void RaiseIfError(const Status& status) {
  if (!status.ok()) Raise(status);
}

// An encoded flatbuffer handed to Python: read-only bytes, no copy. A
// message encoded with copy=False references its large inputs (the arrays,
// converted ones included, are kept in `keepalive`) and is flattened on
// first access to its bytes.
struct Message {
  EncodedMessage encoded;
  std::vector<py::array> keepalive;

  const EncodedMessage& Bytes() {
    if (!encoded.contiguous()) {
      py::gil_scoped_release release;
      encoded.Flatten();
    }
    keepalive.clear();
    return encoded;
  }
};

// A received body that decoded arrays view into (and, for v2 answers that
// carried JSON data, the decoded tensors).
struct ReceivedBody {
  ByteBuffer bytes;
  std::vector<ByteBuffer> storage;
};

// The protocol argument of the bindings: None means "auto" (from the URL).
ProtocolChoice ProtocolArgument(const py::object& protocol) {
  ProtocolChoice choice = ProtocolChoice::kAuto;
  if (protocol.is_none()) return choice;
  Status parsed = ParseProtocolChoice(protocol.cast<std::string>(), &choice);
  if (!parsed.ok()) throw py::value_error(parsed.message());
  return choice;
}

std::vector<std::string_view> NameViews(const std::vector<std::string>& names) {
  return std::vector<std::string_view>(names.begin(), names.end());
}

py::list ToStrList(const std::vector<std::string_view>& items) {
  py::list out;
  for (std::string_view s : items) out.append(Utf8(s));
  return out;
}

py::list ArraysOfViews(const std::vector<TensorView>& views, py::handle owner, bool writeable) {
  py::list out;
  for (const TensorView& v : views) out.append(ArrayOfView(v, owner, writeable));
  return out;
}

py::list IOMetadataList(const std::vector<IOMetadata>& list) {
  py::list out;
  for (const IOMetadata& m : list) {
    py::dict entry;
    entry["name"] = Utf8(m.name);
    entry["description"] = Utf8(m.description);
    entry["shape"] = m.shape;
    entry["type"] = static_cast<int>(m.type);
    out.append(entry);
  }
  return out;
}

py::dict MetadataDict(const ModelMetadata& m) {
  py::dict out;
  out["name"] = Utf8(m.name);
  out["version"] = Utf8(m.version);
  out["server"] = Utf8(m.server);
  out["description"] = Utf8(m.description);
  out["inputs"] = IOMetadataList(m.inputs);
  out["outputs"] = IOMetadataList(m.outputs);
  return out;
}

std::vector<IOMetadata> IOMetadataFromList(const py::list& list) {
  std::vector<IOMetadata> out;
  for (py::handle item : list) {
    py::dict d = item.cast<py::dict>();
    IOMetadata m;
    m.name = d["name"].cast<std::string>();
    m.description = d.contains("description") ? d["description"].cast<std::string>() : "";
    m.shape = d["shape"].cast<std::vector<int64_t>>();
    m.type = static_cast<DType>(d["type"].cast<int>());
    out.push_back(std::move(m));
  }
  return out;
}

// A contiguous, exported view of any bytes-like object, kept alive as the
// base of the arrays viewing it (a memoryview pins a bytearray's size).
struct BytesLike {
  py::object view;
  const uint8_t* data;
  size_t size;
  bool writeable;
};

BytesLike ExportBytes(py::handle object) {
  PyObject* view = PyMemoryView_FromObject(object.ptr());
  if (view == nullptr) throw py::error_already_set();
  BytesLike out{py::reinterpret_steal<py::object>(view), nullptr, 0, false};
  Py_buffer* buffer = PyMemoryView_GET_BUFFER(view);
  if (!PyBuffer_IsContiguous(buffer, 'C')) throw py::value_error("buffer must be contiguous");
  out.data = static_cast<const uint8_t*>(buffer->buf);
  out.size = static_cast<size_t>(buffer->len);
  out.writeable = buffer->readonly == 0;
  return out;
}

// One call of the model at `url` through the call plan, as the op makes it;
// the outputs as arrays viewing the received body.
// The credentials and traceparent keyword arguments of call() and metadata().
void SetCredentials(const py::dict& credentials, CallOptions* options) {
  auto text = [&credentials](const char* key) {
    return credentials.contains(key) && !credentials[key].is_none() ? credentials[key].cast<std::string>()
                                                                    : std::string();
  };
  CallCredentials& c = options->credentials;
  if (credentials.contains("headers") && !credentials["headers"].is_none()) {
    c.headers = credentials["headers"].cast<std::vector<std::string>>();
  }
  c.auth_token_env = text("auth_token_env");
  c.auth_token_file = text("auth_token_file");
  c.tls.ca_file = text("ca_file");
  c.tls.client_cert = text("client_cert");
  c.tls.client_key = text("client_key");
  options->traceparent = text("traceparent");
}

py::list Call(const std::string& url, const py::object& protocol, const py::list& inputs,
              const py::list& type_ids, std::vector<std::string> input_names,
              std::vector<std::string> output_names, const py::bytes& config, bool binary,
              double timeout, int retries, size_t max_response_bytes, const py::dict& credentials) {
  auto options = std::make_shared<CallOptions>();
  SetCredentials(credentials, options.get());
  options->protocol = ProtocolArgument(protocol);
  options->input_names = std::move(input_names);
  options->output_names = std::move(output_names);
  options->config = std::string(config);
  options->v2_binary = binary;
  options->retries = retries;
  options->max_response_bytes = max_response_bytes;
  // Alive, with any converted input, until the call is done: large inputs
  // are sent straight from their memory.
  ArrayViews arrays = ViewsOfArrays(inputs, type_ids);
  RemoteCall call(std::move(options), url, std::move(arrays.views), DeadlineAfter(timeout));
  auto body = std::make_unique<ReceivedBody>();
  Status status;
  {
    py::gil_scoped_release release;
    status = call.Run(&HttpClient::Shared());
    if (status.ok()) {
      AnswerBytes answer = call.TakeAnswerBytes();  // keeps its addresses: views stay valid
      body->bytes = std::move(answer.body);
      body->storage = std::move(answer.storage);
    }
  }
  RaiseIfError(status);
  py::object owner = py::cast(std::move(body));
  return ArraysOfViews(call.outputs(), owner, true);
}

// The model's metadata (for v2, also the input order later calls use).
py::dict Metadata(const std::string& url, const py::object& protocol, double timeout,
                  int retries, size_t max_response_bytes, const py::dict& credentials) {
  CallOptions options;
  SetCredentials(credentials, &options);
  options.protocol = ProtocolArgument(protocol);
  options.retries = retries;
  options.max_response_bytes = max_response_bytes;
  ModelMetadata metadata;
  Status status;
  {
    py::gil_scoped_release release;
    status = ReadModelMetadata(&HttpClient::Shared(), url, options, DeadlineAfter(timeout),
                               &metadata);
  }
  RaiseIfError(status);
  return MetadataDict(metadata);
}

// The protocol a call to `url` speaks: "graphpipe" or "v2" (the call plan's
// rule); ValueError for a protocol the URL cannot speak.
std::string ResolveProtocolPy(const std::string& url, const py::object& protocol) {
  CallTarget target;
  Status resolved = ResolveTarget(url, ProtocolArgument(protocol), &target);
  if (!resolved.ok()) throw py::value_error(resolved.message());
  return ProtocolName(target.protocol);
}

// ---- Open Inference Protocol (v2) ----

py::object V2ModelUrlPy(const std::string& url) {
  V2ModelUrl parsed;
  if (!ParseV2ModelUrl(url, &parsed)) return py::none();
  py::dict out;
  out["model"] = Utf8(parsed.model);
  out["metadata_url"] = parsed.metadata_url;
  out["infer_url"] = parsed.infer_url;
  return out;
}

// (body: bytes, json_size: int): the request Client.infer sends, flattened.
py::tuple EncodeV2InferRequestPy(const py::list& inputs, const py::list& type_ids,
                                 const std::vector<std::string>& input_names,
                                 const std::vector<std::string>& output_names, bool binary) {
  V2InferRequestSpec spec;
  const ArrayViews arrays = ViewsOfArrays(inputs, type_ids);  // alive while encoding
  spec.inputs = arrays.views;
  spec.input_names = NameViews(input_names);
  spec.output_names = NameViews(output_names);
  spec.binary = binary;
  V2Message message;
  Status status;
  {
    py::gil_scoped_release release;
    status = EncodeV2InferRequest(spec, TensorBytes::kCopy, &message);
    if (status.ok()) message.Flatten();
  }
  RaiseIfError(status);
  std::vector<BytesSpan> parts = message.Parts();
  py::bytes bytes = parts.empty() ? py::bytes("", 0)
                                  : py::bytes(reinterpret_cast<const char*>(parts[0].data),
                                              parts[0].size);
  return py::make_tuple(bytes, message.json_size());
}

// An answer as received (status, body, Inference-Header-Content-Length) ->
// (names, arrays), through the same code the Client uses.
py::tuple DecodeV2AnswerPy(const std::string& url, long http_status, const py::bytes& data,
                           py::object header_length, const std::vector<std::string>& output_names) {
  auto body = std::make_unique<ReceivedBody>();
  HttpResponse response;
  response.status = http_status;
  std::string_view bytes = data;
  body->bytes.Reserve(std::max<size_t>(bytes.size(), 1));
  body->bytes.Append(bytes.data(), bytes.size());
  response.body = std::move(body->bytes);
  if (!header_length.is_none()) {
    response.headers.emplace_back("inference-header-content-length",
                                  py::str(header_length).cast<std::string>());
  }
  V2InferResponse answer;
  Status status = ReadV2InferAnswer(url, response, NameViews(output_names), &answer);
  body->bytes = std::move(response.body);
  body->storage = std::move(answer.storage);
  RaiseIfError(status);
  py::list names;
  for (const std::string& name : answer.output_names) names.append(Utf8(name));
  py::object owner = py::cast(std::move(body));
  return py::make_tuple(names, ArraysOfViews(answer.outputs, owner, true));
}

py::dict DecodeV2MetadataPy(const std::string& url, long http_status, const py::bytes& data) {
  HttpResponse response;
  response.status = http_status;
  std::string_view bytes = data;
  response.body.Reserve(std::max<size_t>(bytes.size(), 1));
  response.body.Append(bytes.data(), bytes.size());
  ModelMetadata metadata;
  RaiseIfError(ReadV2MetadataAnswer(url, response, &metadata));
  return MetadataDict(metadata);
}

std::unique_ptr<Message> EncodeInferRequestPy(const py::list& inputs, const py::list& wire_types,
                                              const std::vector<std::string>& input_names,
                                              const std::vector<std::string>& output_names,
                                              const py::bytes& config, bool copy) {
  InferRequestSpec spec;
  ArrayViews arrays = ViewsOfArrays(inputs, wire_types);  // alive while encoding, or longer
  spec.inputs = arrays.views;
  spec.input_names = NameViews(input_names);
  spec.output_names = NameViews(output_names);
  std::string_view config_view = config;
  spec.config = config_view;
  auto out = std::make_unique<Message>();
  Status status;
  {
    py::gil_scoped_release release;
    status = EncodeInferRequest(spec, copy ? TensorBytes::kCopy : TensorBytes::kReference,
                                &out->encoded);
  }
  RaiseIfError(status);
  // A referencing message reads its large inputs when its bytes are asked for.
  if (!out->encoded.contiguous()) out->keepalive = std::move(arrays.arrays);
  return out;
}

std::unique_ptr<Message> EncodeInferResponsePy(const py::list& outputs, const py::list& wire_types) {
  const ArrayViews arrays = ViewsOfArrays(outputs, wire_types);  // alive while encoding
  auto out = std::make_unique<Message>();
  Status status;
  {
    py::gil_scoped_release release;
    status = EncodeInferResponse(arrays.views, &out->encoded);
  }
  RaiseIfError(status);
  return out;
}

py::list DecodeInferResponsePy(py::handle data) {
  BytesLike bytes = ExportBytes(data);
  InferResponseView answer;
  RaiseIfError(DecodeInferResponse(bytes.data, bytes.size, &answer));
  if (!answer.errors.empty()) {
    RemoteDetail detail;
    detail.http_status = 200;
    detail.has_error_code = true;
    detail.error_code = answer.errors.front().code;
    Raise(Status(Code::kInvalidArgument, answer.errors.front().message, detail));
  }
  return ArraysOfViews(answer.outputs, bytes.view, bytes.writeable);
}

py::dict DecodeMetadataResponsePy(py::handle data) {
  BytesLike bytes = ExportBytes(data);
  ModelMetadata metadata;
  RaiseIfError(DecodeMetadataResponse(bytes.data, bytes.size, &metadata));
  return MetadataDict(metadata);
}

// ("metadata",) or ("infer", config: bytes, input_names, inputs, output_names)
py::tuple DecodeRequestPy(py::handle data) {
  BytesLike bytes = ExportBytes(data);
  RequestView request;
  RaiseIfError(DecodeRequest(bytes.data, bytes.size, &request));
  if (request.kind == RequestView::Kind::kMetadata) return py::make_tuple("metadata");
  return py::make_tuple("infer", py::bytes(request.config.data(), request.config.size()),
                        ToStrList(request.input_names),
                        ArraysOfViews(request.inputs, bytes.view, bytes.writeable),
                        ToStrList(request.output_names));
}

std::unique_ptr<Message> EncodeMetadataResponsePy(const py::dict& m) {
  ModelMetadata metadata;
  auto text = [&](const char* key) {
    return m.contains(key) && !m[key].is_none() ? m[key].cast<std::string>() : std::string();
  };
  metadata.name = text("name");
  metadata.version = text("version");
  metadata.server = text("server");
  metadata.description = text("description");
  metadata.inputs = IOMetadataFromList(m["inputs"].cast<py::list>());
  metadata.outputs = IOMetadataFromList(m["outputs"].cast<py::list>());
  return std::make_unique<Message>(Message{EncodeMetadataResponse(metadata)});
}

}  // namespace
}  // namespace tf_graphpipe

PYBIND11_MODULE(_native, m) {
  using namespace tf_graphpipe;  // NOLINT: module definition scope only
  m.doc() = "tf-graphpipe's C++ codec and HTTP client (internal; use tf_graphpipe.Client).";

  py::class_<Message>(m, "Message", py::buffer_protocol(),
                      "An encoded GraphPipe flatbuffer (read-only bytes, no copy).")
      .def_buffer([](Message& msg) {
        const EncodedMessage& bytes = msg.Bytes();
        return py::buffer_info(const_cast<uint8_t*>(bytes.data()), 1,
                               py::format_descriptor<uint8_t>::format(), 1,
                               {static_cast<py::ssize_t>(bytes.size())}, {1}, true);
      })
      .def("__len__", [](const Message& msg) { return msg.encoded.size(); })
      .def_property_readonly(
          "parts", [](const Message& msg) { return msg.encoded.Parts().size(); },
          "How many pieces a scatter-gather send of this message takes (1 once flattened).")
      .def("__bytes__", [](Message& msg) {
        const EncodedMessage& bytes = msg.Bytes();
        return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      });

  py::class_<ReceivedBody>(m, "ReceivedBody", py::buffer_protocol(),
                           "A received answer body that decoded arrays view into.")
      .def_buffer([](ReceivedBody& body) {
        return py::buffer_info(body.bytes.data(), 1, py::format_descriptor<uint8_t>::format(), 1,
                               {static_cast<py::ssize_t>(body.bytes.size())}, {1}, false);
      })
      .def("__len__", [](const ReceivedBody& body) { return body.bytes.size(); });

  m.def("call", &Call, py::arg("url"), py::arg("protocol"), py::arg("inputs"),
        py::arg("type_ids"), py::arg("input_names"), py::arg("output_names"), py::arg("config"),
        py::arg("binary"), py::arg("timeout"), py::arg("retries"), py::arg("max_response_bytes"),
        py::arg("credentials") = py::dict(),
        "credentials: as metadata(). Calls the model at url (protocol: 'graphpipe', 'v2', or None for the URL's) as the op "
        "does; the outputs as arrays viewing the answer's body.");
  m.def("metadata", &Metadata, py::arg("url"), py::arg("protocol"), py::arg("timeout"),
        py::arg("retries"), py::arg("max_response_bytes"), py::arg("credentials") = py::dict(),
        "credentials: {headers, auth_token_env, auth_token_file, ca_file, client_cert, client_key, "
        "traceparent}, each optional. The model's metadata as a dict; for v2 also the input order later calls use.");
  m.def("resolve_protocol", &ResolveProtocolPy, py::arg("url"), py::arg("protocol"),
        "'graphpipe' or 'v2': the protocol a call to url speaks (ValueError if it cannot).");
  m.def("connections_opened", [] { return HttpClient::Shared().connections_opened(); },
        "TCP connections the shared HTTP client has opened in this process.");

  m.def("v2_model_url", &V2ModelUrlPy, py::arg("url"),
        "{model, metadata_url, infer_url} when the URL's path is /v2/models/<name>"
        "[/versions/<v>], else None.");
  m.def("encode_v2_infer_request", &EncodeV2InferRequestPy, py::arg("inputs"),
        py::arg("type_ids"), py::arg("input_names"), py::arg("output_names"),
        py::arg("binary") = true, "A v2 infer request body and its JSON header's length.");
  m.def("decode_v2_answer", &DecodeV2AnswerPy, py::arg("url"), py::arg("status"), py::arg("body"),
        py::arg("header_length") = py::none(), py::arg("output_names") = std::vector<std::string>(),
        "Reads a v2 infer answer as the Client does: (names, arrays), or raises.");
  m.def("decode_v2_metadata", &DecodeV2MetadataPy, py::arg("url"), py::arg("status"),
        py::arg("body"), "Reads a v2 model metadata answer as the Client does.");
  m.def("encode_infer_request", &EncodeInferRequestPy, py::arg("inputs"), py::arg("wire_types"),
        py::arg("input_names"), py::arg("output_names"), py::arg("config"),
        py::arg("copy") = true,
        "An InferRequest. copy=False references inputs of 64 KiB or more instead of copying "
        "them, as Client.infer does: the message is then sent as parts, and flattened only "
        "if its bytes are asked for.");
  m.def("encode_metadata_request", [] {
    return std::make_unique<Message>(Message{EncodeMetadataRequest()});
  });
  m.def("decode_infer_response", &DecodeInferResponsePy, py::arg("data"));
  m.def("decode_metadata_response", &DecodeMetadataResponsePy, py::arg("data"));
  m.def("decode_request", &DecodeRequestPy, py::arg("data"));
  m.def("encode_infer_response", &EncodeInferResponsePy, py::arg("outputs"),
        py::arg("wire_types"));
  m.def(
      "encode_error_response",
      [](const std::string& message, int64_t code) {
        return std::make_unique<Message>(Message{EncodeErrorResponse({{code, message}})});
      },
      py::arg("message"), py::arg("code") = 0);
  m.def("encode_metadata_response", &EncodeMetadataResponsePy, py::arg("metadata"));
  RegisterV2Server(m);
}
