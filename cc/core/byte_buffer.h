// SPDX-License-Identifier: Apache-2.0
// ByteBuffer: an owned, 64-byte aligned, growable byte buffer. Received HTTP
// bodies land here in one piece (sized from Content-Length when the peer sends
// it), so decoded tensors can be viewed in place. The aligned byte is byte 0
// unless AlignAt() moves it: a v2 answer's first tensor blob follows a JSON
// header of any length, and lands aligned when the header's length is known
// before the body arrives. Huge-page blocks come from, and go back to, the
// process's BlockPool (block_pool.h): a body as large as the last one lands
// in memory already touched. Movable (addresses kept), not copyable, not
// thread-safe.
#ifndef TF_GRAPHPIPE_CC_CORE_BYTE_BUFFER_H_
#define TF_GRAPHPIPE_CC_CORE_BYTE_BUFFER_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include <sys/mman.h>

#include "cc/core/block_pool.h"

namespace tf_graphpipe {

class ByteBuffer {
 public:
  static constexpr size_t kAlignment = 64;
  // Buffers this large are aligned to, and asked to be backed by, 2 MiB huge
  // pages: a fresh 4 KiB-page buffer costs a page fault every 4 KiB, which
  // for a 77 MB body took longer than copying it.
  static constexpr size_t kHugePage = size_t{2} << 20;
  static constexpr size_t kHugeThreshold = size_t{4} << 20;

  ByteBuffer() = default;
  ~ByteBuffer() { Release(); }
  ByteBuffer(ByteBuffer&& other) noexcept { *this = std::move(other); }
  ByteBuffer& operator=(ByteBuffer&& other) noexcept {
    if (this != &other) {
      Release();
      block_ = std::exchange(other.block_, nullptr);
      block_size_ = std::exchange(other.block_size_, 0);
      pooled_ = std::exchange(other.pooled_, false);
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
      capacity_ = std::exchange(other.capacity_, 0);
      lead_ = std::exchange(other.lead_, 0);
    }
    return *this;
  }
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }

  // Makes byte `offset` of the contents the aligned one (data() is then
  // aligned only when offset % kAlignment == 0). Only while the buffer is
  // empty: memory already reserved is given back.
  void AlignAt(size_t offset) {
    const size_t lead = (kAlignment - offset % kAlignment) % kAlignment;
    if (size_ != 0 || lead == lead_) return;
    Release();
    block_ = data_ = nullptr;
    capacity_ = 0;
    lead_ = lead;
  }

  // Ensures room for `capacity` bytes in total. Returns false when the memory
  // cannot be had; the buffer is then unchanged.
  bool Reserve(size_t capacity) {
    if (capacity <= capacity_) return true;
    const size_t alignment = capacity >= kHugeThreshold ? kHugePage : kAlignment;
    size_t rounded = (capacity + lead_ + alignment - 1) / alignment * alignment;
    uint8_t* grown = nullptr;
    if (alignment == kHugePage) {
      grown = static_cast<uint8_t*>(BlockPool::Shared().Take(rounded, &rounded));
    }
    if (grown == nullptr) {
      grown = static_cast<uint8_t*>(std::aligned_alloc(alignment, rounded));
      if (grown == nullptr) return false;
      if (alignment == kHugePage) madvise(grown, rounded, MADV_HUGEPAGE);  // advisory
    }
    if (size_ > 0) std::memcpy(grown + lead_, data_, size_);
    Release();
    block_ = grown;
    block_size_ = rounded;
    pooled_ = alignment == kHugePage;
    data_ = grown + lead_;
    capacity_ = rounded - lead_;
    return true;
  }

  // Appends bytes, growing geometrically when the final size was not known.
  bool Append(const void* bytes, size_t n) {
    if (size_ + n > capacity_ && !Reserve(std::max(size_ + n, capacity_ * 2))) {
      return false;
    }
    std::memcpy(data_ + size_, bytes, n);
    size_ += n;
    return true;
  }

  // Sets the size to `n` (room reserved as needed; new bytes are not
  // initialised: the caller fills them). Returns false when the memory
  // cannot be had; the buffer is then unchanged.
  bool Resize(size_t n) {
    if (!Reserve(n)) return false;
    size_ = n;
    return true;
  }

  void Clear() { size_ = 0; }

 private:
  // Gives the block back: huge-page ones to the pool, others to the system.
  void Release() {
    if (pooled_) {
      BlockPool::Shared().Give(block_, block_size_);
    } else {
      std::free(block_);
    }
    block_ = nullptr;
    block_size_ = 0;
    pooled_ = false;
  }

  uint8_t* block_ = nullptr;  // what aligned_alloc gave; data_ is lead_ bytes in
  size_t block_size_ = 0;     // the block's bytes
  bool pooled_ = false;       // a huge-page block: back to the pool
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;  // from data_
  size_t lead_ = 0;
};

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_BYTE_BUFFER_H_
