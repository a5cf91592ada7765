// SPDX-License-Identifier: Apache-2.0
// TensorView: a non-owning tensor, the zero-copy seam between the codec and
// its callers (NumPy arrays, TensorFlow tensors, received buffers). Whoever
// builds a view keeps the memory it points at alive while the view is used.
#ifndef TF_GRAPHPIPE_CC_CORE_TENSOR_VIEW_H_
#define TF_GRAPHPIPE_CC_CORE_TENSOR_VIEW_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cc/core/dtype.h"

namespace tf_graphpipe {

struct TensorView {
  DType type = DType::kNull;
  std::vector<int64_t> shape;
  // Raw element bytes, little-endian, C order; numeric types only. Decoded
  // views point into the received buffer, which peers align only to 4 bytes:
  // copy 8-byte elements out with memcpy, never cast this pointer in place.
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  // One entry per element for kString; may hold any bytes, NUL included.
  std::vector<std::string_view> strings;

  // prod(shape); 1 for rank 0. Shapes are validated before views are handed
  // out, so this cannot overflow for a decoded view.
  int64_t NumElements() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// The shape rules every codec enforces, on what it sends and what it reads.

// NumPy's limit, and far more than any model uses; TensorFlow allows 254.
constexpr size_t kMaxRank = 64;

// prod(shape). False for a negative dimension, a rank over kMaxRank, or
// non-zero dimensions whose product passes 2^59: even a tensor with a zero
// dimension must be one NumPy and TensorFlow can describe (their byte sizes
// are products of the dimensions and must fit in 63 bits).
inline bool CountElements(const std::vector<int64_t>& shape, int64_t* count) {
  constexpr int64_t kMax = int64_t{1} << 59;
  if (shape.size() > kMaxRank) return false;
  int64_t nonzero = 1;
  bool empty = false;
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (d == 0) {
      empty = true;
      continue;
    }
    if (nonzero > kMax / d) return false;
    nonzero *= d;
  }
  *count = empty ? 0 : nonzero;
  return true;
}

inline std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_TENSOR_VIEW_H_
