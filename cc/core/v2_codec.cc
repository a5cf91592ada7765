// SPDX-License-Identifier: Apache-2.0
#include "cc/core/v2_codec.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

#include <nlohmann/json.hpp>

namespace tf_graphpipe {

using Json = nlohmann::json;

namespace {

// Below this a numeric tensor is copied even when referencing is allowed: an
// extra part in a scatter-gather send costs more than copying a few KiB.
constexpr size_t kMinReferencedBytes = 64 * 1024;

// The v2 datatype names, indexed by DType value (SPEC_V2 section 2).
constexpr const char* kDatatypeNames[] = {
    nullptr, "UINT8", "INT8",  "UINT16", "INT16", "UINT32", "INT32", "UINT64",
    "INT64", "FP16",  "FP32",  "FP64",   "BYTES", "BOOL",   "BF16",
};
static_assert(sizeof(kDatatypeNames) / sizeof(kDatatypeNames[0]) == kMaxDType + 1,
              "one v2 datatype name per DType");

Status Malformed(const std::string& what) {
  return Status(Code::kDataLoss, "malformed v2 answer: " + what);
}

// ---- writing JSON ----

// Length of the valid UTF-8 sequence starting at s[i], or 0.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t n = 0;
  uint32_t min = 0;
  uint32_t cp = 0;
  if ((c & 0xE0) == 0xC0) { n = 2; cp = c & 0x1F; min = 0x80; }
  else if ((c & 0xF0) == 0xE0) { n = 3; cp = c & 0x0F; min = 0x800; }
  else if ((c & 0xF8) == 0xF0) { n = 4; cp = c & 0x07; min = 0x10000; }
  else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

bool IsUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// Appends `s` as a JSON string. The caller checked it is UTF-8.
void AppendJsonString(std::string* out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (c < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 0xF]);
        } else {
          out->push_back(ch);
        }
    }
  }
  out->push_back('"');
}

template <typename T>
void AppendNumber(std::string* out, T value) {
  char text[64];
  auto result = std::to_chars(text, text + sizeof(text), value);
  out->append(text, result.ptr);
}

// JSON has no NaN or Infinity: we write Triton's tokens (which Triton and
// Python's json both read back), as SPEC_V2 section 3 allows.
template <typename T>
void AppendFloat(std::string* out, T value) {
  if (std::isnan(value)) {
    out->append("NaN");
  } else if (std::isinf(value)) {
    out->append(value > 0 ? "Infinity" : "-Infinity");
  } else {
    AppendNumber(out, value);  // shortest text that reads back exactly
  }
}

template <typename T>
T Load(const uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

template <typename T>
void AppendIntegers(std::string* out, const TensorView& t) {
  const size_t n = t.nbytes / sizeof(T);
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) out->push_back(',');
    AppendNumber(out, Load<T>(t.data + i * sizeof(T)));
  }
}

template <typename T>
void AppendFloats(std::string* out, const TensorView& t) {
  const size_t n = t.nbytes / sizeof(T);
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) out->push_back(',');
    AppendFloat(out, Load<T>(t.data + i * sizeof(T)));
  }
}

// The flat `data` array of a tensor JSON can carry exactly.
void AppendJsonData(std::string* out, const TensorView& t) {
  out->push_back('[');
  switch (t.type) {
    case DType::kUint8: AppendIntegers<uint8_t>(out, t); break;
    case DType::kInt8: AppendIntegers<int8_t>(out, t); break;
    case DType::kUint16: AppendIntegers<uint16_t>(out, t); break;
    case DType::kInt16: AppendIntegers<int16_t>(out, t); break;
    case DType::kUint32: AppendIntegers<uint32_t>(out, t); break;
    case DType::kInt32: AppendIntegers<int32_t>(out, t); break;
    case DType::kUint64: AppendIntegers<uint64_t>(out, t); break;
    case DType::kInt64: AppendIntegers<int64_t>(out, t); break;
    case DType::kFloat32: AppendFloats<float>(out, t); break;
    case DType::kFloat64: AppendFloats<double>(out, t); break;
    case DType::kBool:
      for (size_t i = 0; i < t.nbytes; ++i) {
        if (i > 0) out->push_back(',');
        out->append(t.data[i] != 0 ? "true" : "false");
      }
      break;
    case DType::kString:
      for (size_t i = 0; i < t.strings.size(); ++i) {
        if (i > 0) out->push_back(',');
        AppendJsonString(out, t.strings[i]);
      }
      break;
    default:  // FP16, BF16: no JSON form; never chosen for JSON
      break;
  }
  out->push_back(']');
}

