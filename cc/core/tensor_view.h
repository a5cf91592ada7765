// SPDX-License-Identifier: Apache-2.0
// TensorView: a non-owning tensor, the zero-copy seam between the codec and
// its callers (NumPy arrays, TensorFlow tensors, received buffers). Whoever
// builds a view keeps the memory it points at alive while the view is used.
#ifndef TF_GRAPHPIPE_CC_CORE_TENSOR_VIEW_H_
#define TF_GRAPHPIPE_CC_CORE_TENSOR_VIEW_H_

#include <cstddef>
#include <cstdint>
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

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_TENSOR_VIEW_H_
