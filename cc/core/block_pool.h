// SPDX-License-Identifier: Apache-2.0
// Large blocks kept for the next received body instead of going back to the
// system. A fresh multi-megabyte block is new memory to the kernel: the first
// touch of each page faults and the kernel zeroes it (for a 12.8 MB answer on
// 2 MiB huge pages, 7 faults zeroing 14 MB, about 2 ms a call, the same
// again for each later answer that size). A kept block is touched memory: no
// fault, no zeroing.
//
// Only ByteBuffer's huge-page blocks (byte_buffer.h) come and go here. A block
// enters the pool when its ByteBuffer lets go of it, which for a received
// answer is when the last output tensor or NumPy array viewing it is gone: a
// block the pool hands out is never one anything still views.
//
// Bounded: at most kMaxBlocks blocks and kMaxBytes bytes wait in the pool (a
// larger block is freed at once; when full, the block kept longest is freed
// first), so idle memory is at most kMaxBytes. A block is handed out only for
// a need of at least half its size.
//
// Thread-safety: thread-safe (blocks are freed on whatever thread the last
// view goes). In a child forked from this process the pool is not used (its
// lock may have been held across the fork): blocks come from and go to the
// system there.
#ifndef TF_GRAPHPIPE_CC_CORE_BLOCK_POOL_H_
#define TF_GRAPHPIPE_CC_CORE_BLOCK_POOL_H_

#include <sys/types.h>

#include <cstddef>
#include <deque>
#include <mutex>
#include <utility>

namespace tf_graphpipe {

class BlockPool {
 public:
  static constexpr size_t kMaxBlocks = 8;
  static constexpr size_t kMaxBytes = size_t{256} << 20;

  // The process's pool. Never destroyed.
  static BlockPool& Shared();

  // A kept block of at least `bytes` and at most twice that, its size in
  // `*size`; null when none fits.
  void* Take(size_t bytes, size_t* size);
  // Keeps `block` (`size` bytes, from std::aligned_alloc) for a later Take,
  // or frees it.
  void Give(void* block, size_t size);

  // Blocks and bytes waiting, for tests.
  size_t blocks() const;
  size_t bytes() const;

 private:
  BlockPool();
  bool Usable() const;  // not in a forked child

  const pid_t owner_;
  mutable std::mutex mu_;
  std::deque<std::pair<void*, size_t>> kept_;  // oldest first; guarded by mu_
  size_t kept_bytes_ = 0;                      // guarded by mu_
};

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_BLOCK_POOL_H_