void AppendShape(std::string* out, const std::vector<int64_t>& shape) {
  out->push_back('[');
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendNumber(out, shape[i]);
  }
  out->push_back(']');
}

// The checks a decoder makes, made on what we are about to send.
Status CheckOutgoing(const TensorView& t, const std::string& what) {
  if (!IsAnyTensorType(static_cast<uint8_t>(t.type))) {
    return Status(Code::kInvalidArgument,
                  what + ": type " + DTypeName(t.type) + " has no v2 datatype");
  }
  int64_t n = 0;
  if (!CountElements(t.shape, &n)) {
    return Status(Code::kInvalidArgument, what + ": invalid shape " + ShapeString(t.shape));
  }
  if (t.type == DType::kString) {
    if (static_cast<int64_t>(t.strings.size()) != n) {
      return Status(Code::kInvalidArgument,
                    what + ": shape " + ShapeString(t.shape) + " needs " + std::to_string(n) +
                        " strings, got " + std::to_string(t.strings.size()));
    }
    for (std::string_view s : t.strings) {
      if (s.size() > std::numeric_limits<uint32_t>::max()) {
        return Status(Code::kInvalidArgument,
                      what + ": a BYTES element of " + std::to_string(s.size()) +
                          " bytes exceeds the 4 GiB a v2 length prefix can say");
      }
    }
  } else if (t.nbytes != static_cast<size_t>(n) * ElementSize(t.type)) {
    return Status(Code::kInvalidArgument,
                  what + ": shape " + ShapeString(t.shape) + " of " + DTypeName(t.type) +
                      " needs " + std::to_string(n * ElementSize(t.type)) + " bytes, got " +
                      std::to_string(t.nbytes));
  }
  return Status::Ok();
}

// Whether JSON `data` carries this tensor exactly.
bool JsonCarries(const TensorView& t) {
  if (t.type == DType::kFloat16 || t.type == DType::kBfloat16) return false;
  if (t.type == DType::kString) {
    for (std::string_view s : t.strings) {
      if (!IsUtf8(s)) return false;
    }
  }
  return true;
}

size_t BlobSize(const TensorView& t) {
  if (t.type != DType::kString) return t.nbytes;
  size_t size = 0;
  for (std::string_view s : t.strings) size += 4 + s.size();
  return size;
}

// ---- reading JSON ----

// Triton writes NaN and infinities as the bare tokens NaN, Infinity and
// -Infinity, which no strict JSON parser takes. Outside strings they become
// the strings "NaN", "Infinity", "-Infinity", which the float readers below
// accept. Returns nothing when the text has no such token (the usual case).
std::optional<std::string> QuoteNonFiniteTokens(std::string_view text) {
  std::string out;
  bool changed = false;
  bool in_string = false;
  size_t copied = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
      continue;
    }
    std::string_view token;
    if (c == 'N' && text.substr(i, 3) == "NaN") token = "NaN";
    else if (c == 'I' && text.substr(i, 8) == "Infinity") token = "Infinity";
    else if (c == '-' && text.substr(i, 9) == "-Infinity") token = "-Infinity";
    if (token.empty()) continue;
    if (!changed) out.reserve(text.size() + 64);
    changed = true;
    out.append(text.substr(copied, i - copied));
    out.push_back('"');
    out.append(token);
    out.push_back('"');
    i += token.size() - 1;
    copied = i + 1;
  }
  if (!changed) return std::nullopt;
  out.append(text.substr(copied));
  return out;
}

