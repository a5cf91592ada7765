// SPDX-License-Identifier: Apache-2.0
// The JSON text rules of the Open Inference Protocol (v2) that both of its
// directions share (docs/protocol/SPEC_V2.md section 3): Triton's bare NaN /
// Infinity / -Infinity tokens, integers read exactly (never through double),
// and strings written as JSON only when they are UTF-8.
//
// All functions are thread-safe (no shared state) and never throw.
#ifndef TF_GRAPHPIPE_CC_CORE_V2_JSON_H_
#define TF_GRAPHPIPE_CC_CORE_V2_JSON_H_

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cc/core/tensor_view.h"

namespace tf_graphpipe {

using Json = nlohmann::json;

// ---- reading ----

// Parses `text`, taking Triton's non-finite tokens outside strings as the
// strings "NaN", "Infinity" and "-Infinity" (which ReadJsonFloat accepts).
// On failure returns false and sets `error` to where and why.
bool ParseV2Json(std::string_view text, Json* out, std::string* error);

// A JSON value's kind for messages ("a string", "an object", "-3"): scalars
// as their text, containers by kind only (never dumped: they may nest deep).
std::string DescribeJson(const Json& value);

// A number, Triton's tokens (as ParseV2Json leaves them) or null (kserve's
// NaN) as a double.
bool ReadJsonFloat(const Json& value, double* out);

// An integer that fits T exactly; false for floats, even integral ones.
template <typename T>
bool ReadJsonInteger(const Json& value, T* out) {
  if (value.is_number_unsigned()) {
    const uint64_t u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) return false;
    *out = static_cast<T>(u);
    return true;
  }
  if (value.is_number_integer()) {
    const int64_t i = value.get<int64_t>();
    if (i < static_cast<int64_t>(std::numeric_limits<T>::min())) return false;
    if (i > 0 && static_cast<uint64_t>(i) > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
      return false;
    }
    *out = static_cast<T>(i);
    return true;
  }
  return false;
}

// ---- writing ----

bool IsUtf8(std::string_view s);

// Appends `s` as a JSON string; the caller checked it is UTF-8.
void AppendJsonString(std::string* out, std::string_view s);

template <typename T>
void AppendJsonNumber(std::string* out, T value) {
  char text[64];
  const auto result = std::to_chars(text, text + sizeof(text), value);
  out->append(text, result.ptr);
}

// The shortest text that reads back exactly; Triton's tokens for NaN and
// the infinities (which Triton, tritonclient and Python's json read).
// Negative zero is "-0.0": JSON readers take "-0" for the integer 0.
template <typename T>
void AppendJsonFloat(std::string* out, T value) {
  if (std::isnan(value)) {
    out->append("NaN");
  } else if (std::isinf(value)) {
    out->append(value > 0 ? "Infinity" : "-Infinity");
  } else if (value == 0 && std::signbit(value)) {
    out->append("-0.0");
  } else {
    AppendJsonNumber(out, value);
  }
}

// Appends a shape as a JSON array of integers.
void AppendJsonShape(std::string* out, const std::vector<int64_t>& shape);

// FP16 and BF16 have no JSON form (SPEC_V2 section 3); every other type has.
constexpr bool HasJsonForm(DType type) {
  return type != DType::kFloat16 && type != DType::kBfloat16 && type != DType::kNull;
}

// Appends the flat JSON `data` array of a consistent tensor (shape, bytes
// and strings checked by the caller) whose type HasJsonForm, strings UTF-8.
void AppendJsonData(std::string* out, const TensorView& t);

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_V2_JSON_H_
