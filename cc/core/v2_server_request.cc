// SPDX-License-Identifier: Apache-2.0
// Decoding v2 infer requests on the server: the JSON header, JSON `data`
// into owned storage, and the binary extension's blobs as views. Every
// length is checked against the body before it is read; messages follow
// Triton's wording where tests and users know it ("unexpected size for
// input", "input byte size mismatch", "unexpected additional input data").
#include <algorithm>
#include <cstring>
#include <limits>
#include <new>
#include <unordered_map>
#include <utility>

#include "cc/core/v2_codec.h"
#include "cc/core/v2_json.h"
#include "cc/core/v2_server_codec.h"

namespace tf_graphpipe {

namespace {

Status Refuse(std::string message) { return Status(Code::kInvalidArgument, std::move(message)); }

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

// ---- JSON `data` ----

// The leaves of a nested `data` array in row-major order (a scalar is one
// leaf). False past kMaxRank levels.
bool Leaves(const Json& node, size_t depth, std::vector<const Json*>* out) {
  if (!node.is_array()) {
    out->push_back(&node);
    return true;
  }
  if (depth >= kMaxRank) return false;
  for (const Json& item : node) {
    if (!Leaves(item, depth + 1, out)) return false;
  }
  return true;
}

// IEEE half from a double, rounded to nearest even as NumPy converts.
uint16_t HalfFromDouble(double value) {
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  const auto sign = static_cast<uint16_t>((bits >> 48) & 0x8000);
  const uint64_t magnitude = bits & 0x7FFFFFFFFFFFFFFFull;
  if (magnitude >= 0x7FF0000000000000ull) {
    return sign | (magnitude > 0x7FF0000000000000ull ? 0x7E00 : 0x7C00);
  }
  const int exponent = static_cast<int>(magnitude >> 52) - 1023;
  const uint64_t significand = (magnitude & ((uint64_t{1} << 52) - 1)) | (uint64_t{1} << 52);
  // Half keeps 10 fraction bits of a normal number; below 2^-14 its unit is
  // 2^-24 (subnormal), and so the shift grows.
  const int shift = exponent >= -14 ? 42 : 28 - exponent;
  if (shift >= 64) return sign;  // below half the smallest subnormal
  uint64_t h = significand >> shift;
  const uint64_t rest = significand & ((uint64_t{1} << shift) - 1);
  const uint64_t halfway = uint64_t{1} << (shift - 1);
  if (rest > halfway || (rest == halfway && (h & 1))) ++h;
  if (exponent < -14) return sign | static_cast<uint16_t>(h);  // a carry makes it normal
  int biased = exponent + 15;
  if (h == (uint64_t{1} << 11)) {
    h >>= 1;
    ++biased;
  }
  if (biased >= 31) return sign | 0x7C00;
  return sign | static_cast<uint16_t>(biased << 10) | static_cast<uint16_t>(h & 0x3FF);
}

// bfloat16 from a double through float, as TensorFlow and ml_dtypes convert.
uint16_t Bfloat16FromDouble(double value) {
  const float f = static_cast<float>(value);
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  if (std::isnan(f)) return static_cast<uint16_t>((bits >> 16) | 0x0040);
  bits += 0x7FFF + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

template <typename T>
void Store(uint8_t* out, size_t i, T value) {
  std::memcpy(out + i * sizeof(T), &value, sizeof(T));
}

// Writes leaf i as `type` into out; false when it is not such a value.
bool StoreLeaf(const Json& leaf, DType type, size_t i, uint8_t* out) {
  switch (type) {
#define TF_GRAPHPIPE_INTEGER_CASE(dtype, T)      \
  case dtype: {                                  \
    T v;                                         \
    if (!ReadJsonInteger(leaf, &v)) return false; \
    Store(out, i, v);                            \
    return true;                                 \
  }
    TF_GRAPHPIPE_INTEGER_CASE(DType::kUint8, uint8_t)
    TF_GRAPHPIPE_INTEGER_CASE(DType::kInt8, int8_t)
    TF_GRAPHPIPE_INTEGER_CASE(DType::kUint16, uint16_t)
    TF_GRAPHPIPE_INTEGER_CASE(DType::kInt16, int16_t)
    TF_GRAPHPIPE_INTEGER_CASE(DType::kUint32, uint32_t)
    TF_GRAPHPIPE_INTEGER_CASE(DType::kInt32, int32_t)
    TF_GRAPHPIPE_INTEGER_CASE(DType::kUint64, uint64_t)
    TF_GRAPHPIPE_INTEGER_CASE(DType::kInt64, int64_t)
#undef TF_GRAPHPIPE_INTEGER_CASE
    case DType::kBool:
      if (!leaf.is_boolean()) return false;
      out[i] = leaf.get<bool>() ? 1 : 0;
      return true;
    default:
      break;
  }
  double v;
  if (!ReadJsonFloat(leaf, &v)) return false;
  switch (type) {
    case DType::kFloat64: Store(out, i, v); return true;
    case DType::kFloat32: Store(out, i, static_cast<float>(v)); return true;
    case DType::kFloat16: Store(out, i, HalfFromDouble(v)); return true;
    case DType::kBfloat16: Store(out, i, Bfloat16FromDouble(v)); return true;
    default: return false;
  }
}

const char* KindOfValue(DType type) {
  switch (type) {
    case DType::kBool: return "true or false";
    case DType::kFloat16:
    case DType::kFloat32:
    case DType::kFloat64:
    case DType::kBfloat16: return "a number";
    default: return "an integer in its range";
  }
}

// JSON `data` -> a new storage buffer the view points into.
Status ReadJsonData(const Json& data, int64_t count, const std::string& what, TensorView* view,
                    std::vector<ByteBuffer>* storage) {
  std::vector<const Json*> leaves;
  leaves.reserve(static_cast<size_t>(std::min<int64_t>(count, data.is_array() ? data.size() : 1)));
  if (!Leaves(data, 0, &leaves)) {
    return Refuse(what + ": 'data' nests deeper than " + std::to_string(kMaxRank) + " levels");
  }
  // From here on sizes come from leaves that exist, never from the shape alone.
  if (static_cast<int64_t>(leaves.size()) != count) {
    return Refuse(what + ": shape " + ShapeString(view->shape) + " holds " + std::to_string(count) +
                  " elements, 'data' has " + std::to_string(leaves.size()));
  }
  storage->emplace_back();
  ByteBuffer& buffer = storage->back();
  const char* datatype = V2DatatypeName(view->type);
  if (view->type == DType::kString) {
    size_t total = 0;
    for (size_t i = 0; i < leaves.size(); ++i) {
      if (!leaves[i]->is_string()) {
        return Refuse(what + ": BYTES data must be JSON strings, element " + std::to_string(i) +
                      " is " + DescribeJson(*leaves[i]));
      }
      total += leaves[i]->get_ref<const std::string&>().size();
    }
    if (!buffer.Reserve(std::max<size_t>(total, 1))) {
      return Status(Code::kResourceExhausted, what + ": cannot allocate " + std::to_string(total) + " bytes");
    }
    view->strings.reserve(leaves.size());
    for (const Json* leaf : leaves) {
      const std::string& s = leaf->get_ref<const std::string&>();
      const size_t at = buffer.size();
      buffer.Append(s.data(), s.size());  // reserved: never moves
      view->strings.emplace_back(reinterpret_cast<const char*>(buffer.data()) + at, s.size());
    }
    return Status::Ok();
  }
  const size_t nbytes = leaves.size() * ElementSize(view->type);
  if (!buffer.Resize(std::max<size_t>(nbytes, 1))) {
    return Status(Code::kResourceExhausted, what + ": cannot allocate " + std::to_string(nbytes) + " bytes");
  }
  for (size_t i = 0; i < leaves.size(); ++i) {
    if (!StoreLeaf(*leaves[i], view->type, i, buffer.data())) {
      return Refuse(what + ": 'data' element " + std::to_string(i) + " is " + DescribeJson(*leaves[i]) +
                    ", not " + KindOfValue(view->type) + " of " + datatype);
    }
  }
  buffer.Resize(nbytes);
  view->data = nbytes == 0 ? nullptr : buffer.data();
  view->nbytes = nbytes;
  return Status::Ok();
}

// ---- blobs ----

uint32_t LoadLength(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

// The tensor in blob[0, size), in place; a numeric size already equals the
// shape's byte count.
Status ReadBlob(const uint8_t* blob, size_t size, int64_t count, const std::string& what,
                TensorView* view) {
  if (view->type == DType::kString) {
    // Each element takes at least its 4-byte prefix: bound the count before reserving.
    if (static_cast<uint64_t>(count) > size / 4) {
      return Refuse(what + ": " + std::to_string(size) + " bytes cannot hold " + std::to_string(count) +
                    " BYTES elements (each has a 4-byte length)");
    }
    view->strings.reserve(static_cast<size_t>(count));
    size_t at = 0;
    for (int64_t i = 0; i < count; ++i) {
      if (size - at < 4) {
        return Refuse(what + ": BYTES element " + std::to_string(i) + " of " + std::to_string(count) +
                      " has no 4-byte length (" + std::to_string(size - at) + " bytes left)");
      }
      const uint32_t length = LoadLength(blob + at);
      at += 4;
      if (length > size - at) {
        return Refuse(what + ": BYTES element " + std::to_string(i) + " declares " +
                      std::to_string(length) + " bytes, " + std::to_string(size - at) + " left");
      }
      view->strings.emplace_back(reinterpret_cast<const char*>(blob + at), length);
      at += length;
    }
    if (at != size) {
      return Refuse(what + ": " + std::to_string(size - at) + " bytes after its " + std::to_string(count) +
                    " BYTES elements");
    }
    return Status::Ok();
  }
  if (view->type == DType::kBool) {
    for (size_t i = 0; i < size; ++i) {
      if (blob[i] > 1) {
        return Refuse(what + ": BOOL element " + std::to_string(i) + " is byte " + std::to_string(blob[i]) +
                      ", not 0 or 1");
      }
    }
  }
  view->data = size == 0 ? nullptr : blob;
  view->nbytes = size;
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
  if (blob_size == nullptr) return ReadJsonData(*data, count, what, &view, &out->storage);
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
        ReadBlob(body + offset, static_cast<size_t>(blob.size), blob.count, what, &out->inputs[blob.input]));
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
  return ReadBlob(body, size, count, what, &view);
}

}  // namespace tf_graphpipe
