// SPDX-License-Identifier: BSL-1.0
// The pool's behaviour with a scriptable connector (no sockets), in real
// time: what the driver adds to the core's decisions (threads, executors,
// cancellation slots, connector calls that hang, handles, termination). The
// decisions themselves (who is served, which error, backoffs, rebalancing,
// checks) are tested on the core's manual clock, in tests/unit/core/.
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "support/fake_connector.hpp"
#include "support/io_threads.hpp"
#include "support/slot_watch.hpp"
#include "support/test_policy.hpp"
#include "support/wait.hpp"

namespace qorb::test {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
using claim_result = std::pair<error_code, handle<fake_conn>>;

tcp::endpoint ep(unsigned short n) { return {asio::ip::make_address("127.0.0.1"), n}; }
std::string name_of(unsigned short n) { return "127.0.0.1:" + std::to_string(n); }

template <class Pool>
std::future<claim_result> claim_async(Pool& p, duration timeout = duration::zero()) {
  auto done = std::make_shared<std::promise<claim_result>>();
  auto f = done->get_future();
  p.async_claim(timeout, [done](error_code ec, handle<fake_conn> h) {
    done->set_value({ec, std::move(h)});
  });
  return f;
}

// Calls the blocking claim() from a handler on `io`'s thread; its error.
error_code blocking_claim_on_io_thread(asio::io_context& io, pool<fake_conn>& p) {
  std::promise<error_code> result;
  asio::post(io, [&] {
    error_code ec;
    auto h = p.claim(ec);
    result.set_value(ec);
  });
  auto f = result.get_future();
  if (f.wait_for(5s) != std::future_status::ready) return make_error_code(std::errc::timed_out);
  return f.get();
}

bool ready(std::future<claim_result>& f, std::chrono::milliseconds within = 10s) {
  return f.wait_for(within) == std::future_status::ready;
}

template <class Pool>
std::size_t idle_total(const Pool& p) {
  std::size_t n = 0;
  for (const auto& [name, b] : p.stats().backends) n += b.unclaimed;
  return n;
}

class pool_test : public ::testing::Test {
 protected:
  io_threads io{2};
  std::shared_ptr<fixed_resolver> resolver = std::make_shared<fixed_resolver>();
};

TEST_F(pool_test, claim_made_before_any_backend_is_served_once_one_appears) {
  fake_connector c;
  pool<fake_conn> p(io.executor(), "t", resolver, c, quick_policy());
  auto pending = claim_async(p);
  EXPECT_EQ(pending.wait_for(50ms), std::future_status::timeout);
  EXPECT_EQ(p.stats().claims_waiting, 1u);
  resolver->set_endpoints({ep(1)});
  ASSERT_TRUE(ready(pending));
  auto [ec, h] = pending.get();
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(h->backend, name_of(1));
  EXPECT_EQ(h.backend().name, name_of(1));
}

TEST_F(pool_test, more_claims_than_slots_wait_then_get_the_returned_connection) {
  fake_connector c;
  auto p_ = quick_policy();
  p_.max_slots = 1;
  p_.spares_wanted = 0;
  resolver->set_endpoints({ep(1)});
  pool<fake_conn> p(io.executor(), "t", resolver, c, p_);
  auto first = p.claim();
  const int id = first->id;
  auto second = claim_async(p);
  auto third = claim_async(p);
  ASSERT_TRUE(wait_until([&] { return p.stats().claims_waiting == 2; }));
  first.reset();
  ASSERT_TRUE(ready(second));
  auto [ec, h] = second.get();
  ASSERT_FALSE(ec);
  EXPECT_EQ(h->id, id) << "the one connection is reused";
  EXPECT_EQ(third.wait_for(20ms), std::future_status::timeout) << "FIFO: the third still waits";
  h.reset();
  ASSERT_TRUE(ready(third));
  EXPECT_FALSE(third.get().first);
  EXPECT_EQ(c.state->connects, 1);
}

TEST_F(pool_test, backend_swap_moves_claims_and_closes_old_connections) {
  fake_connector c;
  resolver->set_endpoints({ep(1)});
  pool<fake_conn> p(io.executor(), "t", resolver, c, quick_policy());
  auto held = p.claim();
  ASSERT_EQ(held->backend, name_of(1));
  ASSERT_TRUE(wait_until([&] { return idle_total(p) >= 1; }));
  resolver->set_endpoints({ep(2)});
  auto next = p.claim();
  EXPECT_EQ(next->backend, name_of(2));
  // Idle connections to the old backend are closed at once; the claimed one
  // stays usable until returned, then is closed.
  ASSERT_TRUE(wait_until([&] {
    auto s = p.stats();
    auto it = s.backends.find(name_of(1));
    return it != s.backends.end() && it->second.removed && it->second.unclaimed == 0 &&
           it->second.claimed == 1;
  }));
  EXPECT_EQ(held->backend, name_of(1));
  // A connect in flight when the backend went may still deliver a
  // connection, which is then closed as stale: wait for it.
  ASSERT_TRUE(wait_until([&] { return c.state->live_to(name_of(1)) == 1; }));
  held.reset();
  ASSERT_TRUE(wait_until([&] { return !p.stats().backends.contains(name_of(1)); }));
  EXPECT_TRUE(wait_until([&] { return c.state->live_to(name_of(1)) == 0; }));
}

TEST_F(pool_test, timeout_error_says_no_backends_online_when_none_connects) {
  fake_connector c;
  c.state->fail_connect = true;
  resolver->set_endpoints({ep(1), ep(2)});
  pool<fake_conn> p(io.executor(), "t", resolver, c, quick_policy());
  auto f = claim_async(p, 100ms);
  ASSERT_TRUE(ready(f));
  EXPECT_EQ(f.get().first, errc::no_backends_online);
  EXPECT_GT(p.stats().backends.at(name_of(1)).connect_failures, 0u);
}

TEST_F(pool_test, nested_claim_on_a_one_slot_pool_times_out_instead_of_hanging) {
  fake_connector c;
  auto p_ = quick_policy();
  p_.max_slots = 1;
  p_.claim_timeout = 100ms;
  resolver->set_endpoints({ep(1)});
  pool<fake_conn> p(io.executor(), "t", resolver, c, p_);
  std::promise<error_code> inner;
  asio::co_spawn(
      io.executor(),
      [&]() -> asio::awaitable<void> {
        auto outer = co_await p.async_claim(asio::use_awaitable);
        auto [ec, nested] = co_await p.async_claim(asio::as_tuple(asio::use_awaitable));
        inner.set_value(ec);
      },
      asio::detached);
  auto f = inner.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get(), errc::all_claims_used);
}