Status ParseJson(const uint8_t* data, size_t size, const char* what, Json* out) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::optional<std::string> quoted = QuoteNonFiniteTokens(text);
  if (quoted) text = *quoted;
  *out = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (out->is_discarded()) {
    return Malformed(std::string(what) + " of " + std::to_string(size) + " bytes is not JSON");
  }
  return Status::Ok();
}

const Json* Member(const Json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

Status ReadShape(const Json* shape, const std::string& what, bool allow_unknown,
                 std::vector<int64_t>* out) {
  out->clear();
  if (shape == nullptr || !shape->is_array() || shape->size() > kMaxRank) {
    return Malformed(what + ": `shape` must be an array of at most 64 integers");
  }
  for (const Json& d : *shape) {
    const int64_t min = allow_unknown ? -1 : 0;
    if (d.is_number_unsigned() && d.get<uint64_t>() <= (uint64_t{1} << 62)) {
      out->push_back(static_cast<int64_t>(d.get<uint64_t>()));
    } else if (d.is_number_integer() && !d.is_number_unsigned() && d.get<int64_t>() >= min) {
      out->push_back(d.get<int64_t>());
    } else {
      return Malformed(what + ": `shape` entry " + d.dump() + " is not a valid dimension");
    }
  }
  return Status::Ok();
}

// Collects the leaves of a nested `data` array, in row-major order, up to
// `limit` of them (more is an error, reported by the caller via the count).
bool Flatten(const Json& node, size_t depth, size_t limit, std::vector<const Json*>* leaves) {
  if (!node.is_array()) {
    if (leaves->size() >= limit + 1) return true;
    leaves->push_back(&node);
    return true;
  }
  if (depth > kMaxRank) return false;
  for (const Json& item : node) {
    if (!Flatten(item, depth + 1, limit, leaves)) return false;
    if (leaves->size() > limit) return true;
  }
  return true;
}

bool ReadFloat(const Json& v, double* out) {
  if (v.is_number()) {
    *out = v.get<double>();
    return true;
  }
  if (v.is_null()) {  // kserve writes non-finite floats as null
    *out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (s == "NaN") *out = std::numeric_limits<double>::quiet_NaN();
    else if (s == "Infinity") *out = std::numeric_limits<double>::infinity();
    else if (s == "-Infinity") *out = -std::numeric_limits<double>::infinity();
    else return false;
    return true;
  }
  return false;
}

// Integers are read as integers, never through double, so 64-bit values
// survive exactly.
template <typename T>
bool ReadInteger(const Json& v, T* out) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) return false;
    *out = static_cast<T>(u);
    return true;
  }
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    if (std::numeric_limits<T>::is_signed) {
      if (i < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
          i > static_cast<int64_t>(std::numeric_limits<T>::max())) {
        return false;
      }
    } else if (i < 0) {
      return false;
    }
    *out = static_cast<T>(i);
    return true;
  }
  return false;
}

template <typename T>
bool FillIntegers(const std::vector<const Json*>& leaves, uint8_t* out) {
  for (size_t i = 0; i < leaves.size(); ++i) {
    T value;
    if (!ReadInteger(*leaves[i], &value)) return false;
    std::memcpy(out + i * sizeof(T), &value, sizeof(T));
  }
  return true;
}

template <typename T>
bool FillFloats(const std::vector<const Json*>& leaves, uint8_t* out) {
  for (size_t i = 0; i < leaves.size(); ++i) {
    double value;
    if (!ReadFloat(*leaves[i], &value)) return false;
    const T narrowed = static_cast<T>(value);
    std::memcpy(out + i * sizeof(T), &narrowed, sizeof(T));
  }
  return true;
}

