// SPDX-License-Identifier: BSL-1.0
// The gate every resolver (DNS, etcd) calls its user's callbacks through:
// none starts once close() has returned, close() waits for one in progress,
// and a callback may close its own gate.
#include "resolvers/callback_gate.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

namespace qorb {
namespace {

using namespace std::chrono_literals;
using detail::callback_gate;

TEST(CallbackGate, RunsCallbacksUntilClosed) {
  callback_gate gate;
  int calls = 0;
  gate.run([&] { ++calls; });
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(gate.closed());
  gate.close();
  EXPECT_TRUE(gate.closed());
  gate.run([&] { ++calls; });
  EXPECT_EQ(calls, 1);
}

TEST(CallbackGate, ACallbackMayCloseItsOwnGate) {
  // Without the check for the calling thread, close() would wait for the
  // lock its own caller holds (the test would hang until its timeout).
  callback_gate gate;
  bool after_close = false;
  gate.run([&] {
    gate.close();
    after_close = true;
  });
  EXPECT_TRUE(after_close);
  EXPECT_TRUE(gate.closed());
  bool called = false;
  gate.run([&] { called = true; });
  EXPECT_FALSE(called);
}

TEST(CallbackGate, CloseWaitsForTheCallbackInProgress) {
  callback_gate gate;
  std::mutex m;
  std::condition_variable cv;
  bool closing = false;
  bool close_returned = false;
  bool returned_while_inside = true;
  std::promise<void> entered;

  std::thread closer([&] {
    entered.get_future().wait();
    {
      std::lock_guard lock(m);
      closing = true;
    }
    cv.notify_all();
    gate.close();
    {
      std::lock_guard lock(m);
      close_returned = true;
    }
    cv.notify_all();
  });
  gate.run([&] {
    entered.set_value();
    std::unique_lock lock(m);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return closing; }));
    // close() must not return while this callback runs: give it ample time
    // to (wrongly) do so.
    returned_while_inside = cv.wait_for(lock, 200ms, [&] { return close_returned; });
  });
  closer.join();
  EXPECT_FALSE(returned_while_inside);
  EXPECT_TRUE(close_returned);
  EXPECT_TRUE(gate.closed());
}

}  // namespace
}  // namespace qorb
