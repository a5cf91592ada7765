// SPDX-License-Identifier: Apache-2.0
// Encoding v2 inference requests: a JSON header, then the binary tensor
// extension's raw blobs (referenced, not copied, when large).
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

}  // namespace

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

}  // namespace tf_graphpipe
