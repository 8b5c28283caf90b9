// The pool's pure decisions, with explicit time and randomness.
#include <qorb/backend.hpp>

#include "core/backoff.hpp"
#include "core/failure_window.hpp"
#include "core/rebalancer.hpp"

#include <gtest/gtest.h>

#include <optional>

namespace qorb::core {
namespace {

using namespace std::chrono_literals;

TEST(backoff, doubles_from_min_caps_at_max_and_adds_spread) {
  set_config cfg;
  cfg.min_connection_backoff = 20ms;
  cfg.max_connection_backoff = 100ms;
  cfg.spread = 10ms;
  backoff b;
  EXPECT_EQ(b.next(cfg, 0.0), 20ms);
  EXPECT_EQ(b.next(cfg, 0.0), 40ms);
  EXPECT_EQ(b.next(cfg, 0.0), 80ms);
  EXPECT_EQ(b.next(cfg, 0.0), 100ms);
  EXPECT_EQ(b.next(cfg, 0.0), 100ms);
  EXPECT_EQ(b.next(cfg, 0.5), 105ms) << "spread: a random share of `spread` on top";
  EXPECT_EQ(b.failures(), 6u);
  b.reset();
  EXPECT_EQ(b.next(cfg, 0.0), 20ms) << "success resets";
}

TEST(backoff, does_not_overflow_after_many_failures) {
  set_config cfg;
  backoff b;
  duration last{};
  for (int i = 0; i < 200; ++i) last = b.next(cfg, 0.0);
  EXPECT_EQ(last, cfg.max_connection_backoff);
}

TEST(failure_window, counts_failures_inside_the_window_only) {
  failure_window w(1000ms);  // ten 100 ms buckets
  const time_point t0{std::chrono::seconds(100)};
  w.add(t0);
  w.add(t0 + 50ms);
  w.add(t0 + 450ms);
  EXPECT_EQ(w.count(t0 + 500ms), 3u);
  EXPECT_EQ(w.count(t0 + 1050ms), 1u) << "the first two slid out";
  EXPECT_EQ(w.count(t0 + 1500ms), 0u);
  w.add(t0 + 5000ms);
  EXPECT_EQ(w.count(t0 + 5000ms), 1u) << "a reused bucket starts from zero";
}

// Old-style inputs: {online, claimed, slots}.
struct input {
  bool online = false;
  std::size_t claimed = 0;
  std::size_t slots = 0;
};

std::size_t budget_of(const policy& p, const std::vector<input>& in) {
  std::size_t claimed = 0;
  for (const auto& i : in) claimed += i.online ? i.claimed : 0;
  return slot_budget(p, claimed, 0);
}

std::vector<std::size_t> rebalance(const policy& p, const std::vector<input>& in,
                                   std::optional<std::size_t> budget = std::nullopt) {
  std::vector<rebalance_input> inputs;
  for (const auto& i : in) inputs.push_back({i.online, i.slots});
  return plan(p, inputs, budget ? *budget : budget_of(p, in));
}

TEST(rebalance, budget_is_claimed_plus_spares_up_to_max_slots) {
  policy p;  // spares 8, max 16
  EXPECT_EQ(budget_of(p, {{true, 3}, {false, 0}}), 11u);
  EXPECT_EQ(budget_of(p, {{true, 12}, {true, 3}}), 16u);
  EXPECT_EQ(slot_budget(p, 3, 2), 13u) << "waiting claims are demand too";
  EXPECT_EQ(rebalance(p, {{true, 0}, {true, 0}}, 40), (std::vector<std::size_t>{8, 8}))
      << "a budget over max_slots is capped";
}

TEST(rebalance, offline_backends_get_one_probe_and_online_ones_share_the_rest) {
  policy p;  // spares 8, max 16
  auto wanted = rebalance(p, {{true, 0}, {true, 0}, {false, 0}});
  // min(0 + 8, 16) - 1 questionable = 7 over 2 online: 4 and 3.
  EXPECT_EQ(wanted, (std::vector<std::size_t>{4, 3, 1}));
}

TEST(rebalance, claimed_connections_raise_the_total_up_to_max_slots) {
  policy p;
  EXPECT_EQ(rebalance(p, {{true, 4}, {true, 2}}), (std::vector<std::size_t>{7, 7}));
  EXPECT_EQ(rebalance(p, {{true, 12}, {true, 10}}), (std::vector<std::size_t>{8, 8}));
}

TEST(rebalance, respects_max_count_and_keeps_one_slot_per_online_backend) {
  policy p;
  p.set_config.max_count = 3;
  EXPECT_EQ(rebalance(p, {{true, 0}, {true, 0}}), (std::vector<std::size_t>{3, 3}));
  p.spares_wanted = 0;
  EXPECT_EQ(rebalance(p, {{true, 0}, {true, 0}}), (std::vector<std::size_t>{1, 1}));
}

TEST(rebalance, remainder_stays_where_the_slots_are) {
  policy p;
  p.spares_wanted = 5;
  // 5 over 2: the backend that already has 3 keeps them, whatever the order.
  EXPECT_EQ(rebalance(p, {{true, 0, 2}, {true, 0, 3}}), (std::vector<std::size_t>{2, 3}));
  EXPECT_EQ(rebalance(p, {{true, 0, 3}, {true, 0, 2}}), (std::vector<std::size_t>{3, 2}));
  EXPECT_EQ(rebalance(p, {{true, 0, 0}, {true, 0, 0}}), (std::vector<std::size_t>{3, 2}))
      << "ties: the first (best) backend";
}

TEST(rebalance, nothing_online_means_only_probes) {
  policy p;
  EXPECT_EQ(rebalance(p, {{false, 0}, {false, 0}}), (std::vector<std::size_t>{1, 1}));
  EXPECT_TRUE(rebalance(p, {}).empty());
}

TEST(backend_names, are_ip_port_with_brackets_for_v6) {
  using asio::ip::make_address;
  EXPECT_EQ(to_string(asio::ip::tcp::endpoint(make_address("127.0.0.1"), 80)), "127.0.0.1:80");
  EXPECT_EQ(to_string(asio::ip::tcp::endpoint(make_address("::1"), 8080)), "[::1]:8080");
}

TEST(backend_names, parse_endpoint_reads_what_to_string_prints) {
  using asio::ip::make_address;
  using asio::ip::tcp;
  for (const auto& e :
       {tcp::endpoint(make_address("127.0.0.1"), 80), tcp::endpoint(make_address("::1"), 8080),
        tcp::endpoint(make_address("10.1.2.3"), 0),
        tcp::endpoint(make_address("fe80::1"), 65535)}) {
    EXPECT_EQ(parse_endpoint(to_string(e)), e) << to_string(e);
  }
  EXPECT_EQ(parse_endpoint("127.0.0.1", 53), tcp::endpoint(make_address("127.0.0.1"), 53));
  EXPECT_EQ(parse_endpoint("[::1]", 53), tcp::endpoint(make_address("::1"), 53));
  EXPECT_EQ(parse_endpoint("::1", 53), tcp::endpoint(make_address("::1"), 53));
  for (const char* bad : {"", "127.0.0.1", "::1", "[::1]", "127.0.0.1:", "[::1]:", "[::1",
                          "::1]:80", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:8x",
                          "localhost:80", "[127.0.0.1:80", "1.2.3:80", "[::1]80"}) {
    EXPECT_FALSE(parse_endpoint(bad)) << bad;
  }
}

}  // namespace
}  // namespace qorb::core