TEST_F(pool_test, fail_fast_without_backends_fails_at_once) {
  fake_connector c;
  auto p_ = quick_policy();
  p_.fail_fast_without_backends = true;
  pool<fake_conn> p(io.executor(), "t", resolver, c, p_);
  auto f = claim_async(p, 10s);
  ASSERT_TRUE(ready(f, 2s)) << "must not wait for the claim timeout";
  EXPECT_EQ(f.get().first, errc::no_backends);
}

TEST_F(pool_test, terminate_returns_promptly_with_a_stuck_connect_and_closes_its_connection) {
  fake_connector c;
  c.state->stall_connect = true;
  c.state->ignore_cancel = true;
  resolver->set_endpoints({ep(1)});
  {
    pool<fake_conn> p(io.executor(), "t", resolver, c, quick_policy());
    ASSERT_TRUE(wait_until([&] { return c.state->stalled == 1; }));
    auto waiting = claim_async(p);
    const auto start = std::chrono::steady_clock::now();
    std::promise<error_code> terminated;
    p.async_terminate([&](error_code ec) { terminated.set_value(ec); });
    auto t = terminated.get_future();
    ASSERT_EQ(t.wait_for(2s), std::future_status::ready);
    EXPECT_FALSE(t.get());
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
    ASSERT_TRUE(ready(waiting));
    EXPECT_EQ(waiting.get().first, errc::terminated);
    EXPECT_EQ(c.state->stalled, 1) << "the connect is still stuck: terminate did not wait";
  }
  // The stuck connect finally returns a connection: it must be closed.
  c.state->release = true;
  ASSERT_TRUE(wait_until([&] { return c.state->stalled == 0 && c.state->connects == 1; }));
  ASSERT_TRUE(wait_until([&] { return c.state->live == 0; }));
}

