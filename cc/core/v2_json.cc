// SPDX-License-Identifier: Apache-2.0
#include "cc/core/v2_json.h"

#include <cstring>
#include <optional>
#include <utility>

namespace tf_graphpipe {

namespace {

// Triton writes NaN and the infinities as bare tokens no strict JSON parser
// takes. Outside strings they become the strings "NaN", "Infinity",
// "-Infinity". Returns nothing when the text has no such token (the usual
// case: no copy).
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

template <typename T>
T Load(const uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));  // received bytes are not aligned for T
  return value;
}

template <typename T>
void AppendIntegers(std::string* out, const TensorView& t) {
  const size_t n = t.nbytes / sizeof(T);
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) out->push_back(',');
    AppendJsonNumber(out, Load<T>(t.data + i * sizeof(T)));
  }
}

template <typename T>
void AppendFloats(std::string* out, const TensorView& t) {
  const size_t n = t.nbytes / sizeof(T);
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) out->push_back(',');
    AppendJsonFloat(out, Load<T>(t.data + i * sizeof(T)));
  }
}

}  // namespace

bool ParseV2Json(std::string_view text, Json* out, std::string* error) {
  const std::optional<std::string> quoted = QuoteNonFiniteTokens(text);
  if (quoted) text = *quoted;
  try {
    *out = Json::parse(text.begin(), text.end());
    return true;
  } catch (const Json::parse_error& e) {
    // "[json.exception.parse_error.101] parse error at line 1, column 2: ..."
    std::string_view what = e.what();
    const size_t at = what.find("] ");
    *error = std::string(at == std::string_view::npos ? what : what.substr(at + 2));
  } catch (const std::exception& e) {  // bad_alloc
    *error = e.what();
  }
  return false;
}

std::string DescribeJson(const Json& value) {
  switch (value.type()) {
    case Json::value_t::object: return "an object";
    case Json::value_t::array: return "an array";
    case Json::value_t::string: {
      const std::string& s = value.get_ref<const std::string&>();
      if (s.size() <= 40) return value.dump(-1, ' ', false, Json::error_handler_t::replace);
      return "a string of " + std::to_string(s.size()) + " bytes";
    }
    default: return value.dump();  // null, a boolean or a number
  }
}

bool ReadJsonFloat(const Json& value, double* out) {
  if (value.is_number()) {
    *out = value.get<double>();
    return true;
  }
  if (value.is_null()) {  // kserve writes non-finite floats as null
    *out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (value.is_string()) {
    const std::string& s = value.get_ref<const std::string&>();
    if (s == "NaN") *out = std::numeric_limits<double>::quiet_NaN();
    else if (s == "Infinity") *out = std::numeric_limits<double>::infinity();
    else if (s == "-Infinity") *out = -std::numeric_limits<double>::infinity();
    else return false;
    return true;
  }
  return false;
}

bool IsUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

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

void AppendJsonShape(std::string* out, const std::vector<int64_t>& shape) {
  out->push_back('[');
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendJsonNumber(out, shape[i]);
  }
  out->push_back(']');
}

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
    default:  // FP16, BF16: no JSON form (HasJsonForm)
      break;
  }
  out->push_back(']');
}

}  // namespace tf_graphpipe
