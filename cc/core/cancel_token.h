// SPDX-License-Identifier: Apache-2.0
// CancelToken: how whoever started a call tells its transfers to stop. The
// op kernel cancels it when TensorFlow cancels the step; the call plan puts
// it on every request of the call (HttpRequest::cancel); the transport
// registers a callback on it that aborts the transfer.
//
// Thread-safety: every method may be called from any thread. Callbacks run
// on the thread that calls Cancel(), outside the token's lock: keep them
// short and never block in them.
#ifndef TF_GRAPHPIPE_CC_CORE_CANCEL_TOKEN_H_
#define TF_GRAPHPIPE_CC_CORE_CANCEL_TOKEN_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

namespace tf_graphpipe {

class CancelToken {
 public:
  using Callback = std::function<void()>;

  CancelToken() = default;
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  // Marks the token cancelled and runs every registered callback once.
  // Later calls do nothing.
  void Cancel();
  bool cancelled() const;

  // Registers `on_cancel` for Cancel() and sets `*id` for Deregister.
  // Returns false, and never runs it, when the token is already cancelled.
  bool Register(Callback on_cancel, uint64_t* id);

  // Removes a registration. When its callback is running on another thread,
  // returns only once it has returned, so what it captured may be freed
  // then. Never call it from inside a callback of the same token.
  void Deregister(uint64_t id);

 private:
  mutable std::mutex mu_;
  std::condition_variable callbacks_done_;
  bool cancelled_ = false;          // guarded by mu_
  bool running_callbacks_ = false;  // guarded by mu_
  std::thread::id canceller_;       // guarded by mu_
  uint64_t next_id_ = 1;            // guarded by mu_
  std::map<uint64_t, Callback> callbacks_;  // guarded by mu_
};

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_CANCEL_TOKEN_H_