// Decodes JSON `data` into a new storage buffer the view points into.
Status ReadJsonData(const Json& data, int64_t n, const std::string& what, TensorView* view,
                    std::vector<ByteBuffer>* storage) {
  std::vector<const Json*> leaves;
  leaves.reserve(static_cast<size_t>(std::min<int64_t>(n, 1 << 20)));
  if (!Flatten(data, 0, static_cast<size_t>(n), &leaves)) {
    return Malformed(what + ": `data` nests deeper than 64 levels");
  }
  if (static_cast<int64_t>(leaves.size()) != n) {
    return Malformed(what + ": shape " + ShapeString(view->shape) + " needs " +
                     std::to_string(n) + " elements, `data` holds " +
                     (static_cast<int64_t>(leaves.size()) > n ? "more" : std::to_string(leaves.size())));
  }
  storage->emplace_back();
  ByteBuffer& buffer = storage->back();
  if (view->type == DType::kString) {
    size_t total = 0;
    for (const Json* leaf : leaves) {
      if (!leaf->is_string()) {
        return Malformed(what + ": BYTES element " + leaf->dump() + " is not a string");
      }
      total += leaf->get_ref<const std::string&>().size();
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
  const size_t nbytes = static_cast<size_t>(n) * ElementSize(view->type);
  if (!buffer.Reserve(std::max<size_t>(nbytes, 1))) {
    return Status(Code::kResourceExhausted, what + ": cannot allocate " + std::to_string(nbytes) + " bytes");
  }
  uint8_t* out = buffer.data();
  bool ok = false;
  switch (view->type) {
    case DType::kUint8: ok = FillIntegers<uint8_t>(leaves, out); break;
    case DType::kInt8: ok = FillIntegers<int8_t>(leaves, out); break;
    case DType::kUint16: ok = FillIntegers<uint16_t>(leaves, out); break;
    case DType::kInt16: ok = FillIntegers<int16_t>(leaves, out); break;
    case DType::kUint32: ok = FillIntegers<uint32_t>(leaves, out); break;
    case DType::kInt32: ok = FillIntegers<int32_t>(leaves, out); break;
    case DType::kUint64: ok = FillIntegers<uint64_t>(leaves, out); break;
    case DType::kInt64: ok = FillIntegers<int64_t>(leaves, out); break;
    case DType::kFloat32: ok = FillFloats<float>(leaves, out); break;
    case DType::kFloat64: ok = FillFloats<double>(leaves, out); break;
    case DType::kBool:
      ok = true;
      for (size_t i = 0; i < leaves.size() && ok; ++i) {
        if (leaves[i]->is_boolean()) out[i] = leaves[i]->get<bool>() ? 1 : 0;
        else ok = false;
      }
      break;
    default:
      return Malformed(what + ": " + V2DatatypeName(view->type) + " has no JSON form");
  }
  if (!ok) {
    return Malformed(what + ": `data` holds a value that is not a " +
                     V2DatatypeName(view->type));
  }
  // Filled in place: the view, not buffer.size(), says how many bytes.
  view->data = nbytes == 0 ? nullptr : out;
  view->nbytes = nbytes;
  return Status::Ok();
}

// A binary blob -> view, in place.
Status ReadBlob(const uint8_t* blob, size_t size, int64_t n, const std::string& what,
                TensorView* view) {
  if (view->type == DType::kString) {
    // Each element takes at least its 4-byte prefix: bound n before reserving.
    if (static_cast<uint64_t>(n) > size / 4) {
      return Malformed(what + ": " + std::to_string(size) + " bytes cannot hold " +
                       std::to_string(n) + " BYTES elements");
    }
    view->strings.reserve(static_cast<size_t>(n));
    size_t at = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (size - at < 4) {
        return Malformed(what + ": BYTES element " + std::to_string(i) + " has no length prefix");
      }
      const uint32_t length = static_cast<uint32_t>(blob[at]) |
                              static_cast<uint32_t>(blob[at + 1]) << 8 |
                              static_cast<uint32_t>(blob[at + 2]) << 16 |
                              static_cast<uint32_t>(blob[at + 3]) << 24;
      at += 4;
      if (length > size - at) {
        return Malformed(what + ": BYTES element " + std::to_string(i) + " claims " +
                         std::to_string(length) + " bytes, " + std::to_string(size - at) +
                         " are left");
      }
      view->strings.emplace_back(reinterpret_cast<const char*>(blob + at), length);
      at += length;
    }
    if (at != size) {
      return Malformed(what + ": " + std::to_string(size - at) +
                       " bytes left after the last BYTES element");
    }
    return Status::Ok();
  }
  const size_t itemsize = ElementSize(view->type);
  if (static_cast<uint64_t>(n) > size / itemsize || size != static_cast<size_t>(n) * itemsize) {
    return Malformed(what + ": shape " + ShapeString(view->shape) + " of " +
                     V2DatatypeName(view->type) + " needs " +
                     (static_cast<uint64_t>(n) > (uint64_t{1} << 59) / itemsize
                          ? std::string("more than 2^62")
                          : std::to_string(n * static_cast<int64_t>(itemsize))) +
                     " bytes, binary_data_size is " + std::to_string(size));
  }
  if (view->type == DType::kBool) {
    for (size_t i = 0; i < size; ++i) {
      if (blob[i] > 1) {
        return Malformed(what + ": BOOL element " + std::to_string(i) + " is byte " +
                         std::to_string(blob[i]) + ", not 0 or 1");
      }
    }
  }
  view->data = size == 0 ? nullptr : blob;
  view->nbytes = size;
  return Status::Ok();
}

std::string StringMember(const Json& object, const char* key) {
  const Json* value = Member(object, key);
  if (value == nullptr) return "";
  return value->is_string() ? value->get<std::string>() : value->dump();
}

Status ReadTensorMetadata(const Json* list, const char* role, std::vector<IOMetadata>* out) {
  out->clear();
  if (list == nullptr) return Status::Ok();
  if (!list->is_array()) return Malformed(std::string("metadata `") + role + "s` is not an array");
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& entry = (*list)[i];
    const std::string what = std::string("metadata ") + role + " " + std::to_string(i);
    if (!entry.is_object()) return Malformed(what + " is not an object");
    const Json* name = Member(entry, "name");
    if (name == nullptr || !name->is_string()) return Malformed(what + " has no `name`");
    IOMetadata m;
    m.name = name->get<std::string>();
    const Json* datatype = Member(entry, "datatype");
    m.type = datatype != nullptr && datatype->is_string()
                 ? DTypeOfV2Datatype(datatype->get_ref<const std::string&>())
                 : DType::kNull;
    TF_GRAPHPIPE_RETURN_IF_ERROR(ReadShape(Member(entry, "shape"), what, true, &m.shape));
    out->push_back(std::move(m));
  }
  return Status::Ok();
}

}  // namespace

