// SPDX-License-Identifier: Apache-2.0
// EncodedMessage: a finished flatbuffer, owned. Move-only; its bytes stay put
// for its lifetime, so an HTTP transfer can send them without a copy.
#ifndef TF_GRAPHPIPE_CC_CORE_ENCODED_MESSAGE_H_
#define TF_GRAPHPIPE_CC_CORE_ENCODED_MESSAGE_H_

#include <cstddef>
#include <cstdint>
#include <utility>

#include "flatbuffers/detached_buffer.h"

namespace tf_graphpipe {

class EncodedMessage {
 public:
  EncodedMessage() = default;
  explicit EncodedMessage(flatbuffers::DetachedBuffer buffer)
      : buffer_(std::move(buffer)) {}

  const uint8_t* data() const { return buffer_.data(); }
  size_t size() const { return buffer_.size(); }

 private:
  flatbuffers::DetachedBuffer buffer_;
};

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_ENCODED_MESSAGE_H_