TEST_F(pool_test, terminate_with_claims_outstanding_closes_them_when_returned) {
  fake_connector c;
  resolver->set_endpoints({ep(1)});
  handle<fake_conn> held;
  {
    pool<fake_conn> p(io.executor(), "t", resolver, c, quick_policy());
    held = p.claim();
    ASSERT_TRUE(wait_until([&] { return idle_total(p) > 0; }));
    EXPECT_FALSE(p.terminate());
    EXPECT_EQ(p.terminate(), errc::terminated) << "a second terminate says so";
    error_code ec;
    auto late = p.claim(ec);
    EXPECT_EQ(ec, errc::terminated);
    EXPECT_FALSE(late);
    ASSERT_TRUE(wait_until([&] { return c.state->live == 1; })) << "idle ones close at once";
  }
  // The handle outlives the pool and still works.
  EXPECT_EQ(held->backend, name_of(1));
  held.reset();
  ASSERT_TRUE(wait_until([&] { return c.state->live == 0; }));
}

TEST_F(pool_test, dropping_the_pool_without_terminate_closes_every_connection) {
  fake_connector c;
  resolver->set_endpoints({ep(1), ep(2), ep(3)});
  {
    pool<fake_conn> p(io.executor(), "t", resolver, c, quick_policy());
    ASSERT_TRUE(wait_until([&] { return idle_total(p) >= 8; }));
    EXPECT_GE(c.state->live, 8);
  }
  ASSERT_TRUE(wait_until([&] { return c.state->live == 0; }));
}

TEST_F(pool_test, successful_recycle_keeps_the_connection) {
  checked_fake_connector c;
  auto p_ = quick_policy();
  p_.max_slots = 1;
  resolver->set_endpoints({ep(1)});
  pool<fake_conn> p(io.executor(), "t", resolver, c, p_);
  auto h = p.claim();
  const int first = h->id;
  h.reset();
  ASSERT_TRUE(wait_until([&] { return c.state->recycle_calls == 1 && idle_total(p) == 1; }));
  EXPECT_EQ(p.claim()->id, first);
}

TEST_F(pool_test, health_check_that_hangs_times_out_and_the_slot_reconnects) {
  checked_fake_connector c;
  auto p_ = quick_policy();
  p_.max_slots = 1;
  p_.set_config.health_interval = 10ms;
  p_.set_config.health_check_timeout = 50ms;
  resolver->set_endpoints({ep(1)});
  pool<fake_conn> p(io.executor(), "t", resolver, c, p_);
  ASSERT_TRUE(wait_until([&] { return c.state->connects == 1; }));
  c.state->stall_is_valid = true;
  ASSERT_TRUE(wait_until([&] { return c.state->connects >= 2; }));
  EXPECT_GE(p.stats().backends.at(name_of(1)).check_failures, 1u);
  c.state->stall_is_valid = false;
  c.state->release = true;
}

TEST_F(pool_test, slow_on_acquire_does_not_delay_other_claims) {
  acquiring_fake_connector c;
  c.state->stall_acquire = [](int call) { return call % 2 == 0; };  // half of them stall
  auto p_ = quick_policy();
  p_.max_slots = 32;
  p_.spares_wanted = 32;
  p_.set_config.health_check_timeout = 60s;  // the stalled ones must stay stalled
  resolver->set_endpoints({ep(1), ep(2), ep(3), ep(4)});
  pool<fake_conn> p(io.executor(), "t", resolver, c, p_);
  ASSERT_TRUE(wait_until([&] { return idle_total(p) == 32; }));
  std::vector<std::future<claim_result>> claims;
  for (int i = 0; i < 32; ++i) claims.push_back(claim_async(p));
  auto completed = [&] {
    int n = 0;
    for (auto& f : claims) {
      if (f.wait_for(0ms) == std::future_status::ready) ++n;
    }
    return n;
  };
  ASSERT_TRUE(wait_until([&] { return completed() == 16 && c.state->stalled == 16; }))
      << "the 16 claims whose on_acquire is fast complete while 16 stall";
  EXPECT_EQ(completed(), 16);
  c.state->release = true;
  for (auto& f : claims) {
    ASSERT_TRUE(ready(f));
    EXPECT_FALSE(f.get().first);
  }
}

