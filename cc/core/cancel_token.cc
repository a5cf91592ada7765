// SPDX-License-Identifier: Apache-2.0
#include "cc/core/cancel_token.h"

#include <utility>

namespace tf_graphpipe {

void CancelToken::Cancel() {
  std::map<uint64_t, Callback> callbacks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_) return;
    cancelled_ = true;
    running_callbacks_ = true;
    canceller_ = std::this_thread::get_id();
    callbacks.swap(callbacks_);
  }
  // Outside the lock: a callback may take locks of its own, and a
  // transport's thread may be deregistering meanwhile.
  for (auto& entry : callbacks) entry.second();
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_callbacks_ = false;
  }
  callbacks_done_.notify_all();
}

bool CancelToken::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_;
}

bool CancelToken::Register(Callback on_cancel, uint64_t* id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (cancelled_) return false;
  *id = next_id_++;
  callbacks_.emplace(*id, std::move(on_cancel));
  return true;
}

void CancelToken::Deregister(uint64_t id) {
  std::unique_lock<std::mutex> lock(mu_);
  if (callbacks_.erase(id) > 0) return;  // never ran, never will
  // Taken by Cancel(): it may be running now. Wait for it, unless this is
  // the cancelling thread itself (waiting would never end).
  if (canceller_ == std::this_thread::get_id()) return;
  callbacks_done_.wait(lock, [this] { return !running_callbacks_; });
}

}  // namespace tf_graphpipe
