// SPDX-License-Identifier: BSL-1.0
// Who holds the connections (issue 21), against real TCP echo servers on
// loopback: every claim function records its caller's place in the code;
// holders() lists the claimed connections oldest first with their age,
// backend and claim site; policy::hold_warning warns once per hold, in the
// log; stats() has wait and hold figures per claim site.
#include <qorb/connectors/tcp.hpp>
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <gtest/gtest.h>

#include <ctime>
#include <string>
#include <vector>

#include "support/echo_server.hpp"
#include "support/io_threads.hpp"
#include "support/test_policy.hpp"
#include "support/wait.hpp"

namespace qorb::test {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
using tcp_pool = pool<tcp::socket>;

policy holding_policy() {
  policy p = quick_policy();
  p.max_slots = 4;
  p.spares_wanted = 4;
  return p;
}

std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> capture(std::shared_ptr<spdlog::logger>& log) {
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
  log = std::make_shared<spdlog::logger>("holders", sink);
  log->set_level(spdlog::level::info);
  log->set_pattern("%l %v");
  return sink;
}

std::vector<std::string> lines_with(spdlog::sinks::ringbuffer_sink_mt& sink,
                                    std::string_view needle) {
  std::vector<std::string> out;
  for (const auto& line : sink.last_formatted()) {
    if (line.find(needle) != std::string::npos) out.push_back(line);
  }
  return out;
}

std::string here() { return std::source_location::current().file_name(); }

TEST(holders, lists_every_claim_oldest_first_with_its_backend_age_and_site) {
  echo_server server;
  io_threads io(2);
  policy pol = holding_policy();
  pol.time_holds = true;
  tcp_pool p(io.executor(), "held",
             std::make_shared<fixed_resolver>(std::vector{server.endpoint()}), tcp_connector{},
             pol);
  ASSERT_TRUE(wait_until([&] { return p.stats().backends.begin()->second.unclaimed == 4; }));
  EXPECT_TRUE(p.holders().empty());

  auto first = p.try_claim();
  const unsigned first_line = __LINE__ - 1;
  ASSERT_TRUE(first);
  // Ages come from a clock of a few milliseconds: wait until the first is
  // seen older than a fresh claim would be.
  ASSERT_TRUE(wait_until([&] { return p.holders().at(0).age >= 20ms; }));
  auto second = p.claim();
  const unsigned second_line = __LINE__ - 1;
  auto co = p.co_claim();
  const unsigned third_line = __LINE__ - 1;
  auto third = asio::co_spawn(io.executor(), std::move(co), asio::use_future).get();
  ASSERT_TRUE(second && third);

  const auto held = p.holders();
  ASSERT_EQ(held.size(), 3u);
  EXPECT_EQ(held[0].site.line, first_line);
  EXPECT_EQ(held[1].site.line, second_line);
  EXPECT_EQ(held[2].site.line, third_line);
  for (const auto& h : held) {
    EXPECT_EQ(h.site.file, here());
    EXPECT_NE(h.site.function.find("lists_every_claim_oldest_first"), std::string::npos)
        << h.site.function;
    EXPECT_EQ(h.backend, to_string(server.endpoint()));
    EXPECT_EQ(h.address, server.endpoint());
    EXPECT_FALSE(h.warned);
    EXPECT_TRUE(h.timed);
  }
  EXPECT_GE(held[0].age, 20ms);
  EXPECT_GE(held[0].age, held[1].age);
  EXPECT_GE(held[1].age, held[2].age);
  EXPECT_LT(held[0].claim, held[1].claim);
  EXPECT_NE(held[0].slot, held[1].slot);
  EXPECT_EQ(p.stats().holders.size(), 3u);

  second = {};
  const auto after = p.holders();
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].site.line, first_line);
  EXPECT_EQ(after[1].site.line, third_line);
}

// By default holds are not timed (the claim path reads no clock): the
// list is in claim order, with sites and backends, and no age.
TEST(holders, untimed_by_default_lists_claims_in_claim_order_with_their_sites) {
  echo_server server;
  io_threads io(2);
  tcp_pool p(io.executor(), "untimed",
             std::make_shared<fixed_resolver>(std::vector{server.endpoint()}), tcp_connector{},
             holding_policy());
  ASSERT_TRUE(wait_until([&] { return p.stats().backends.begin()->second.unclaimed == 4; }));
  auto first = p.claim();
  const unsigned first_line = __LINE__ - 1;
  auto second = p.try_claim();
  const unsigned second_line = __LINE__ - 1;
  ASSERT_TRUE(first && second);
  const auto held = p.holders();
  ASSERT_EQ(held.size(), 2u);
  EXPECT_EQ(held[0].site.line, first_line);
  EXPECT_EQ(held[1].site.line, second_line);
  EXPECT_FALSE(held[0].timed);
  EXPECT_EQ(held[0].age, duration::zero());
  EXPECT_EQ(held[0].backend, to_string(server.endpoint()));
}