// ---- datatypes and URLs ----

const char* V2DatatypeName(DType type) {
  const auto raw = static_cast<uint8_t>(type);
  return raw <= kMaxDType ? kDatatypeNames[raw] : nullptr;
}

DType DTypeOfV2Datatype(std::string_view name) {
  for (uint8_t raw = 1; raw <= kMaxDType; ++raw) {
    if (name == kDatatypeNames[raw]) return static_cast<DType>(raw);
  }
  return DType::kNull;
}

bool ParseV2ModelUrl(std::string_view url, V2ModelUrl* out) {
  const size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return false;
  const size_t path_start = url.find('/', scheme + 3);
  if (path_start == std::string_view::npos) return false;
  const size_t path_end = std::min(url.find('?', path_start), url.find('#', path_start));
  std::string_view path = url.substr(path_start, path_end - path_start);
  const std::string_view rest = path_end == std::string_view::npos ? "" : url.substr(path_end);
  if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  std::vector<std::string_view> segments;  // after each '/'
  for (size_t at = 0; at < path.size();) {
    const size_t next = path.find('/', at + 1);
    segments.push_back(path.substr(at + 1, next == std::string_view::npos ? std::string_view::npos
                                                                         : next - at - 1));
    at = next == std::string_view::npos ? path.size() : next;
  }
  // .../v2/models/<name> or .../v2/models/<name>/versions/<v>; a prefix
  // (a proxy's route) may come first.
  const size_t k = segments.size();
  size_t name_at = 0;
  if (k >= 3 && segments[k - 3] == "v2" && segments[k - 2] == "models") {
    name_at = k - 1;
  } else if (k >= 5 && segments[k - 5] == "v2" && segments[k - 4] == "models" &&
             segments[k - 2] == "versions" && !segments[k - 1].empty()) {
    name_at = k - 3;
  } else {
    return false;
  }
  if (segments[name_at].empty()) return false;
  const std::string base(url.substr(0, path_start + path.size()));
  out->model = std::string(segments[name_at]);
  out->metadata_url = base + std::string(rest);
  out->infer_url = base + "/infer" + std::string(rest);
  return true;
}

