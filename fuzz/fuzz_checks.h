// SPDX-License-Identifier: Apache-2.0
// What every fuzz target asserts about a decoder's output, beyond "no crash":
// views point inside the input, sizes agree with shapes, and re-encoding a
// decoded message then decoding it again gives the same values. A broken
// invariant calls __builtin_trap(), which libFuzzer reports as a crash.
#ifndef TF_GRAPHPIPE_FUZZ_FUZZ_CHECKS_H_
#define TF_GRAPHPIPE_FUZZ_FUZZ_CHECKS_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "cc/core/codec.h"
#include "cc/core/status.h"
#include "cc/core/tensor_view.h"

namespace tf_graphpipe {
namespace fuzz {

inline void Require(bool condition) {
  if (!condition) __builtin_trap();
}

// Sinks reads so the compiler keeps them and ASan sees every byte touched.
inline volatile uint8_t g_sink;

inline bool Inside(const void* p, size_t n, const uint8_t* buffer, size_t size) {
  const auto* b = static_cast<const uint8_t*>(p);
  return n == 0 || (b >= buffer && b + n <= buffer + size && b + n >= b);
}

inline void TouchBytes(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  uint8_t x = 0;
  for (size_t i = 0; i < n; ++i) x ^= b[i];
  g_sink = x;
}

inline void CheckString(std::string_view s, const uint8_t* buffer, size_t size) {
  Require(Inside(s.data(), s.size(), buffer, size));
  TouchBytes(s.data(), s.size());
}

// A decoded view: a known type (a GraphPipe wire type, or with
// `any_protocol` also v2's), a shape whose element count is sane, and exactly
// the bytes (or strings) that count needs, each where `inside(pointer, size)`
// says decoded bytes may lie.
template <typename InsideFn>
void CheckTensorIn(const TensorView& t, bool any_protocol, InsideFn inside) {
  const auto raw = static_cast<uint8_t>(t.type);
  Require(any_protocol ? IsAnyTensorType(raw) : IsTensorType(raw));
  Require(t.shape.size() <= 64);
  int64_t n = 1;
  for (int64_t d : t.shape) {
    Require(d >= 0);
    if (d == 0) n = 0;
  }
  if (n != 0) n = t.NumElements();  // cannot overflow: the decoder bounded it
  if (t.type == DType::kString) {
    Require(t.nbytes == 0);
    Require(static_cast<int64_t>(t.strings.size()) == n);
    for (std::string_view s : t.strings) {
      Require(inside(s.data(), s.size()));
      TouchBytes(s.data(), s.size());
    }
  } else {
    Require(t.strings.empty());
    Require(t.nbytes == static_cast<size_t>(n) * ElementSize(t.type));
    Require(t.nbytes == 0 || t.data != nullptr);
    Require(inside(t.data, t.nbytes));
    TouchBytes(t.data, t.nbytes);
  }
}

// CheckTensorIn for a GraphPipe view into `buffer`.
inline void CheckTensor(const TensorView& t, const uint8_t* buffer, size_t size) {
  CheckTensorIn(t, false, [&](const void* p, size_t n) { return Inside(p, n, buffer, size); });
}

inline bool SameTensor(const TensorView& a, const TensorView& b) {
  if (a.type != b.type || a.shape != b.shape || a.nbytes != b.nbytes ||
      a.strings != b.strings) {
    return false;
  }
  return a.nbytes == 0 || std::memcmp(a.data, b.data, a.nbytes) == 0;
}

inline bool SameTensors(const std::vector<TensorView>& a, const std::vector<TensorView>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!SameTensor(a[i], b[i])) return false;
  }
  return true;
}

// Decoders refuse with kDataLoss and a message, nothing else.
inline void CheckRefusal(const Status& status) {
  Require(status.code() == Code::kDataLoss);
  Require(!status.message().empty());
}

// An EncodedMessage as one contiguous copy (kCopy messages already are).
inline std::vector<uint8_t> Contiguous(const EncodedMessage& message) {
  Require(message.contiguous());
  const uint8_t* p = message.data();
  return std::vector<uint8_t>(p, p + message.size());
}

}  // namespace fuzz
}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_FUZZ_FUZZ_CHECKS_H_
