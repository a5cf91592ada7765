// SPDX-License-Identifier: Apache-2.0
// Decoding v2 infer requests on the server: the JSON header, then each
// input's data through v2_tensor_data.h (JSON into owned storage, blobs as
// views). Every length is checked against the body before it is read; messages follow
// Triton's wording where tests and users know it ("unexpected size for
// input", "input byte size mismatch", "unexpected additional input data").
#include <algorithm>
#include <new>
#include <unordered_map>
#include <utility>

#include "cc/core/v2_codec.h"
#include "cc/core/v2_json.h"
#include "cc/core/v2_server_codec.h"
#include "cc/core/v2_tensor_data.h"

namespace tf_graphpipe {

namespace {

constexpr V2Refusal kRefuse{Code::kInvalidArgument, ""};

Status Refuse(std::string message) { return kRefuse(message); }

// A member that is present and not null.
const Json* Member(const Json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

// `parameters` of the request, an input or an output: an object, or absent.
Status ReadParameters(const Json& owner, const std::string& what, const Json** out) {
  *out = Member(owner, "parameters");
  if (*out != nullptr && !(*out)->is_object()) {
    return Refuse(what + " 'parameters' must be a JSON object, got " + DescribeJson(**out));
  }
  return Status::Ok();
}

Status ReadFlag(const Json* parameters, const char* key, const std::string& what, bool* out) {
  const Json* value = parameters == nullptr ? nullptr : Member(*parameters, key);
  if (value == nullptr) return Status::Ok();
  if (!value->is_boolean()) {
    return Refuse(what + " parameter '" + key + "' must be true or false, got " + DescribeJson(*value));
  }
  *out = value->get<bool>();
  return Status::Ok();
}

Status ReadCount(const Json* parameters, const char* key, const std::string& what,
                 std::optional<uint64_t>* out) {
  const Json* value = parameters == nullptr ? nullptr : Member(*parameters, key);
  if (value == nullptr) return Status::Ok();
  uint64_t count = 0;
  if (!ReadJsonInteger(*value, &count)) {
    return Refuse(what + " parameter '" + key + "' must be a non-negative integer, got " +
                  DescribeJson(*value));
  }
  *out = count;
  return Status::Ok();
}

std::string DatatypeList() {
  std::string list;
  for (uint8_t raw = 1; raw <= kMaxDType; ++raw) {
    list += (list.empty() ? "" : ", ") + std::string(V2DatatypeName(static_cast<DType>(raw)));
  }
  return list;
}

Status ReadDatatype(const Json& entry, const std::string& what, DType* out) {
  const Json* name = Member(entry, "datatype");
  *out = name != nullptr && name->is_string()
             ? DTypeOfV2Datatype(name->get_ref<const std::string&>())
             : DType::kNull;
  if (*out == DType::kNull) {
    return Refuse(what + ": unknown datatype " + (name == nullptr ? "(none)" : DescribeJson(*name)) +
                  " (expected one of " + DatatypeList() + ")");
  }
  return Status::Ok();
}

Status ReadShape(const Json& entry, const std::string& what, std::vector<int64_t>* shape,
                 int64_t* count) {
  const Json* dims = Member(entry, "shape");
  const auto refuse = [&] {
    return Refuse(what + ": 'shape' must be an array of at most " + std::to_string(kMaxRank) +
                  " non-negative integers, got " + (dims == nullptr ? "none" : DescribeJson(*dims)));
  };
  if (dims == nullptr || !dims->is_array() || dims->size() > kMaxRank) return refuse();
  shape->clear();
  for (const Json& d : *dims) {
    uint64_t value = 0;
    if (!ReadJsonInteger(d, &value) || value > (uint64_t{1} << 62)) return refuse();
    shape->push_back(static_cast<int64_t>(value));
  }
  if (!CountElements(*shape, count)) {
    return Refuse(what + ": shape " + ShapeString(*shape) + " has more than 2^59 elements");
  }
  return Status::Ok();
}

// ---- the header ----

struct PendingBlob {
  size_t input;
  uint64_t size;
  int64_t count;
};

Status ReadInput(const Json& entry, size_t index, V2InferRequest* out, std::vector<PendingBlob>* blobs) {
  const Json* name = Member(entry, "name");
  if (!entry.is_object() || name == nullptr || !name->is_string()) {
    return Refuse("inputs[" + std::to_string(index) + "] must be an object with a string 'name'");
  }
  out->input_names.push_back(name->get<std::string>());
  const std::string what = "input '" + out->input_names.back() + "'";
  out->inputs.emplace_back();
  TensorView& view = out->inputs.back();
  TF_GRAPHPIPE_RETURN_IF_ERROR(ReadDatatype(entry, what, &view.type));
  int64_t count = 0;
  TF_GRAPHPIPE_RETURN_IF_ERROR(ReadShape(entry, what, &view.shape, &count));
  const Json* parameters = nullptr;
  TF_GRAPHPIPE_RETURN_IF_ERROR(ReadParameters(entry, what, &parameters));
  const auto data = entry.find("data");
  const Json* blob_size = parameters == nullptr ? nullptr : Member(*parameters, "binary_data_size");
  const bool shared_memory = parameters != nullptr && parameters->contains("shared_memory_region");
  const int given = (data != entry.end()) + (blob_size != nullptr) + shared_memory;
  if (given != 1) {
    return Refuse(what + " must set exactly one of 'data', 'binary_data_size' or 'shared_memory_region' (got " +
                  std::to_string(given) + ")");
  }
  if (shared_memory) return Refuse(what + ": shared memory is not supported by this server");
  if (blob_size == nullptr) return ReadV2JsonData(*data, count, what, kRefuse, &view, &out->storage);
  uint64_t size = 0;
  if (!ReadJsonInteger(*blob_size, &size)) {
    return Refuse(what + ": binary_data_size must be a non-negative integer, got " + DescribeJson(*blob_size));
  }
  if (view.type != DType::kString) {
    const uint64_t expected = static_cast<uint64_t>(count) * ElementSize(view.type);  // < 2^62
    if (size != expected) {
      return Refuse("input byte size mismatch for " + what + ": shape " + ShapeString(view.shape) + " of " +
                    V2DatatypeName(view.type) + " is " + std::to_string(expected) +
                    " bytes, binary_data_size is " + std::to_string(size));
    }
  }
  blobs->push_back({index, size, count});
  return Status::Ok();
}

Status ReadOutputs(const Json& header, V2InferRequest* out) {
  const Json* outputs = Member(header, "outputs");
  if (outputs == nullptr) return Status::Ok();
  if (!outputs->is_array()) {
    return Refuse("request 'outputs' must be an array, got " + DescribeJson(*outputs));
  }
  for (size_t i = 0; i < outputs->size(); ++i) {
    const Json& entry = (*outputs)[i];
    const Json* name = entry.is_object() ? Member(entry, "name") : nullptr;
    if (name == nullptr || !name->is_string()) {
      return Refuse("outputs[" + std::to_string(i) + "] must be an object with a string 'name'");
    }
    out->output_names.push_back(name->get<std::string>());
    const std::string what = "output '" + out->output_names.back() + "'";
    const Json* parameters = nullptr;
    TF_GRAPHPIPE_RETURN_IF_ERROR(ReadParameters(entry, what, &parameters));
    if (parameters != nullptr && parameters->contains("shared_memory_region")) {
      return Refuse(what + ": shared memory is not supported by this server");
    }
    if (parameters != nullptr && parameters->contains("classification")) {
      return Refuse(what + ": classification is not supported by this server");
    }
    bool binary = false;
    TF_GRAPHPIPE_RETURN_IF_ERROR(ReadFlag(parameters, "binary_data", what, &binary));
    out->output_binary.push_back(binary);
  }
  return Status::Ok();
}

Status ReadHeader(const uint8_t* body, size_t json_size, V2InferRequest* out, std::vector<PendingBlob>* blobs) {
  Json header;
  std::string error;
  if (!ParseV2Json(std::string_view(reinterpret_cast<const char*>(body), json_size), &header, &error)) {
    return Refuse("infer request header is not valid JSON: " + error);
  }
  if (!header.is_object()) {
    return Refuse("infer request header must be a JSON object, got " + DescribeJson(header));
  }
  const Json* parameters = nullptr;
  TF_GRAPHPIPE_RETURN_IF_ERROR(ReadParameters(header, "request", &parameters));
  TF_GRAPHPIPE_RETURN_IF_ERROR(ReadFlag(parameters, "binary_data_output", "request", &out->binary_default));
  TF_GRAPHPIPE_RETURN_IF_ERROR(ReadCount(parameters, "timeout", "request", &out->timeout_us));
  TF_GRAPHPIPE_RETURN_IF_ERROR(ReadCount(parameters, "priority", "request", &out->priority));
  if (const Json* id = Member(header, "id")) {
    if (!id->is_string()) return Refuse("request 'id' must be a string, got " + DescribeJson(*id));
    out->id = id->get<std::string>();
  }
  const Json* inputs = Member(header, "inputs");
  if (inputs == nullptr || !inputs->is_array()) return Refuse("infer request has no 'inputs' array");
  out->input_names.reserve(inputs->size());
  out->inputs.reserve(inputs->size());
  for (size_t i = 0; i < inputs->size(); ++i) {
    TF_GRAPHPIPE_RETURN_IF_ERROR(ReadInput((*inputs)[i], i, out, blobs));
  }
  return ReadOutputs(header, out);
}

// ---- the plan cache ----

// Clients repeat the same header for same-shaped calls (tritonclient and
// ours do), and parsing it costs more than the rest of a small call. So the
// checked header of a request that carries no JSON data, its "plan", is
// kept and reused; only the blobs are checked against each body. Per
// thread: the server decodes on its event loop, and no lock is needed.
constexpr size_t kPlanCacheHeaderBytes = 8192;
constexpr size_t kPlanCacheEntries = 256;

// Every field of a request but its storage (plans carry no JSON data).
void CopyHeaderFields(const V2InferRequest& from, V2InferRequest* to) {
  to->id = from.id;
  to->input_names = from.input_names;
  to->inputs = from.inputs;
  to->output_names = from.output_names;
  to->output_binary = from.output_binary;
  to->binary_default = from.binary_default;
  to->timeout_us = from.timeout_us;
  to->priority = from.priority;
}

class PlanCache {
 public:
  // The plan of `header` into `out` and `blobs`; false when it has none.
  bool Find(std::string_view header, V2InferRequest* out, std::vector<PendingBlob>* blobs) const {
    const auto it = plans_.find(std::hash<std::string_view>()(header));
    if (it == plans_.end() || it->second.header != header) return false;
    CopyHeaderFields(it->second.request, out);
    *blobs = it->second.blobs;
    return true;
  }

  void Add(std::string_view header, const V2InferRequest& request, const std::vector<PendingBlob>& blobs) {
    if (plans_.size() >= kPlanCacheEntries) plans_.clear();  // a bound, not a policy: same-shaped calls refill it
    Plan& plan = plans_[std::hash<std::string_view>()(header)];  // a colliding header replaces the other
    plan.header.assign(header);
    CopyHeaderFields(request, &plan.request);
    plan.blobs = blobs;
  }

 private:
  struct Plan {
    std::string header;
    V2InferRequest request;  // views without data
    std::vector<PendingBlob> blobs;
  };
  std::unordered_map<size_t, Plan> plans_;
};

Status DecodeInto(const uint8_t* body, size_t size, std::optional<int64_t> header_length, V2InferRequest* out) {
  if (header_length && (*header_length < 0 || static_cast<uint64_t>(*header_length) > size)) {
    return Refuse("inference header size should be in range [0, " + std::to_string(size) + "], got " +
                  std::to_string(*header_length));
  }
  const size_t json_size = header_length ? static_cast<size_t>(*header_length) : size;
  const std::string_view header(reinterpret_cast<const char*>(body), json_size);
  std::vector<PendingBlob> blobs;
  thread_local PlanCache plans;
  const bool cacheable = json_size <= kPlanCacheHeaderBytes;
  if (!cacheable || !plans.Find(header, out, &blobs)) {
    TF_GRAPHPIPE_RETURN_IF_ERROR(ReadHeader(body, json_size, out, &blobs));
    if (cacheable && out->storage.empty()) plans.Add(header, *out, blobs);
  }
  size_t offset = json_size;
  for (const PendingBlob& blob : blobs) {
    const std::string what = "input '" + out->input_names[blob.input] + "'";
    if (blob.size > size - offset) {
      return Refuse("unexpected size for " + what + ", expecting " + std::to_string(blob.size) +
                    " additional bytes, the body holds " + std::to_string(size - offset));
    }
    TF_GRAPHPIPE_RETURN_IF_ERROR(
        ReadV2Blob(body + offset, static_cast<size_t>(blob.size), blob.count, what, kRefuse, &out->inputs[blob.input]));
    offset += static_cast<size_t>(blob.size);
  }
  if (offset != size) {
    return Refuse("unexpected additional input data: " + std::to_string(size - offset) +
                  " bytes after the last input");
  }
  return Status::Ok();
}

}  // namespace

Status DecodeV2InferRequest(const uint8_t* body, size_t size, std::optional<int64_t> header_length,
                            V2InferRequest* out) {
  *out = V2InferRequest();
  try {
    return DecodeInto(body, size, header_length, out);
  } catch (const std::bad_alloc&) {
    return Status(Code::kResourceExhausted, "decoding a v2 infer request of " + std::to_string(size) +
                                                " bytes ran out of memory");
  } catch (const std::exception& e) {  // nlohmann type errors: a check above missed a case
    return Refuse(std::string("malformed v2 infer request: ") + e.what());
  }
}

Status DecodeV2RawBinaryRequest(const uint8_t* body, size_t size, std::string_view input_name, DType type,
                                const std::vector<int64_t>* shape, V2InferRequest* out) {
  *out = V2InferRequest();
  const size_t unknown = shape == nullptr ? 0 : std::count_if(shape->begin(), shape->end(),
                                                              [](int64_t d) { return d < 0; });
  if (type == DType::kNull || type == DType::kString || !IsAnyTensorType(static_cast<uint8_t>(type)) ||
      shape == nullptr || unknown > 1) {
    return Refuse("a raw binary request (Inference-Header-Content-Length: 0) needs a model with one input of "
                  "declared numeric dtype and shape with at most one unknown dimension");
  }
  const std::string what = "raw binary input '" + std::string(input_name) + "'";
  const auto refuse = [&] {
    return Refuse(what + ": " + std::to_string(size) + " bytes do not fill shape " + ShapeString(*shape));
  };
  std::vector<int64_t> dims;
  for (int64_t d : *shape) {
    if (d >= 0) dims.push_back(d);
  }
  int64_t known = 0;
  if (!CountElements(dims, &known)) return refuse();
  const uint64_t known_bytes = static_cast<uint64_t>(known) * ElementSize(type);
  dims = *shape;
  if (unknown == 1) {
    if (known_bytes == 0 || size % known_bytes != 0) return refuse();
    *std::find_if(dims.begin(), dims.end(), [](int64_t d) { return d < 0; }) =
        static_cast<int64_t>(size / known_bytes);
  } else if (known_bytes != size) {
    return refuse();
  }
  int64_t count = 0;
  if (!CountElements(dims, &count)) return refuse();
  out->input_names.emplace_back(input_name);
  out->inputs.emplace_back();
  TensorView& view = out->inputs.back();
  view.type = type;
  view.shape = std::move(dims);
  out->binary_default = true;
  return ReadV2Blob(body, size, count, what, kRefuse, &view);
}

}  // namespace tf_graphpipe