// ---- encoding ----

class V2MessageWriter {
 public:
  explicit V2MessageWriter(V2Message* message) : m_(message) {}

  bool Reserve(size_t owned) { return m_->owned_.Reserve(std::max<size_t>(owned, 1)); }

  void Owned(const void* bytes, size_t n) {
    if (n == 0) return;
    const size_t at = m_->owned_.size();
    m_->owned_.Append(bytes, n);  // reserved up front: never reallocates
    if (!m_->pieces_.empty() && m_->pieces_.back().external == nullptr) {
      m_->pieces_.back().size += n;
    } else {
      m_->pieces_.push_back({nullptr, at, n});
    }
    m_->size_ += n;
  }

  void External(const uint8_t* data, size_t n) {
    if (n == 0) return;
    m_->pieces_.push_back({data, 0, n});
    m_->size_ += n;
  }

  void SetJsonSize(size_t n) { m_->json_size_ = n; }

 private:
  V2Message* m_;
};

std::vector<BytesSpan> V2Message::Parts() const {
  std::vector<BytesSpan> parts;
  parts.reserve(pieces_.size());
  for (const Piece& p : pieces_) {
    parts.push_back({p.external != nullptr ? p.external : owned_.data() + p.offset, p.size});
  }
  return parts;
}

void V2Message::Flatten() {
  if (pieces_.size() <= 1 && (pieces_.empty() || pieces_.front().external == nullptr)) return;
  ByteBuffer flat;
  flat.Reserve(std::max<size_t>(size_, 1));
  for (const BytesSpan& part : Parts()) flat.Append(part.data, part.size);
  owned_ = std::move(flat);
  pieces_.assign(1, Piece{nullptr, 0, size_});
}

