// SPDX-License-Identifier: BSL-1.0
// The claim fast path and the face Asio users expect: co_claim served without
// suspending, handles that keep a terminated pool's internals alive without
// a reference count, the blocking claim on thread pools and executors that
// cannot run, the pool built from an execution context, async_claim's
// default token, and the pool's lock.
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <thread>
#include <vector>

#include "pool/adaptive_mutex.hpp"
#include "support/fake_connector.hpp"
#include "support/io_threads.hpp"
#include "support/test_policy.hpp"
#include "support/wait.hpp"

namespace qorb::test {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;

tcp::endpoint ep(unsigned short n) { return {asio::ip::make_address("127.0.0.1"), n}; }

template <class Pool>
std::size_t idle_total(const Pool& p) {
  std::size_t n = 0;
  for (const auto& [name, b] : p.stats().backends) n += b.unclaimed;
  return n;
}

// Runs `co` on `io` (which this thread runs) to its end; rethrows.
template <class T>
T run_on(asio::io_context& io, asio::awaitable<T> co) {
  auto f = asio::co_spawn(io, std::move(co), asio::use_future);
  io.restart();
  for (int i = 0; i < 100000 && f.wait_for(0s) != std::future_status::ready; ++i) {
    io.run_one_for(10ms);
  }
  return f.get();
}

std::shared_ptr<fixed_resolver> one_backend() {
  auto r = std::make_shared<fixed_resolver>();
  r->set_endpoints({ep(1)});
  return r;
}

TEST(fast_path, co_claim_is_served_without_suspending_when_a_connection_is_idle) {
  asio::io_context io(1);
  fake_connector c;
  pool<fake_conn> p(io, "t", one_backend(), c, quick_policy());
  for (int i = 0; i < 100000 && idle_total(p) == 0; ++i) io.run_one_for(1ms);
  ASSERT_GT(idle_total(p), 0u);
  const auto claims_before = p.stats().total_claims;
  bool ran = false;  // set by a handler queued before the claim
  const bool suspended = run_on(io, [&]() -> asio::awaitable<bool> {
    // Queued before the claim: it runs only if the coroutine yields.
    asio::post(io, [&] { ran = true; });
    auto h = co_await p.co_claim();
    EXPECT_TRUE(h);
    co_return ran;
  }());
  EXPECT_FALSE(suspended) << "co_claim went through the executor's queue";
  EXPECT_EQ(p.stats().total_claims, claims_before + 1) << "one claim, counted once";
}

TEST(fast_path, co_claim_waits_first_come_first_served_when_nothing_is_idle) {
  asio::io_context io(1);
  fake_connector c;
  auto pol = quick_policy();
  pol.max_slots = 1;
  pol.spares_wanted = 1;
  pool<fake_conn> p(io, "t", one_backend(), c, pol);
  for (int i = 0; i < 100000 && idle_total(p) == 0; ++i) io.run_one_for(1ms);
  auto held = p.try_claim();
  ASSERT_TRUE(held);
  const int first_id = held->id;
  std::vector<int> order;
  auto waiter = [&](int n) -> asio::awaitable<void> {
    auto h = co_await p.co_claim();
    order.push_back(n);
    EXPECT_EQ(h->id, first_id);
  };
  auto f1 = asio::co_spawn(io, waiter(1), asio::use_future);
  auto f2 = asio::co_spawn(io, waiter(2), asio::use_future);
  for (int i = 0; i < 100000 && p.stats().claims_waiting < 2; ++i) io.run_one_for(1ms);
  ASSERT_EQ(p.stats().claims_waiting, 2u);
  held.reset();
  for (int i = 0; i < 100000 && order.size() < 2; ++i) io.run_one_for(1ms);
  f1.get();
  f2.get();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

TEST(fast_path, co_claim_runs_on_acquire) {
  asio::io_context io(1);
  basic_fake_connector<false, true, false> c;
  pool<fake_conn> p(io, "t", one_backend(), c, quick_policy());
  for (int i = 0; i < 100000 && idle_total(p) == 0; ++i) io.run_one_for(1ms);
  ASSERT_GT(idle_total(p), 0u);
  run_on(io, [&]() -> asio::awaitable<void> {
    auto h = co_await p.co_claim();
    EXPECT_TRUE(h);
  }());
  EXPECT_EQ(c.state->acquire_calls, 1);
}

TEST(fast_path, co_claim_reports_claim_errors_as_exceptions) {
  asio::io_context io(1);
  fake_connector c;
  auto pol = quick_policy();
  pol.claim_timeout = 20ms;
  pool<fake_conn> p(io, "t", std::make_shared<fixed_resolver>(), c, pol);
  try {
    run_on(io, [&]() -> asio::awaitable<void> { auto h = co_await p.co_claim(); }());
    ADD_FAILURE() << "a claim from a pool without backends succeeded";
  } catch (const boost::system::system_error& e) {
    EXPECT_EQ(e.code(), errc::no_backends);
  }
}

TEST(fast_path, handles_keep_a_destroyed_pools_internals_alive_and_return_their_connection) {
  io_threads io(2);
  fake_connector c;
  std::vector<handle<fake_conn>> out;
  {
    pool<fake_conn> p(io.executor(), "t", one_backend(), c, quick_policy());
    ASSERT_TRUE(wait_until([&] { return idle_total(p) >= 3; }));
    for (int i = 0; i < 3; ++i) out.push_back(p.try_claim());
    for (auto& h : out) ASSERT_TRUE(h);
  }
  // The pool is gone; its connections are still usable, and close when
  // they come back (ASan checks the internals were not freed before).
  // (A connect in flight at the destruction closes its result when it
  // comes back, on the io threads.)
  ASSERT_TRUE(wait_until([&] { return c.state->live == 3; }));
  for (auto& h : out) EXPECT_EQ(h.backend().name, "127.0.0.1:1");
  out.pop_back();
  EXPECT_EQ(c.state->live, 2);
  out.clear();
  EXPECT_EQ(c.state->live, 0);
}

TEST(fast_path, blocking_claim_on_a_thread_pool_thread_would_deadlock) {
  // Seen once to hang (not reproduced since, in thousands of runs): a
  // watchdog names the step and aborts, rather than wait for the suite's
  // timeout with nothing said.
  std::atomic<const char*> step{"start"};
  struct watchdog {
    explicit watchdog(std::atomic<const char*>& step)
        : thread([&step, done = finished.get_future()] {
            if (done.wait_for(60s) == std::future_status::ready) return;
            std::fprintf(stderr, "fast_path: stuck at step '%s' for 60 s\n", step.load());
            std::abort();
          }) {}
    ~watchdog() {  // also when the test throws
      finished.set_value();
      thread.join();
    }
    std::promise<void> finished;
    std::thread thread;
  } guard(step);
  {
    asio::thread_pool threads(1);
    fake_connector c;
    auto strand_pool_executor = asio::make_strand(threads.get_executor());
    for (auto ex : {asio::any_io_executor(threads.get_executor()),
                    asio::any_io_executor(strand_pool_executor)}) {
      step = "constructing the pool";
      pool<fake_conn> q(ex, "q", one_backend(), c, quick_policy());
      std::promise<error_code> result;
      step = "claiming on the pool's thread";
      asio::post(threads, [&] {
        error_code ec;
        auto h = q.claim(ec);
        result.set_value(ec);
      });
      auto f = result.get_future();
      if (f.wait_for(10s) != std::future_status::ready) {
        // The thread pool cannot be joined with its thread blocked.
        std::fprintf(stderr, "fast_path: claim() blocked the pool's thread\n");
        std::abort();
      }
      EXPECT_EQ(f.get(), errc::would_deadlock);
      step = "terminating the pool";
      q.terminate();  // its timer would keep the thread pool's join waiting
      step = "destroying the pool";
    }
    step = "joining the thread pool";
    threads.join();
    step = "destroying the thread pool";
  }
}

TEST(fast_path, blocking_claim_honours_its_timeout_when_the_pools_executor_cannot_run) {
  asio::io_context never_run(1);  // nobody runs it: the pool's timer cannot fire
  fake_connector c;
  pool<fake_conn> p(never_run, "t", one_backend(), c, quick_policy());
  error_code ec;
  const auto start = std::chrono::steady_clock::now();
  std::future<handle<fake_conn>> got =
      std::async(std::launch::async, [&] { return p.claim(100ms, ec); });
  ASSERT_EQ(got.wait_for(20s), std::future_status::ready) << "claim() ignored its timeout";
  auto h = got.get();
  EXPECT_FALSE(h);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
  EXPECT_EQ(ec, errc::no_backends_online);
}

TEST(fast_path, blocking_claim_is_served_on_the_calling_thread_when_idle) {
  io_threads io(1);
  fake_connector c;
  pool<fake_conn> p(io.executor(), "t", one_backend(), c, quick_policy());
  ASSERT_TRUE(wait_until([&] { return idle_total(p) > 0; }));
  error_code ec;
  auto h = p.claim(ec);
  EXPECT_FALSE(ec);
  ASSERT_TRUE(h);
}

TEST(fast_path, async_claim_defaults_to_deferred) {
  asio::io_context io(1);
  fake_connector c;
  pool<fake_conn> p(io, "t", one_backend(), c, quick_policy());
  for (int i = 0; i < 100000 && idle_total(p) == 0; ++i) io.run_one_for(1ms);
  run_on(io, [&]() -> asio::awaitable<void> {
    // As use_awaitable: the handle, or an exception.
    auto h1 = co_await p.async_claim();
    EXPECT_TRUE(h1);
    auto h2 = co_await p.async_claim(1s);
    EXPECT_TRUE(h2);
  }());
  // A deferred claim does nothing until it is launched.
  const auto before = p.stats().total_claims;
  auto op = p.async_claim();
  EXPECT_EQ(p.stats().total_claims, before);
  bool done = false;
  std::move(op)([&](error_code ec, handle<fake_conn> h) {
    EXPECT_FALSE(ec);
    EXPECT_TRUE(h);
    done = true;
  });
  for (int i = 0; i < 100000 && !done; ++i) io.run_one_for(1ms);
  EXPECT_TRUE(done);
}

TEST(fast_path, pool_can_be_built_from_an_execution_context) {
  asio::thread_pool threads(2);
  fake_connector c;
  pool<fake_conn> p(threads, "t", one_backend(), c, quick_policy());
  auto h = p.async_claim(asio::use_future).get();
  EXPECT_TRUE(h);
  h.reset();
  p.terminate();
  threads.join();
}

TEST(fast_path, adaptive_mutex_excludes_under_contention) {
  detail::adaptive_mutex mu;
  long counter = 0;  // unsynchronised but for the mutex (TSan checks it)
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        std::lock_guard lock(mu);
        ++counter;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, 80000);
  EXPECT_TRUE(mu.try_lock());
  EXPECT_FALSE(mu.try_lock());
  mu.unlock();
}

}  // namespace
}  // namespace qorb::test
