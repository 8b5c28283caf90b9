// SPDX-License-Identifier: BSL-1.0
// Claim errors that explain themselves (issue 21), through the public API
// against real TCP on loopback: the exact sentence of each claim error for
// the blocking claim() and for co_claim (times blanked), with no Boost
// "[category:N]" suffix, and an explanation that agrees with explain().
#include <qorb/claim_error.hpp>
#include <qorb/connectors/tcp.hpp>
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "support/claim_error_check.hpp"
#include "support/echo_server.hpp"
#include "support/io_threads.hpp"
#include "support/test_policy.hpp"
#include "support/wait.hpp"

namespace qorb::test {
namespace {

using tcp_pool = pool<asio::ip::tcp::socket>;
using tcp = asio::ip::tcp;

// Backing off for long after a failed connect, so that the pool's state
// holds still between a claim's failure and the test's explain().
policy steady_policy() {
  policy p = quick_policy();
  p.max_slots = 16;
  p.failed_after = 1h;
  p.set_config.min_connection_backoff = 60s;
  p.set_config.max_connection_backoff = 60s;
  p.set_config.spread = 0ms;
  return p;
}

std::shared_ptr<fixed_resolver> at(std::vector<tcp::endpoint> e) {
  return std::make_shared<fixed_resolver>(std::move(e));
}

// A loopback port with nothing listening.
tcp::endpoint refusing() { return {asio::ip::make_address("127.0.0.1"), free_port()}; }

// Waits (bounded) until every backend of `p` has a last error.
bool failed_once(const tcp_pool& p) {
  return wait_until([&] {
    const auto s = p.stats();
    if (s.backends.empty()) return false;
    for (const auto& [n, b] : s.backends) {
      if (!b.last_error || b.connecting == 0) return false;
    }
    return true;
  });
}

TEST(claim_error_text, no_backends) {
  io_threads io;
  tcp_pool p(io.executor(), "empty", at({}), tcp_connector{}, steady_policy());
  const std::string expected =
      "pool 'empty': no backends known after waiting T (starting; 0 backends known, 0 online; 0 "
      "of 16 slots claimed, 0 claims waiting)";
  auto e = blocking_claim_error(p, 100ms);
  expect_claim_error(e, p, errc::no_backends, expected);
  EXPECT_GE(e->waited(), 100ms);
  e = awaited_claim_error(p, 100ms);
  expect_claim_error(e, p, errc::no_backends, expected);
  EXPECT_GE(e->waited(), 100ms);
  // async_claim with use_awaitable itself (co_claim's slow path) too.
  auto f = asio::co_spawn(
      p.get_executor(),
      [&]() -> asio::awaitable<void> {
        auto h = co_await p.async_claim(50ms, asio::use_awaitable);
      },
      asio::use_future);
  ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
  EXPECT_THROW(f.get(), claim_error);
  // And the future of a use_future claim.
  auto fut = p.async_claim(50ms, asio::use_future);
  ASSERT_EQ(fut.wait_for(30s), std::future_status::ready);
  try {
    fut.get();
    ADD_FAILURE() << "the future did not throw";
  } catch (const claim_error& ce) {
    EXPECT_EQ(blank_times(ce.what()),
              "pool 'empty': no backends known after waiting T (starting; 0 backends known, 0 "
              "online; 0 of 16 slots claimed, 0 claims waiting)");
  }
}

TEST(claim_error_text, none_online_with_a_refused_connect) {
  io_threads io;
  const auto where = refusing();
  const std::string name = to_string(where);
  tcp_pool p(io.executor(), "refused", at({where}), tcp_connector{}, steady_policy());
  ASSERT_TRUE(failed_once(p)) << p.explain();
  const std::string expected =
      "pool 'refused': no backend online after waiting T (running; 1 "
      "backend known, 0 online; 0 of 16 slots claimed, 0 claims "
      "waiting); last error: " +
      name + " connect: Connection refused, T ago";
  std::string fixed = expected;
  fixed.replace(fixed.find("(running"), 8, "(starting");  // never online yet
  expect_claim_error(blocking_claim_error(p, 100ms), p, errc::no_backends_online, fixed);
  expect_claim_error(awaited_claim_error(p, 100ms), p, errc::no_backends_online, fixed);
  EXPECT_EQ(blank_times(p.explain().text()),
            "pool 'refused': starting; 1 backend known, 0 online; 0 of 16 slots claimed, 0 idle, "
            "1 connecting; 0 claims waiting\n  " +
                name + " (" + name +
                "): backing off, retry in T; offline for T; 0 claimed, 0 idle, 1 connecting; last "
                "error: connect: Connection refused, T ago\nlast error: " +
                name + " connect: Connection refused, T ago");
}

// A pool of one connection to an echo server, claimed: the next claim waits.
struct exhausted {
  static policy one_slot() {
    policy pol = steady_policy();
    pol.max_slots = 1;
    return pol;
  }
  io_threads io;
  echo_server server;
  tcp_pool p{io.executor(), "busy", at({server.endpoint()}), tcp_connector{}, one_slot()};
  handle<tcp::socket> held = p.claim(5s);
};

TEST(claim_error_text, all_claims_used) {
  exhausted busy;
  ASSERT_TRUE(busy.held);
  tcp_pool& p = busy.p;
  const std::string expected =
      "pool 'busy': all connections claimed after waiting T (running; 1 backend known, 1 online; "
      "1 of 1 slot claimed, 0 claims waiting)";
  expect_claim_error(blocking_claim_error(p, 100ms), p, errc::all_claims_used, expected);
  expect_claim_error(awaited_claim_error(p, 100ms), p, errc::all_claims_used, expected);
  const std::string name = to_string(busy.server.endpoint());
  EXPECT_EQ(blank_times(p.explain().text()),
            "pool 'busy': running; 1 backend known, 1 online; 1 of 1 slot claimed, 0 idle, 0 "
            "connecting; 0 claims waiting\n  " +
                name + " (" + name + "): online; 1 claimed, 0 idle, 0 connecting");
}

TEST(claim_error_text, cancelled_while_waiting) {
  exhausted busy;
  ASSERT_TRUE(busy.held);
  tcp_pool& p = busy.p;
  asio::cancellation_signal signal;
  auto f = asio::co_spawn(
      p.get_executor(), [&]() -> asio::awaitable<void> { auto h = co_await p.co_claim(60s); },
      asio::bind_cancellation_slot(signal.slot(), asio::use_future));
  ASSERT_TRUE(wait_until([&] { return p.stats().claims_waiting == 1; }));
  // From the executor (the claim cannot complete meanwhile: nothing frees).
  asio::post(p.get_executor(), [&] { signal.emit(asio::cancellation_type::terminal); });
  ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
  expect_claim_error(claim_error_of("co_claim", [&] { f.get(); }), p,
                     asio::error::operation_aborted,
                     "pool 'busy': claim cancelled after waiting T (running; 1 backend known, 1 "
                     "online; 1 of 1 slot claimed, 0 claims waiting)");
}

TEST(claim_error_text, pool_failed) {
  io_threads io;
  const auto where = refusing();
  policy pol = steady_policy();
  pol.failed_after = 100ms;
  tcp_pool p(io.executor(), "down", at({where}), tcp_connector{}, pol);
  ASSERT_TRUE(wait_until([&] { return p.status() == pool_status::failed; })) << p.explain();
  ASSERT_TRUE(failed_once(p));
  const std::string expected =
      "pool 'down': pool failed after waiting T (failed; 1 backend known, 0 online; 0 of 16 "
      "slots claimed, 0 claims waiting); last error: " +
      to_string(where) + " connect: Connection refused, T ago";
  auto e = blocking_claim_error(p, 5s);
  expect_claim_error(e, p, errc::pool_failed, expected);
  EXPECT_LT(e->waited(), 1s) << "a failed pool fails claims at once";
  expect_claim_error(awaited_claim_error(p, 5s), p, errc::pool_failed, expected);
}

TEST(claim_error_text, terminated) {
  io_threads io;
  echo_server server;
  tcp_pool p(io.executor(), "gone", at({server.endpoint()}), tcp_connector{}, steady_policy());
  ASSERT_TRUE(wait_until([&] { return p.status() == pool_status::running; }));
  EXPECT_FALSE(p.terminate());
  const std::string expected =
      "pool 'gone': pool terminated after waiting T (stopped; 0 backends known, 0 online; 0 of "
      "16 slots claimed, 0 claims waiting)";
  expect_claim_error(blocking_claim_error(p, 5s), p, errc::terminated, expected);
  expect_claim_error(awaited_claim_error(p, 5s), p, errc::terminated, expected);
}

TEST(claim_error_text, would_deadlock_on_the_pools_own_thread) {
  io_threads io;
  tcp_pool p(io.executor(), "self", at({}), tcp_connector{}, steady_policy());
  auto f = asio::co_spawn(
      p.get_executor(),
      [&]() -> asio::awaitable<std::string> {
        try {
          auto h = p.claim(1s);
        } catch (const claim_error& e) {
          co_return blank_times(e.what());
        }
        co_return std::string("no claim_error");
      },
      asio::use_future);
  ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
  EXPECT_EQ(f.get(),
            "pool 'self': a blocking claim on a thread that runs the pool's executor would "
            "deadlock (starting; 0 backends known, 0 online; 0 of 16 slots claimed, 0 claims "
            "waiting)");
}

}  // namespace
}  // namespace qorb::test