Status EncodeV2InferRequest(const V2InferRequestSpec& spec, TensorBytes bytes, V2Message* out) {
  if (spec.input_names.size() != spec.inputs.size()) {
    return Status(Code::kInvalidArgument,
                  "the v2 protocol needs a name for every input: got " +
                      std::to_string(spec.input_names.size()) + " names for " +
                      std::to_string(spec.inputs.size()) + " inputs");
  }
  std::vector<bool> as_blob(spec.inputs.size());
  size_t owned_blobs = 0;
  size_t estimate = 256;
  for (size_t i = 0; i < spec.inputs.size(); ++i) {
    const TensorView& t = spec.inputs[i];
    const std::string what = "input '" + std::string(spec.input_names[i]) + "'";
    if (spec.input_names[i].empty() || !IsUtf8(spec.input_names[i])) {
      return Status(Code::kInvalidArgument, "input " + std::to_string(i) +
                                                ": a v2 input name must be non-empty UTF-8");
    }
    TF_GRAPHPIPE_RETURN_IF_ERROR(CheckOutgoing(t, what));
    as_blob[i] = spec.binary || !JsonCarries(t);
    estimate += 128 + spec.input_names[i].size() + 24 * t.shape.size();
    if (as_blob[i]) {
      const bool referenced = bytes == TensorBytes::kReference && t.type != DType::kString &&
                              t.nbytes >= kMinReferencedBytes;
      if (!referenced) owned_blobs += BlobSize(t);
    } else if (t.type == DType::kString) {
      for (std::string_view s : t.strings) estimate += s.size() + s.size() / 8 + 4;
    } else {
      estimate += static_cast<size_t>(t.NumElements()) * 26;
    }
  }
  for (std::string_view name : spec.output_names) {
    if (name.empty() || !IsUtf8(name)) {
      return Status(Code::kInvalidArgument, "a v2 output name must be non-empty UTF-8");
    }
    estimate += 64 + name.size();
  }

  std::string header;
  header.reserve(estimate);
  header.append("{\"inputs\":[");
  for (size_t i = 0; i < spec.inputs.size(); ++i) {
    const TensorView& t = spec.inputs[i];
    if (i > 0) header.push_back(',');
    header.append("{\"name\":");
    AppendJsonString(&header, spec.input_names[i]);
    header.append(",\"shape\":");
    AppendShape(&header, t.shape);
    header.append(",\"datatype\":\"");
    header.append(V2DatatypeName(t.type));
    header.push_back('"');
    if (as_blob[i]) {
      header.append(",\"parameters\":{\"binary_data_size\":");
      AppendNumber(&header, BlobSize(t));
      header.push_back('}');
    } else {
      header.append(",\"data\":");
      AppendJsonData(&header, t);
    }
    header.push_back('}');
  }
  header.push_back(']');
  const char* binary_output = spec.binary ? "true" : "false";
  if (!spec.output_names.empty()) {
    header.append(",\"outputs\":[");
    for (size_t i = 0; i < spec.output_names.size(); ++i) {
      if (i > 0) header.push_back(',');
      header.append("{\"name\":");
      AppendJsonString(&header, spec.output_names[i]);
      header.append(",\"parameters\":{\"binary_data\":");
      header.append(binary_output);
      header.append("}}");
    }
    header.push_back(']');
  } else {
    header.append(",\"parameters\":{\"binary_data_output\":");
    header.append(binary_output);
    header.push_back('}');
  }
  header.push_back('}');

  *out = V2Message();
  V2MessageWriter w(out);
  if (!w.Reserve(header.size() + owned_blobs)) {
    return Status(Code::kResourceExhausted, "cannot allocate a v2 request of " +
                                                std::to_string(header.size() + owned_blobs) +
                                                " bytes");
  }
  w.Owned(header.data(), header.size());
  w.SetJsonSize(header.size());
  for (size_t i = 0; i < spec.inputs.size(); ++i) {
    if (!as_blob[i]) continue;
    const TensorView& t = spec.inputs[i];
    if (t.type == DType::kString) {
      for (std::string_view s : t.strings) {
        const uint32_t n = static_cast<uint32_t>(s.size());
        const uint8_t prefix[4] = {static_cast<uint8_t>(n), static_cast<uint8_t>(n >> 8),
                                   static_cast<uint8_t>(n >> 16), static_cast<uint8_t>(n >> 24)};
        w.Owned(prefix, 4);
        w.Owned(s.data(), s.size());
      }
    } else if (bytes == TensorBytes::kReference && t.nbytes >= kMinReferencedBytes) {
      w.External(t.data, t.nbytes);
    } else {
      w.Owned(t.data, t.nbytes);
    }
  }
  return Status::Ok();
}

// ---- decoding ----

