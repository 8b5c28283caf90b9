// SPDX-License-Identifier: BSL-1.0
// The Asio driver around the core: what only real executors and timers
// show (the core's decisions are tested on a manual clock in tests/unit/core).
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <future>
#include <optional>

#include "support/fake_connector.hpp"
#include "support/io_threads.hpp"
#include "support/test_policy.hpp"
#include "support/wait.hpp"

namespace qorb::test {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;

tcp::endpoint ep(unsigned short n) { return {asio::ip::make_address("127.0.0.1"), n}; }

// Hardening: the old core cancelled a slot timer bound to the dead
// io_context when such a handle came back (a heap use-after-free under ASan).
// The connection is not destroyed either: its destructor may touch the dead
// context (a real socket does: tcp_pool_test has that case), so the pool
// parks it for the process's life.
TEST(driver, a_handle_returned_after_its_io_context_is_gone_parks_the_connection_untouched) {
  fake_connector c;
  handle<fake_conn> held;
  {
    std::optional<io_threads> io(std::in_place, 1);
    auto res = std::make_shared<fixed_resolver>(std::vector<tcp::endpoint>{ep(1)});
    auto p = quick_policy();
    p.set_config.health_interval = 10ms;  // timers armed while it runs
    {
      pool<fake_conn> pool(io->executor(), "gone", res, c, p);
      held = pool.claim();
      ASSERT_TRUE(held);
    }
    io.reset();  // the pool, then its io_context, are gone
  }
  EXPECT_EQ(c.state->live, 1);
  held.reset();
  EXPECT_FALSE(held);
  EXPECT_EQ(c.state->live, 1) << "not destroyed after its context";
}

// Hardening: spares_wanted above max_slots was accepted silently; the pool
// keeps at most max_slots, and says so once.
TEST(driver, spares_wanted_above_max_slots_is_logged_once_at_construction) {
  fake_connector c;
  io_threads io(1);
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(100);
  auto log = std::make_shared<spdlog::logger>("spares", sink);
  log->set_pattern("%l %v");
  auto res = std::make_shared<fixed_resolver>(std::vector<tcp::endpoint>{ep(1)});
  auto p = quick_policy();
  p.max_slots = 2;
  p.spares_wanted = 8;
  pool<fake_conn> over(io.executor(), "spares", res, c, p, log);
  auto held = over.claim();
  ASSERT_TRUE(held);
  held.reset();
  std::size_t lines = 0;
  for (const auto& line : sink->last_formatted()) {
    if (line.find("spares_wanted") == std::string::npos) continue;
    ++lines;
    EXPECT_TRUE(line.starts_with("warning")) << line;
    EXPECT_NE(line.find("spares_wanted 8 is above max_slots 2"), std::string::npos) << line;
    EXPECT_NE(line.find("at most 2"), std::string::npos) << line;
  }
  EXPECT_EQ(lines, 1u);
  EXPECT_LE(over.stats().backends.begin()->second.unclaimed, 2u);
  // Within the limit: nothing said.
  auto quiet_sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(100);
  auto quiet = std::make_shared<spdlog::logger>("quiet", quiet_sink);
  auto q = quick_policy();
  q.max_slots = 8;
  q.spares_wanted = 8;
  pool<fake_conn> fine(io.executor(), "fine", res, c, q, quiet);
  for (const auto& line : quiet_sink->last_formatted()) {
    EXPECT_EQ(line.find("spares_wanted"), std::string::npos) << line;
  }
}

// One timer serves every deadline: a claim's deadline that comes before the
// armed wake-up (the periodic rebalance) re-arms it earlier.
TEST(driver, an_earlier_deadline_rearms_the_one_timer) {
  fake_connector c;
  io_threads io(1);
  auto res = std::make_shared<fixed_resolver>(std::vector<tcp::endpoint>{ep(1)});
  auto p = quick_policy();
  p.max_slots = 1;
  p.rebalance_interval = 1h;
  pool<fake_conn> pool(io.executor(), "timer", res, c, p);
  auto held = pool.claim();
  std::promise<error_code> done;
  const auto start = std::chrono::steady_clock::now();
  pool.async_claim(50ms, [&](error_code ec, handle<fake_conn>) { done.set_value(ec); });
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(f.get(), errc::all_claims_used);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
}

// A connector whose connections die young is not hammered (the old core
// reconnected at once: 2,488 connects in 3 s against such a server).
TEST(driver, connections_discarded_young_reconnect_with_backoff) {
  fake_connector c;
  io_threads io(1);
  auto res = std::make_shared<fixed_resolver>(std::vector<tcp::endpoint>{ep(1)});
  auto p = quick_policy();
  p.max_slots = 1;
  p.set_config.min_connection_backoff = 20ms;
  p.set_config.max_connection_backoff = 1s;
  p.set_config.spread = 0ms;
  pool<fake_conn> pool(io.executor(), "young", res, c, p);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 4; ++i) {
    auto h = pool.claim();
    ASSERT_TRUE(h);
    h.discard();
  }
  // Delays 20 + 40 + 80 ms at least before the fourth connection.
  EXPECT_GE(std::chrono::steady_clock::now() - start, 140ms);
  EXPECT_EQ(c.state->connects, 4);
}

// A moved-from pool has no executor: its async_terminate's plain callback
// still runs (on the system executor), saying the pool is terminated.
TEST(driver, async_terminate_on_a_moved_from_pool_completes) {
  fake_connector c;
  io_threads io(1);
  auto res = std::make_shared<fixed_resolver>(std::vector<tcp::endpoint>{ep(1)});
  pool<fake_conn> first(io.executor(), "moved", res, c, quick_policy());
  pool<fake_conn> second(std::move(first));
  std::promise<error_code> done;
  first.async_terminate(
      [&](error_code ec) { done.set_value(ec); });  // NOLINT(bugprone-use-after-move)
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(f.get(), errc::terminated);
  EXPECT_FALSE(second.terminate()) << "the pool it moved to is untouched";
}

// A connect the core cancels before its call begins (its backend went away
// while the start was still queued on the executor) never reaches the
// connector: a removed backend is not dialled. (Seen as a rare extra
// connect to a removed backend in pool_test, with two io threads.)
TEST(driver, a_connect_cancelled_before_it_begins_never_reaches_the_connector) {
  fake_connector c;
  asio::io_context io;  // not running yet: every start stays queued
  auto res = std::make_shared<fixed_resolver>();
  {
    pool<fake_conn> p(io.get_executor(), "queued", res, c, quick_policy());
    res->set_endpoints({ep(1)});  // the listener runs here: connects decided
    ASSERT_GT(p.stats().backends.at("127.0.0.1:1").connecting, 0u);
    res->set_endpoints({ep(2)});  // ... and cancelled, still queued
    for (int i = 0; i < 100 && c.state->connect_calls_to("127.0.0.1:2") == 0; ++i) io.poll();
    EXPECT_GT(c.state->connect_calls_to("127.0.0.1:2"), 0) << "the queued starts ran";
    EXPECT_EQ(c.state->connect_calls_to("127.0.0.1:1"), 0) << "a cancelled start dialled";
    EXPECT_FALSE(p.terminate());
  }
  io.poll();
  EXPECT_EQ(c.state->live, 0);
}

}  // namespace
}  // namespace qorb::test