TEST(holders, a_hold_past_hold_warning_is_logged_once_naming_pool_backend_age_and_site) {
  echo_server server;
  io_threads io(2);
  std::shared_ptr<spdlog::logger> log;
  auto sink = capture(log);
  policy pol = holding_policy();
  pol.hold_warning = 150ms;
  tcp_pool p(io.executor(), "leaky",
             std::make_shared<fixed_resolver>(std::vector{server.endpoint()}), tcp_connector{}, pol,
             log);
  ASSERT_TRUE(wait_until([&] { return p.stats().backends.begin()->second.unclaimed == 4; }));

  auto kept = p.claim();
  const std::string kept_site = here() + ":" + std::to_string(__LINE__ - 1);
  ASSERT_TRUE(kept);
  ASSERT_TRUE(wait_until([&] { return !lines_with(*sink, kept_site).empty(); }));
  const auto first = lines_with(*sink, kept_site);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_TRUE(first[0].starts_with("warning")) << first[0];
  EXPECT_NE(first[0].find("pool leaky"), std::string::npos) << first[0];
  EXPECT_NE(first[0].find(to_string(server.endpoint())), std::string::npos) << first[0];
  EXPECT_NE(first[0].find("has been held for 0."), std::string::npos) << first[0];
  EXPECT_TRUE(p.holders().at(0).warned);

  // A second hold, warned about in turn: the first was not warned again.
  auto later = p.claim();
  const std::string later_site = here() + ":" + std::to_string(__LINE__ - 1);
  ASSERT_TRUE(wait_until([&] { return !lines_with(*sink, later_site).empty(); }));
  EXPECT_EQ(lines_with(*sink, kept_site).size(), 1u) << "once per hold";
  EXPECT_EQ(p.stats().hold_warnings, 2u);
  // A hold returned in time is never warned about.
  const auto before = p.stats().hold_warnings;
  {
    auto brief = p.claim();
    ASSERT_TRUE(brief);
  }
  auto last = p.claim();
  const std::string last_site = here() + ":" + std::to_string(__LINE__ - 1);
  ASSERT_TRUE(wait_until([&] { return !lines_with(*sink, last_site).empty(); }));
  EXPECT_EQ(p.stats().hold_warnings, before + 1) << "only the hold kept past the limit";
}

TEST(holders, stats_have_wait_and_hold_figures_per_claim_site) {
  echo_server server;
  io_threads io(2);
  policy pol = holding_policy();
  pol.max_slots = 1;
  pol.spares_wanted = 1;
  pol.time_holds = true;
  tcp_pool p(io.executor(), "sites",
             std::make_shared<fixed_resolver>(std::vector{server.endpoint()}), tcp_connector{},
             pol);
  ASSERT_TRUE(wait_until([&] { return p.stats().backends.begin()->second.unclaimed == 1; }));
  unsigned quick_line = 0;
  for (int i = 0; i < 3; ++i) {
    auto h = p.claim();
    quick_line = __LINE__ - 1;
    ASSERT_TRUE(h);
  }
  // One claim that waits for the connection another site holds.
  auto holder = p.claim();
  const unsigned holder_line = __LINE__ - 1;
  auto waiting = p.async_claim(2s, asio::use_future);
  const unsigned waiter_line = __LINE__ - 1;
  ASSERT_TRUE(wait_until([&] { return p.stats().claims_waiting == 1; }));
  ASSERT_TRUE(wait_until([&] { return p.holders().at(0).age >= 30ms; }));
  holder = {};
  auto served = waiting.get();
  ASSERT_TRUE(served);
  served = {};

  const auto sites = p.stats().sites;
  auto row = [&](unsigned line) -> const claim_site_stats* {
    for (const auto& s : sites) {
      if (s.site.line == line && s.site.file == here()) return &s;
    }
    return nullptr;
  };
  const auto* quick = row(quick_line);
  ASSERT_NE(quick, nullptr);
  EXPECT_EQ(quick->wait.count, 3u);
  EXPECT_EQ(quick->hold.count, 3u);
  EXPECT_EQ(sites.front().site.line, quick_line) << "busiest first";
  const auto* held = row(holder_line);
  ASSERT_NE(held, nullptr);
  EXPECT_EQ(held->hold.count, 1u);
  // Holds are timed by the coarse clock (CLOCK_MONOTONIC_COARSE): each end
  // may be a tick late, so a hold seen at 30 ms may measure two ticks less.
  timespec res{};
  ::clock_getres(CLOCK_MONOTONIC_COARSE, &res);
  const double tick = double(res.tv_sec) + double(res.tv_nsec) / 1e9;
  EXPECT_GE(held->hold.sum_s, 0.030 - 2 * tick);
  const auto* waited = row(waiter_line);
  ASSERT_NE(waited, nullptr);
  EXPECT_EQ(waited->wait.count, 1u);
  EXPECT_GE(waited->wait.sum_s, 0.025);
  EXPECT_EQ(waited->hold.count, 1u);
  EXPECT_FALSE(quick->other);
}

}  // namespace
}  // namespace qorb::test