Status DecodeV2InferResponse(const uint8_t* body, size_t size, size_t json_size,
                             V2InferResponse* out) {
  out->model_name.clear();
  out->output_names.clear();
  out->outputs.clear();
  out->storage.clear();
  if (json_size > size) {
    return Malformed("Inference-Header-Content-Length " + std::to_string(json_size) +
                     " exceeds the " + std::to_string(size) + "-byte body");
  }
  try {
    Json header;
    TF_GRAPHPIPE_RETURN_IF_ERROR(ParseJson(body, json_size, "header", &header));
    if (!header.is_object()) return Malformed("the header is not a JSON object");
    out->model_name = StringMember(header, "model_name");
    const Json* outputs = Member(header, "outputs");
    if (outputs != nullptr && !outputs->is_array()) return Malformed("`outputs` is not an array");
    size_t offset = json_size;
    const size_t count = outputs == nullptr ? 0 : outputs->size();
    out->outputs.resize(count);
    out->output_names.resize(count);
    for (size_t i = 0; i < count; ++i) {
      const Json& o = (*outputs)[i];
      std::string what = "output " + std::to_string(i);
      if (!o.is_object()) return Malformed(what + " is not an object");
      const Json* name = Member(o, "name");
      if (name == nullptr || !name->is_string()) return Malformed(what + " has no `name`");
      out->output_names[i] = name->get<std::string>();
      what = "output '" + out->output_names[i] + "'";
      TensorView& view = out->outputs[i];
      const Json* datatype = Member(o, "datatype");
      view.type = datatype != nullptr && datatype->is_string()
                      ? DTypeOfV2Datatype(datatype->get_ref<const std::string&>())
                      : DType::kNull;
      if (view.type == DType::kNull) {
        return Malformed(what + ": datatype " + (datatype ? datatype->dump() : "(missing)") +
                         " is not a v2 datatype");
      }
      TF_GRAPHPIPE_RETURN_IF_ERROR(ReadShape(Member(o, "shape"), what, false, &view.shape));
      int64_t n = 0;
      if (!CountElements(view.shape, &n)) {
        return Malformed(what + " has invalid shape " + ShapeString(view.shape));
      }
      const Json* parameters = Member(o, "parameters");
      if (parameters != nullptr && !parameters->is_object()) {
        return Malformed(what + ": `parameters` is not an object");
      }
      const Json* blob_size = parameters == nullptr ? nullptr : Member(*parameters, "binary_data_size");
      if (blob_size != nullptr) {
        if (!blob_size->is_number_integer() ||
            (!blob_size->is_number_unsigned() && blob_size->get<int64_t>() < 0)) {
          return Malformed(what + ": binary_data_size " + blob_size->dump() +
                           " is not a byte count");
        }
        const uint64_t n_bytes = blob_size->get<uint64_t>();
        if (n_bytes > size - offset) {
          return Malformed(what + ": binary_data_size " + std::to_string(n_bytes) + " but only " +
                           std::to_string(size - offset) + " bytes are left in the body");
        }
        TF_GRAPHPIPE_RETURN_IF_ERROR(
            ReadBlob(body + offset, static_cast<size_t>(n_bytes), n, what, &view));
        offset += static_cast<size_t>(n_bytes);
      } else {
        const Json* data = Member(o, "data");
        if (data == nullptr) return Malformed(what + " has neither `data` nor binary_data_size");
        TF_GRAPHPIPE_RETURN_IF_ERROR(ReadJsonData(*data, n, what, &view, &out->storage));
      }
    }
    if (offset != size) {
      return Malformed(std::to_string(size - offset) +
                       " bytes follow the last output's binary data");
    }
  } catch (const std::exception& e) {  // nlohmann type errors, bad_alloc
    return Malformed(e.what());
  }
  return Status::Ok();
}

Status DecodeV2ModelMetadata(const uint8_t* body, size_t size, ModelMetadata* out) {
  try {
    Json j;
    TF_GRAPHPIPE_RETURN_IF_ERROR(ParseJson(body, size, "model metadata", &j));
    if (!j.is_object()) return Malformed("model metadata is not a JSON object");
    *out = ModelMetadata();
    out->name = StringMember(j, "name");
    out->server = StringMember(j, "platform");
    if (const Json* versions = Member(j, "versions")) {
      if (!versions->is_array()) return Malformed("metadata `versions` is not an array");
      for (const Json& v : *versions) {
        if (!out->version.empty()) out->version += ",";
        out->version += v.is_string() ? v.get<std::string>() : v.dump();
      }
    }
    TF_GRAPHPIPE_RETURN_IF_ERROR(ReadTensorMetadata(Member(j, "inputs"), "input", &out->inputs));
    return ReadTensorMetadata(Member(j, "outputs"), "output", &out->outputs);
  } catch (const std::exception& e) {
    return Malformed(e.what());
  }
}

std::string V2ErrorText(const uint8_t* body, size_t size) {
  try {
    Json j;
    if (!ParseJson(body, size, "error", &j).ok() || !j.is_object()) return "";
    for (const char* key : {"error", "detail"}) {
      if (const Json* value = Member(j, key)) {
        return value->is_string() ? value->get<std::string>()
                                  : value->dump(-1, ' ', false, Json::error_handler_t::replace);
      }
    }
  } catch (const std::exception&) {
  }
  return "";
}

}  // namespace tf_graphpipe