TEST_F(pool_test, try_claim_is_refused_when_the_connector_has_on_acquire) {
  acquiring_fake_connector c;
  resolver->set_endpoints({ep(1)});
  pool<fake_conn> p(io.executor(), "t", resolver, c, quick_policy());
  EXPECT_THROW(p.try_claim(), std::logic_error) << "try_claim cannot run on_acquire";
}

TEST_F(pool_test, cancelled_claim_leaves_the_queue_and_loses_nothing) {
  fake_connector c;
  auto p_ = quick_policy();
  p_.max_slots = 1;
  resolver->set_endpoints({ep(1)});
  pool<fake_conn> p(io.executor(), "t", resolver, c, p_);
  auto held = p.claim();
  asio::cancellation_signal signal;
  std::promise<claim_result> done;
  auto strand = asio::make_strand(io.executor());
  asio::post(strand, [&] {
    p.async_claim(asio::bind_cancellation_slot(
        signal.slot(), asio::bind_executor(strand, [&](error_code ec, handle<fake_conn> h) {
          done.set_value({ec, std::move(h)});
        })));
  });
  ASSERT_TRUE(wait_until([&] { return p.stats().claims_waiting == 1; }));
  asio::post(strand, [&] { signal.emit(asio::cancellation_type::terminal); });
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  auto [ec, h] = f.get();
  EXPECT_EQ(ec, asio::error::operation_aborted);
  EXPECT_EQ(ec, std::errc::operation_canceled);
  EXPECT_FALSE(h);
  EXPECT_EQ(p.stats().claims_waiting, 0u);
  EXPECT_EQ(p.stats().claim_failures.cancelled, 1u);
  held.reset();
  EXPECT_TRUE(p.claim()) << "the connection was not lost";
}

TEST_F(pool_test, discard_closes_the_connection_and_reconnects) {
  fake_connector c;
  auto p_ = quick_policy();
  p_.max_slots = 1;
  resolver->set_endpoints({ep(1)});
  pool<fake_conn> p(io.executor(), "t", resolver, c, p_);
  auto h = p.claim();
  const int first = h->id;
  h.discard();
  EXPECT_FALSE(h);
  EXPECT_THROW(h.get(), std::logic_error);
  auto next = p.claim();
  EXPECT_NE(next->id, first);
  EXPECT_EQ(c.state->connects, 2);
  EXPECT_EQ(c.state->live, 1);
  EXPECT_EQ(p.stats().backends.at(name_of(1)).check_failures, 1u);
}

TEST_F(pool_test, try_claim_returns_at_once_with_or_without_a_connection) {
  fake_connector c;
  auto p_ = quick_policy();
  p_.max_slots = 1;
  resolver->set_endpoints({ep(1)});
  pool<fake_conn> p(io.executor(), "t", resolver, c, p_);
  ASSERT_TRUE(wait_until([&] { return idle_total(p) == 1; }));
  auto h = p.try_claim();
  ASSERT_TRUE(h);
  EXPECT_FALSE(p.try_claim()) << "nothing idle: empty handle, no waiting";
  h.reset();
  EXPECT_TRUE(p.try_claim());
}

TEST_F(pool_test, blocking_claim_on_the_pool_thread_is_refused) {
  fake_connector c;
  io_threads single(1);
  resolver->set_endpoints({ep(1)});
  pool<fake_conn> p(single.executor(), "t", resolver, c, quick_policy());
  EXPECT_EQ(blocking_claim_on_io_thread(single.io, p), errc::would_deadlock);
}

