// SPDX-License-Identifier: Apache-2.0
// ByteBuffer's huge-page blocks and the BlockPool that keeps them: a block
// comes back for the next buffer of its size only after the buffer holding
// it is gone, never while it lives; the pool stays within its bounds; a
// forked child does not use it.
#include "cc/core/block_pool.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "cc/core/byte_buffer.h"

namespace tf_graphpipe {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

// A buffer holding `n` bytes of `fill`, large enough for a huge-page block.
std::unique_ptr<ByteBuffer> Filled(size_t n, uint8_t fill) {
  auto buffer = std::make_unique<ByteBuffer>();
  EXPECT_TRUE(buffer->Resize(n));
  std::memset(buffer->data(), fill, n);
  return buffer;
}

TEST(BlockPool, FreedBufferBlockServesTheNextBufferOfItsSize) {
  auto first = Filled(13 * kMiB, 1);
  const uint8_t* block = first->data();
  first.reset();
  auto second = Filled(13 * kMiB, 2);
  EXPECT_EQ(second->data(), block);
}

TEST(BlockPool, LiveBufferBlockIsNeverHandedOut) {
  auto kept = Filled(11 * kMiB, 7);
  std::vector<std::unique_ptr<ByteBuffer>> later;
  for (int i = 0; i < 4; ++i) {
    later.push_back(Filled(11 * kMiB, 9));
    const uint8_t* begin = later.back()->data();
    EXPECT_TRUE(begin + 11 * kMiB <= kept->data() || kept->data() + 11 * kMiB <= begin);
    later.pop_back();  // back to the pool: the next one may reuse it, never `kept`'s
  }
  for (size_t i = 0; i < 11 * kMiB; i += 4096) ASSERT_EQ(kept->data()[i], 7);
}

TEST(BlockPool, SmallNeedDoesNotPinALargeBlock) {
  auto large = Filled(40 * kMiB, 1);
  const uint8_t* block = large->data();
  large.reset();
  auto small = Filled(6 * kMiB, 2);
  EXPECT_NE(small->data(), block);
}

TEST(BlockPool, StaysWithinItsBounds) {
  BlockPool& pool = BlockPool::Shared();
  for (size_t i = 0; i < BlockPool::kMaxBlocks + 3; ++i) {
    pool.Give(std::aligned_alloc(ByteBuffer::kHugePage, 6 * kMiB), 6 * kMiB);
    EXPECT_LE(pool.blocks(), BlockPool::kMaxBlocks);
    EXPECT_LE(pool.bytes(), BlockPool::kMaxBytes);
  }
  const size_t bytes = pool.bytes();
  const size_t over = BlockPool::kMaxBytes + ByteBuffer::kHugePage;
  pool.Give(std::aligned_alloc(ByteBuffer::kHugePage, over), over);  // freed, not kept
  EXPECT_EQ(pool.bytes(), bytes);
}

TEST(BlockPool, SmallBuffersNeverEnterThePool) {
  BlockPool& pool = BlockPool::Shared();
  const size_t blocks = pool.blocks();
  Filled(1 * kMiB, 3).reset();
  EXPECT_EQ(pool.blocks(), blocks);
}

TEST(BlockPool, ForkedChildAllocatesFromTheSystem) {
  Filled(9 * kMiB, 1).reset();  // the parent now keeps a block of this size
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    size_t size = 0;
    void* taken = BlockPool::Shared().Take(10 * kMiB, &size);
    auto buffer = Filled(9 * kMiB, 4);
    buffer.reset();  // freed, not kept
    ::_exit(taken == nullptr && BlockPool::Shared().Take(9 * kMiB, &size) == nullptr ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace tf_graphpipe
