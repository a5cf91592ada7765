// SPDX-License-Identifier: Apache-2.0
// BytesSpan: a borrowed run of bytes (one part of a scatter-gather body).
#ifndef TF_GRAPHPIPE_CC_CORE_BYTES_SPAN_H_
#define TF_GRAPHPIPE_CC_CORE_BYTES_SPAN_H_

#include <cstddef>
#include <cstdint>

namespace tf_graphpipe {

struct BytesSpan {
  const uint8_t* data = nullptr;
  size_t size = 0;
};

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_BYTES_SPAN_H_
