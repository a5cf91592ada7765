// SPDX-License-Identifier: Apache-2.0
// EncodedMessage: a finished flatbuffer, owned, whose large tensor payloads
// may be referenced instead of copied.
//
// The codec leaves a hole in the flatbuffer where a referenced tensor's bytes
// belong and records where to find them; the message is then sent as a list
// of parts (scatter-gather), so a 77 MB request is never copied before the
// socket. Whoever encoded with referenced data keeps that data alive, and
// unchanged, for as long as the message is used, or calls Flatten().
// Move-only; the bytes stay put for its lifetime. Not thread-safe.
#ifndef TF_GRAPHPIPE_CC_CORE_ENCODED_MESSAGE_H_
#define TF_GRAPHPIPE_CC_CORE_ENCODED_MESSAGE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "cc/core/bytes_span.h"
#include "flatbuffers/detached_buffer.h"

namespace tf_graphpipe {

class EncodedMessage {
 public:
  // A hole `size` bytes long starting `offset` bytes into the message, to be
  // filled from `data`.
  struct Reference {
    size_t offset;
    const uint8_t* data;
    size_t size;
  };

  EncodedMessage() = default;
  EncodedMessage(flatbuffers::DetachedBuffer buffer, std::vector<Reference> references)
      : buffer_(std::move(buffer)), references_(std::move(references)) {}

  size_t size() const { return buffer_.size(); }
  bool contiguous() const { return references_.empty(); }

  // The bytes, when contiguous() (after Flatten() at the latest).
  const uint8_t* data() const { return buffer_.data(); }

  // The message in order, holes filled by their references.
  std::vector<BytesSpan> Parts() const {
    std::vector<BytesSpan> parts;
    size_t position = 0;
    for (const Reference& r : references_) {
      if (r.offset > position) parts.push_back({buffer_.data() + position, r.offset - position});
      if (r.size > 0) parts.push_back({r.data, r.size});
      position = r.offset + r.size;
    }
    if (position < buffer_.size()) {
      parts.push_back({buffer_.data() + position, buffer_.size() - position});
    }
    return parts;
  }

  // Copies referenced bytes into their holes; the message then owns them all.
  void Flatten() {
    for (const Reference& r : references_) {
      if (r.size > 0) std::memcpy(buffer_.data() + r.offset, r.data, r.size);
    }
    references_.clear();
  }

 private:
  flatbuffers::DetachedBuffer buffer_;
  std::vector<Reference> references_;  // ascending offsets, not overlapping
};

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_ENCODED_MESSAGE_H_
