// SPDX-License-Identifier: BSL-1.0
// core::backoff: min * 2^(n-1) capped at max, plus a random share of
// spread; saturating, and reset by the slot.
#include <gtest/gtest.h>

#include "core/backoff.hpp"

#include <random>

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
  EXPECT_EQ(b.failures(), 0u);
  EXPECT_EQ(b.next(cfg, 0.0), 20ms) << "success resets";
}

TEST(backoff, counts_failures_from_zero) {
  set_config cfg;
  backoff b;
  EXPECT_EQ(b.failures(), 0u);
  b.next(cfg, 0.0);
  EXPECT_EQ(b.failures(), 1u);
  b.next(cfg, 0.0);
  EXPECT_EQ(b.failures(), 2u);
}

TEST(backoff, does_not_overflow_after_many_failures) {
  set_config cfg;
  backoff b;
  duration last{};
  for (int i = 0; i < 200; ++i) last = b.next(cfg, 0.0);
  EXPECT_EQ(last, cfg.max_connection_backoff);
  EXPECT_EQ(b.failures(), 64u) << "the count stops where doubling no longer matters";
}

TEST(backoff, a_max_that_is_not_a_power_of_two_of_min_is_still_the_cap) {
  set_config cfg;
  cfg.min_connection_backoff = 30ms;
  cfg.max_connection_backoff = 100ms;
  cfg.spread = 0ms;
  backoff b;
  EXPECT_EQ(b.next(cfg, 0.0), 30ms);
  EXPECT_EQ(b.next(cfg, 0.0), 60ms);
  EXPECT_EQ(b.next(cfg, 0.0), 100ms) << "120 ms would pass the maximum";
}

TEST(backoff, min_equal_to_max_is_constant) {
  set_config cfg;
  cfg.min_connection_backoff = 50ms;
  cfg.max_connection_backoff = 50ms;
  cfg.spread = 0ms;
  backoff b;
  for (int i = 0; i < 10; ++i) EXPECT_EQ(b.next(cfg, 0.0), 50ms) << i;
}

TEST(backoff, a_maximum_of_forever_saturates_instead_of_overflowing) {
  set_config cfg;
  cfg.min_connection_backoff = 20ms;
  cfg.max_connection_backoff = duration::max();
  cfg.spread = 20ms;
  backoff b;
  duration last{};
  for (int i = 0; i < 100; ++i) {
    const duration d = b.next(cfg, 0.5);
    EXPECT_GE(d, last) << "never shrinks (an overflow would wrap): " << i;
    last = d;
  }
  EXPECT_EQ(last, duration::max());
  EXPECT_EQ(b.next(cfg, 0.0), duration::max());
}

// Within [min_connection_backoff, max_connection_backoff + spread) for any
// random01 in [0, 1), and never shorter than the step before.
TEST(backoff, every_delay_is_within_its_documented_range) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0, 1);
  for (int round = 0; round < 50; ++round) {
    set_config cfg;
    cfg.min_connection_backoff = std::chrono::milliseconds(1 + rng() % 100);
    cfg.max_connection_backoff =
        cfg.min_connection_backoff + std::chrono::milliseconds(rng() % 5000);
    cfg.spread = std::chrono::milliseconds(rng() % 50);
    backoff b;
    duration floor = cfg.min_connection_backoff;
    for (int i = 0; i < 40; ++i) {
      const double r = u(rng);
      const duration d = b.next(cfg, r);
      ASSERT_GE(d, floor) << round << "/" << i;
      ASSERT_LT(d, cfg.max_connection_backoff + cfg.spread + (cfg.spread == 0ms ? 1ns : 0ns))
          << round << "/" << i;
      // Without the random share, the deterministic part never shrinks.
      floor = std::max(floor, d - cfg.spread);
    }
  }
}

}  // namespace
}  // namespace qorb::core