TEST_F(pool_test, connections_are_never_shared_by_two_claims_under_concurrency) {
  fake_connector c;
  auto p_ = quick_policy();
  p_.max_slots = 6;
  p_.spares_wanted = 2;
  resolver->set_endpoints({ep(1), ep(2), ep(3)});
  pool<fake_conn> p(io.executor(), "t", resolver, c, p_);
  std::atomic<int> overlaps{0}, served{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 300; ++i) {
        auto h = (i % 2) ? p.try_claim() : p.claim();
        if (!h) continue;
        {
          std::lock_guard lock(c.state->mu);
          if (!c.state->in_use.insert(h->id).second) ++overlaps;
        }
        std::this_thread::yield();
        {
          std::lock_guard lock(c.state->mu);
          c.state->in_use.erase(h->id);
        }
        ++served;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(overlaps, 0);
  EXPECT_GE(served, 600);
  const auto s = p.stats();
  std::uint64_t total = 0;
  for (const auto& [n, b] : s.backends) {
    total += b.total_claims;
    EXPECT_EQ(b.claimed, 0u);
  }
  EXPECT_EQ(total, s.total_claims);
  EXPECT_EQ(s.total_claims, std::uint64_t(served));
}

TEST_F(pool_test, slots_never_exceed_max_slots) {
  fake_connector c;
  auto p_ = quick_policy();
  p_.max_slots = 5;
  p_.spares_wanted = 20;
  pool<fake_conn> p(io.executor(), "t", resolver, c, p_);
  const slot_watch watch(c.state, p);  // looks at every slot opened, not only the last
  resolver->set_endpoints({ep(1), ep(2), ep(3)});
  ASSERT_TRUE(wait_until([&] { return idle_total(p) == 5; }));
  EXPECT_TRUE(wait_until([&] { return c.state->live == 5; }));  // stale connects closed
  EXPECT_GE(watch.looks(), 5);
  EXPECT_EQ(watch.most(), 5u) << "more slots than max_slots at some connect";
}

}  // namespace
}  // namespace qorb::test

namespace qorb::test {
namespace {

TEST_F(pool_test, bad_policy_or_missing_resolver_is_rejected_at_construction) {
  fake_connector c;
  policy bad;
  bad.set_config.max_connection_backoff = 1ms;  // below the minimum
  try {
    pool<fake_conn> p(io.executor(), "t", resolver, c, bad);
    ADD_FAILURE() << "built a pool with a bad policy";
  } catch (const invalid_policy& e) {
    EXPECT_EQ(e.field(), "set_config.max_connection_backoff");
  }
  EXPECT_THROW(pool<fake_conn>(io.executor(), "t", nullptr, c), std::invalid_argument);
  EXPECT_EQ(c.state->connect_calls, 0) << "nothing started";
}

}  // namespace
}  // namespace qorb::test

