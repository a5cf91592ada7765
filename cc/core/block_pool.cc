// SPDX-License-Identifier: Apache-2.0
#include "cc/core/block_pool.h"

#include <unistd.h>

#include <cstdlib>

namespace tf_graphpipe {

BlockPool& BlockPool::Shared() {
  static BlockPool* shared = new BlockPool();
  return *shared;
}

BlockPool::BlockPool() : owner_(::getpid()) {}

bool BlockPool::Usable() const { return ::getpid() == owner_; }

void* BlockPool::Take(size_t bytes, size_t* size) {
  if (!Usable()) return nullptr;
  std::lock_guard<std::mutex> lock(mu_);
  auto best = kept_.end();
  for (auto it = kept_.begin(); it != kept_.end(); ++it) {
    if (it->second < bytes || it->second / 2 > bytes) continue;
    if (best == kept_.end() || it->second < best->second) best = it;
  }
  if (best == kept_.end()) return nullptr;
  void* block = best->first;
  *size = best->second;
  kept_bytes_ -= best->second;
  kept_.erase(best);
  return block;
}

void BlockPool::Give(void* block, size_t size) {
  if (block == nullptr) return;
  if (!Usable() || size > kMaxBytes) {
    std::free(block);
    return;
  }
  std::deque<std::pair<void*, size_t>> evicted;
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (!kept_.empty() && (kept_.size() >= kMaxBlocks || kept_bytes_ + size > kMaxBytes)) {
      kept_bytes_ -= kept_.front().second;
      evicted.push_back(kept_.front());
      kept_.pop_front();
    }
    kept_.emplace_back(block, size);
    kept_bytes_ += size;
  }
  for (auto& [old, unused] : evicted) std::free(old);  // outside the lock
}

size_t BlockPool::blocks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return kept_.size();
}

size_t BlockPool::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return kept_bytes_;
}

}  // namespace tf_graphpipe
