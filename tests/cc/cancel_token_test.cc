// SPDX-License-Identifier: Apache-2.0
// CancelToken: each callback runs once, a late registration is refused, and
// Deregister waits for a callback running on another thread, so a transport
// may free what its callback uses once Deregister returns.
#include "cc/core/cancel_token.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

namespace tf_graphpipe {
namespace {

TEST(CancelToken, CancelRunsEachCallbackOnceAndRefusesLaterOnes) {
  CancelToken token;
  int runs = 0;
  uint64_t id = 0;
  ASSERT_TRUE(token.Register([&runs] { ++runs; }, &id));
  EXPECT_FALSE(token.cancelled());
  token.Cancel();
  token.Cancel();
  EXPECT_TRUE(token.cancelled());
  EXPECT_EQ(runs, 1);
  EXPECT_FALSE(token.Register([&runs] { ++runs; }, &id));
  EXPECT_EQ(runs, 1);
  token.Deregister(id);  // after Cancel: returns at once
}

TEST(CancelToken, DeregisteredCallbackNeverRuns) {
  CancelToken token;
  bool ran = false;
  uint64_t id = 0;
  ASSERT_TRUE(token.Register([&ran] { ran = true; }, &id));
  token.Deregister(id);
  token.Cancel();
  EXPECT_FALSE(ran);
}

TEST(CancelToken, DeregisterWaitsForACallbackRunningElsewhere) {
  CancelToken token;
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> finished{false};
  uint64_t id = 0;
  ASSERT_TRUE(token.Register(
      [&] {
        entered.set_value();
        released.wait();
        finished = true;
      },
      &id));
  std::thread canceller([&token] { token.Cancel(); });
  entered.get_future().wait();
  std::future<void> deregistered =
      std::async(std::launch::async, [&token, id] { token.Deregister(id); });
  EXPECT_EQ(deregistered.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  release.set_value();
  deregistered.wait();
  EXPECT_TRUE(finished);
  canceller.join();
}

}  // namespace
}  // namespace tf_graphpipe