namespace qorb::test {
namespace {

TEST_F(pool_test, failed_on_acquire_on_a_removed_backend_retries_on_another) {
  acquiring_fake_connector c;
  c.state->stall_acquire = [&c](int call) {
    c.state->fail_acquire = call == 1;  // only the first attempt stalls, then fails
    return call == 1;
  };
  auto p_ = quick_policy();
  p_.set_config.health_check_timeout = 60s;
  resolver->set_endpoints({ep(1)});
  pool<fake_conn> p(io.executor(), "t", resolver, c, p_);
  auto f = claim_async(p);
  ASSERT_TRUE(wait_until([&] { return c.state->stalled == 1; }));
  resolver->set_endpoints({ep(2)});  // the backend goes while on_acquire runs on it
  ASSERT_TRUE(wait_until([&] { return idle_total(p) > 0; }));
  c.state->release = true;  // on_acquire fails; the claim moves to backend 2
  ASSERT_TRUE(ready(f));
  auto [ec, h] = f.get();
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(h->backend, name_of(2));
  ASSERT_TRUE(wait_until([&] { return c.state->live_to(name_of(1)) == 0; }))
      << "the removed backend's connection is closed";
  EXPECT_FALSE(p.stats().backends.contains(name_of(1)));
}

TEST_F(pool_test, on_acquire_that_hangs_times_out_and_the_claim_tries_again) {
  acquiring_fake_connector c;
  c.state->stall_acquire = [](int call) { return call == 1; };
  auto p_ = quick_policy();
  p_.set_config.health_check_timeout = 50ms;
  resolver->set_endpoints({ep(1)});
  pool<fake_conn> p(io.executor(), "t", resolver, c, p_);
  auto f = claim_async(p);
  ASSERT_TRUE(ready(f));
  EXPECT_FALSE(f.get().first);
  EXPECT_EQ(c.state->acquire_calls, 2);
  EXPECT_GE(p.stats().backends.at(name_of(1)).check_failures, 1u);
  c.state->release = true;
}

TEST_F(pool_test, claim_cancelled_during_on_acquire_completes_at_once_and_keeps_the_connection) {
  acquiring_fake_connector c;
  c.state->stall_acquire = [](int call) { return call == 1; };
  auto p_ = quick_policy();
  p_.max_slots = 1;
  p_.set_config.health_check_timeout = 60s;
  resolver->set_endpoints({ep(1)});
  pool<fake_conn> p(io.executor(), "t", resolver, c, p_);
  asio::cancellation_signal signal;
  std::promise<error_code> done;
  auto strand = asio::make_strand(io.executor());
  asio::post(strand, [&] {
    p.async_claim(asio::bind_cancellation_slot(
        signal.slot(), asio::bind_executor(
                           strand, [&](error_code ec, handle<fake_conn>) { done.set_value(ec); })));
  });
  ASSERT_TRUE(wait_until([&] { return c.state->stalled == 1; }));
  asio::post(strand, [&] { signal.emit(asio::cancellation_type::terminal); });
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready) << "not after the 60 s check timeout";
  EXPECT_EQ(f.get(), asio::error::operation_aborted);
  c.state->release = true;
  auto h = p.claim();  // the one connection was recycled, not lost
  EXPECT_EQ(c.state->connects, 1);
}

TEST_F(pool_test, discard_on_a_removed_backend_does_not_reconnect) {
  fake_connector c;
  // One slot: backend 1's only connection is the claimed one, so no other
  // connect to it is under way (one decided before the removal may still
  // reach the connector late, on a preempted thread), and backend 2 gets
  // its slot only when the discarded one closes.
  auto one = quick_policy();
  one.max_slots = 1;
  one.spares_wanted = 1;
  resolver->set_endpoints({ep(1)});
  pool<fake_conn> p(io.executor(), "t", resolver, c, one);
  auto h = p.claim();
  resolver->set_endpoints({ep(2)});
  ASSERT_EQ(c.state->connect_calls_to(name_of(1)), 1);
  h.discard();
  EXPECT_TRUE(wait_until([&] { return c.state->live_to(name_of(1)) == 0; }));
  auto next = p.claim();
  EXPECT_EQ(next->backend, name_of(2));
  EXPECT_EQ(c.state->connect_calls_to(name_of(1)), 1) << "only backend 2 connects";
  EXPECT_EQ(p.stats().backends.size(), 1u) << "the removed backend is forgotten";
}

TEST_F(pool_test, blocking_claim_on_the_thread_behind_a_strand_is_refused) {
  fake_connector c;
  io_threads single(1);
  resolver->set_endpoints({ep(1)});
  pool<fake_conn> p(asio::make_strand(single.executor()), "t", resolver, c, quick_policy());
  // Not on the strand, but on its only thread.
  EXPECT_EQ(blocking_claim_on_io_thread(single.io, p), errc::would_deadlock);
}

TEST_F(pool_test, concurrent_resolver_updates_leave_the_pool_on_the_last_set) {
  fake_connector c;
  pool<fake_conn> p(io.executor(), "t", resolver, c, quick_policy());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) resolver->set_endpoints({ep(std::uint16_t(100 + t * 50 + i))});
    });
  }
  for (auto& t : threads) t.join();
  resolver->set_endpoints({ep(7)});
  ASSERT_TRUE(wait_until([&] {
    auto s = p.stats();
    std::size_t active = 0;
    for (const auto& [n, b] : s.backends) active += b.removed ? 0 : 1;
    return active == 1 && s.backends.contains(name_of(7)) && !s.backends.at(name_of(7)).removed;
  }));
}

}  // namespace
}  // namespace qorb::test

