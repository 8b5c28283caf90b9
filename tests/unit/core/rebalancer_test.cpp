// SPDX-License-Identifier: BSL-1.0
// core::slot_budget, core::plan, core::uniform_share and core::rebalancer:
// how many slots the pool wants, how they are split over backends, and how
// much of a plan each rebalance needs.
#include <gtest/gtest.h>

#include <random>

#include "core/rebalancer.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

namespace qorb::core {
namespace {

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

using sizes = std::vector<std::size_t>;

// ----- the budget ----------------------------------------------------------------

TEST(rebalance, budget_is_claimed_plus_spares_up_to_max_slots) {
  policy p;  // spares 8, max 16
  EXPECT_EQ(budget_of(p, {{true, 3}, {false, 0}}), 11u);
  EXPECT_EQ(budget_of(p, {{true, 12}, {true, 3}}), 16u);
  EXPECT_EQ(slot_budget(p, 3, 2), 13u) << "waiting claims are demand too";
  EXPECT_EQ(rebalance(p, {{true, 0}, {true, 0}}, 40), (sizes{8, 8}))
      << "a budget over max_slots is capped";
}

TEST(rebalance, the_budget_does_not_overflow) {
  policy p;
  p.max_slots = SIZE_MAX;
  p.spares_wanted = SIZE_MAX;
  EXPECT_EQ(slot_budget(p, SIZE_MAX, SIZE_MAX), SIZE_MAX);
  EXPECT_EQ(slot_budget(p, 1, 0), SIZE_MAX);
  p.spares_wanted = 2;
  EXPECT_EQ(slot_budget(p, SIZE_MAX - 1, 1), SIZE_MAX);
  EXPECT_EQ(slot_budget(p, 3, 4), 9u);
  p.max_slots = 5;
  EXPECT_EQ(slot_budget(p, SIZE_MAX, SIZE_MAX), 5u);
  EXPECT_EQ(slot_budget(p, 0, 0), 2u);
}

// ----- the plan ------------------------------------------------------------------

TEST(rebalance, offline_backends_get_one_probe_and_online_ones_share_the_rest) {
  policy p;  // spares 8, max 16
  auto wanted = rebalance(p, {{true, 0}, {true, 0}, {false, 0}});
  // min(0 + 8, 16) - 1 questionable = 7 over 2 online: 4 and 3.
  EXPECT_EQ(wanted, (sizes{4, 3, 1}));
}

TEST(rebalance, claimed_connections_raise_the_total_up_to_max_slots) {
  policy p;
  EXPECT_EQ(rebalance(p, {{true, 4}, {true, 2}}), (sizes{7, 7}));
  EXPECT_EQ(rebalance(p, {{true, 12}, {true, 10}}), (sizes{8, 8}));
}

TEST(rebalance, respects_max_count_and_keeps_one_slot_per_online_backend) {
  policy p;
  p.set_config.max_count = 3;
  EXPECT_EQ(rebalance(p, {{true, 0}, {true, 0}}), (sizes{3, 3}));
  p.spares_wanted = 0;
  EXPECT_EQ(rebalance(p, {{true, 0}, {true, 0}}), (sizes{1, 1}));
}

TEST(rebalance, online_backends_keep_one_slot_even_when_probes_take_the_budget) {
  policy p;
  EXPECT_EQ(rebalance(p, {{true, 0}, {false, 0}, {false, 0}}, 2), (sizes{1, 1, 1}));
  EXPECT_EQ(rebalance(p, {{false, 0}, {true, 0}, {false, 0}, {true, 0}}, 1), (sizes{1, 1, 1, 1}));
}

TEST(rebalance, remainder_stays_where_the_slots_are) {
  policy p;
  p.spares_wanted = 5;
  // 5 over 2: the backend that already has 3 keeps them, whatever the order.
  EXPECT_EQ(rebalance(p, {{true, 0, 2}, {true, 0, 3}}), (sizes{2, 3}));
  EXPECT_EQ(rebalance(p, {{true, 0, 3}, {true, 0, 2}}), (sizes{3, 2}));
  EXPECT_EQ(rebalance(p, {{true, 0, 0}, {true, 0, 0}}), (sizes{3, 2}))
      << "ties: the first (best) backend";
  // 8 over 3: two get 3, in the order of the slots they have.
  p.spares_wanted = 8;
  EXPECT_EQ(rebalance(p, {{true, 0, 1}, {true, 0, 4}, {true, 0, 3}}), (sizes{2, 3, 3}));
  EXPECT_EQ(rebalance(p, {{true, 0, 2}, {false, 0, 1}, {true, 0, 2}, {true, 0, 2}}),
            (sizes{3, 1, 2, 2}))
      << "7 over 3, ties to the earliest";
}

TEST(rebalance, repeated_plans_do_not_move_slots_back_and_forth) {
  policy p;
  p.spares_wanted = 7;
  std::vector<input> in = {{true, 0, 0}, {true, 0, 0}, {true, 0, 0}};
  auto first = rebalance(p, in);
  for (int round = 0; round < 5; ++round) {
    for (std::size_t i = 0; i < in.size(); ++i) in[i].slots = first[i];
    EXPECT_EQ(rebalance(p, in), first) << round;
  }
}

TEST(rebalance, nothing_online_means_only_probes) {
  policy p;
  EXPECT_EQ(rebalance(p, {{false, 0}, {false, 0}}), (sizes{1, 1}));
  EXPECT_TRUE(rebalance(p, {}).empty());
}

// ----- the uniform share ------------------------------------------------------------

TEST(uniform_share, is_the_even_split_when_there_is_no_remainder) {
  policy p;  // spares 8, max 16, max_count 16
  EXPECT_EQ(uniform_share(p, 8, 2, 0), 4u);
  EXPECT_EQ(uniform_share(p, 8, 1, 2), 6u) << "probes come out of the budget first";
  EXPECT_EQ(uniform_share(p, 40, 2, 0), 8u) << "the budget is capped at max_slots";
  EXPECT_FALSE(uniform_share(p, 8, 3, 0)) << "3, 3, 2: not uniform";
  EXPECT_FALSE(uniform_share(p, 8, 2, 1));
}

TEST(uniform_share, clamping_can_make_a_split_uniform) {
  policy p;
  p.set_config.max_count = 3;
  EXPECT_EQ(uniform_share(p, 8, 2, 0), 3u) << "4 each, capped";
  EXPECT_EQ(uniform_share(p, 7, 2, 0), 3u) << "4 and 3, both capped to 3";
  EXPECT_EQ(uniform_share(p, 1, 3, 0), 1u) << "1, 0, 0: at least one each";
  EXPECT_EQ(uniform_share(p, 2, 2, 5), 1u) << "probes took it all";
  EXPECT_EQ(uniform_share(p, 8, 0, 4), 1u) << "nobody online: every backend a probe";
}

TEST(uniform_share, agrees_with_plan) {
  for (std::size_t max_count : {1u, 2u, 3u, 16u}) {
    policy p;
    p.set_config.max_count = max_count;
    for (std::size_t budget = 0; budget <= 20; ++budget) {
      for (std::size_t online = 1; online <= 5; ++online) {
        for (std::size_t questionable = 0; questionable <= 3; ++questionable) {
          std::vector<rebalance_input> in(online + questionable);
          for (std::size_t i = 0; i < online; ++i) in[i].online = true;
          const auto wanted = plan(p, in, budget);
          std::vector<std::size_t> online_wanted(wanted.begin(), wanted.begin() + long(online));
          const bool uniform = std::all_of(online_wanted.begin(), online_wanted.end(),
                                           [&](std::size_t w) { return w == online_wanted[0]; });
          const auto share = uniform_share(p, budget, online, questionable);
          ASSERT_EQ(share.has_value(), uniform)
              << max_count << " " << budget << " " << online << " " << questionable;
          if (share) {
            ASSERT_EQ(*share, online_wanted[0]);
          }
        }
      }
    }
  }
}

// ----- how much to plan --------------------------------------------------------------

using step = rebalancer::step;

TEST(rebalancer, the_first_rebalance_plans_everything_then_nothing_changes) {
  policy p;  // spares 8, max 16
  rebalancer r;
  EXPECT_EQ(r.next(p, 0, 0, 2, 0, false, false), step::everything);
  EXPECT_EQ(r.budget(), 8u);
  EXPECT_EQ(r.share(), 4u);
  EXPECT_EQ(r.next(p, 0, 0, 2, 0, false, false), step::nothing) << "O(1) when nothing changed";
}

TEST(rebalancer, a_changed_set_alone_is_planned_while_the_share_stays) {
  policy p;
  rebalancer r;
  r.next(p, 0, 0, 2, 0, false, false);
  EXPECT_EQ(r.next(p, 0, 0, 2, 0, true, false), step::changed_only);
  // A third backend online: 8 over 3 is not uniform, so everything.
  EXPECT_EQ(r.next(p, 0, 0, 3, 0, true, false), step::everything);
  EXPECT_FALSE(r.share());
  EXPECT_EQ(r.next(p, 0, 0, 3, 0, false, false), step::nothing);
  EXPECT_EQ(r.next(p, 0, 0, 3, 0, true, false), step::everything)
      << "no uniform share: a change means a whole plan";
  // A fourth: 2 each, a new share, so everyone moves.
  EXPECT_EQ(r.next(p, 0, 0, 4, 0, true, false), step::everything);
  EXPECT_EQ(r.share(), 2u);
}

TEST(rebalancer, event_driven_rebalances_only_raise_the_budget) {
  policy p;
  rebalancer r;
  r.next(p, 0, 0, 2, 0, false, false);
  EXPECT_EQ(r.next(p, 2, 2, 2, 0, false, false), step::everything) << "more demand";
  EXPECT_EQ(r.budget(), 12u);
  EXPECT_EQ(r.share(), 6u);
  EXPECT_EQ(r.next(p, 0, 0, 2, 0, false, false), step::nothing) << "less demand: kept";
  EXPECT_EQ(r.budget(), 12u);
  EXPECT_EQ(r.share(), 6u);
  EXPECT_EQ(r.next(p, 0, 0, 2, 0, true, false), step::changed_only)
      << "less demand and a set changed: kept, the share too";
  EXPECT_EQ(r.budget(), 12u);
  EXPECT_EQ(r.next(p, 0, 0, 3, 0, true, false), step::everything) << "one more online";
  EXPECT_EQ(r.budget(), 12u) << "still kept";
  EXPECT_EQ(r.share(), 4u);
  EXPECT_EQ(r.next(p, 10, 10, 3, 0, false, false), step::everything);
  EXPECT_EQ(r.budget(), 16u) << "up to max_slots";
  EXPECT_EQ(r.next(p, 20, 20, 3, 0, false, false), step::nothing);
}

TEST(rebalancer, the_periodic_rebalance_always_plans_and_may_lower_the_budget) {
  policy p;
  rebalancer r;
  r.next(p, 4, 4, 2, 0, false, false);
  ASSERT_EQ(r.budget(), 16u);
  EXPECT_EQ(r.next(p, 0, 0, 2, 0, false, true), step::everything);
  EXPECT_EQ(r.budget(), 8u);
  EXPECT_EQ(r.share(), 4u);
  EXPECT_EQ(r.next(p, 0, 0, 2, 0, false, true), step::everything)
      << "periodic: a whole plan though nothing changed";
  EXPECT_EQ(r.next(p, 0, 0, 2, 0, false, false), step::nothing);
}

TEST(rebalancer, a_budget_that_moves_without_moving_the_share_plans_nothing) {
  policy p;
  p.set_config.max_count = 3;
  rebalancer r;
  r.next(p, 0, 0, 2, 0, false, false);
  ASSERT_EQ(r.share(), 3u);
  EXPECT_EQ(r.next(p, 2, 0, 2, 0, false, false), step::nothing) << "10 over 2, capped at 3";
  EXPECT_EQ(r.budget(), 10u) << "the budget still rose";
  EXPECT_EQ(r.next(p, 2, 0, 2, 0, true, false), step::changed_only);
}

// quiet() answers with a limit worked out when the budget changes: it must
// say exactly what comparing slot_budget with the budget says.
TEST(rebalancer, quiet_is_exactly_the_demand_within_the_budget) {
  std::mt19937_64 rng(7);
  auto uni = [&](std::size_t lo, std::size_t hi) {
    return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
  };
  for (int round = 0; round < 2000; ++round) {
    policy p;
    p.max_slots = uni(1, 40);
    p.spares_wanted = uni(0, 50);
    p.min_idle = uni(0, p.max_slots);
    rebalancer r;
    r.next(p, uni(0, 30), uni(0, 10), 2, 0, false, round % 2 == 0);
    if (round % 3 == 0) r.lower_to(p, uni(0, 30));
    for (int k = 0; k < 20; ++k) {
      const std::size_t claimed = uni(0, 60), waiting = uni(0, 20);
      EXPECT_EQ(r.quiet(claimed, waiting, 2, 0), slot_budget(p, claimed, waiting) <= r.budget())
          << "max_slots " << p.max_slots << " spares " << p.spares_wanted << " min_idle "
          << p.min_idle << " budget " << r.budget() << " claimed " << claimed << " waiting "
          << waiting;
    }
  }
}

}  // namespace
}  // namespace qorb::core