namespace qorb::test {
namespace {

TEST_F(pool_test, stats_count_claim_wait_times) {
  fake_connector c;
  auto p_ = quick_policy();
  p_.max_slots = 1;
  resolver->set_endpoints({ep(1)});
  pool<fake_conn> p(io.executor(), "t", resolver, c, p_);
  ASSERT_TRUE(wait_until([&] { return idle_total(p) == 1; }));
  auto held = p.claim();
  auto waiting = claim_async(p);
  ASSERT_TRUE(wait_until([&] { return p.stats().claims_waiting == 1; }));
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_until([&] { return std::chrono::steady_clock::now() - start > 20ms; }));
  held.reset();
  ASSERT_TRUE(ready(waiting));
  const auto w = p.stats().claim_wait;
  EXPECT_EQ(w.count, 2u);
  EXPECT_GE(w.sum_s, 0.02);
  std::uint64_t over_10ms = 0;
  for (std::size_t i = 0; i < w.counts.size(); ++i) {
    if (i > 0 && claim_wait_histogram::bounds_s[i - 1] >= 0.01) over_10ms += w.counts[i];
  }
  EXPECT_EQ(over_10ms, 1u) << "the claim that waited";
  EXPECT_EQ(w.counts[0], 1u) << "the claim served at once";
}

}  // namespace
}  // namespace qorb::test

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>

namespace qorb::test {
namespace {

// Lines logged so far, readable while the pool logs from its threads.
class recording_sink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::string text() {
    std::lock_guard lock(mutex_);
    return text_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t out;
    formatter_->format(msg, out);
    text_.append(out.data(), out.size());
  }
  void flush_() override {}

 private:
  std::string text_;
};

TEST_F(pool_test, logs_name_the_pool_and_backend_and_can_be_silenced) {
  auto sink = std::make_shared<recording_sink>();
  auto logger = std::make_shared<spdlog::logger>("test", sink);
  logger->set_level(spdlog::level::info);
  fake_connector c;
  {
    std::lock_guard lock(c.state->mu);
    c.state->failing_backends.insert(name_of(2));
  }
  resolver->set_endpoints({ep(1), ep(2)});
  {
    pool<fake_conn> p(io.executor(), "logged", resolver, c, quick_policy(), logger);
    ASSERT_TRUE(wait_until([&] { return p.stats().backends.at(name_of(1)).online; }));
    ASSERT_TRUE(wait_until([&] { return p.stats().backends.at(name_of(2)).connect_failures > 0; }));
    // The pool logs after it has let go of its lock: wait for the lines, not
    // only for the state they report.
    ASSERT_TRUE(wait_until([&] {
      const auto t = sink->text();
      return t.find(name_of(1) + ": online") != std::string::npos &&
             t.find(name_of(2) + ": connect failed") != std::string::npos;
    }));
  }
  logger->flush();
  const auto text = sink->text();
  for (const auto& expected :
       {"pool logged: " + name_of(1) + ": added", "pool logged: " + name_of(1) + ": online",
        "pool logged: " + name_of(2) + ": connect failed",
        std::string("pool logged: terminating")}) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << "\nin:\n" << text;
  }
  // online is logged at offline's level (warning): a log showing only
  // warnings must not leave a backend that came back looking dead.
  const auto online_at = text.find(name_of(1) + ": online");
  ASSERT_NE(online_at, std::string::npos);
  const auto line_start = text.rfind('\n', online_at);
  const auto line = text.substr(line_start == std::string::npos ? 0 : line_start,
                                online_at - (line_start == std::string::npos ? 0 : line_start));
  EXPECT_NE(line.find("[warning]"), std::string::npos) << line;
  // A null logger: nothing is logged, nothing breaks.
  pool<fake_conn> quiet(io.executor(), "quiet", resolver, c, quick_policy(), nullptr);
  EXPECT_TRUE(quiet.claim());
}

}  // namespace
}  // namespace qorb::test
