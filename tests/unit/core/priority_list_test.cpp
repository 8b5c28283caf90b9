// SPDX-License-Identifier: BSL-1.0
// core::priority_list: the best set first, +1 for a set that served, +20
// and out of the list for one that ran out, rescoring; and a randomized
// check against a brute-force reference.
#include <gtest/gtest.h>

#include "core/priority_list.hpp"
#include "core_support/fake_slot_port.hpp"

#include <algorithm>
#include <limits>
#include <memory>
#include <random>
#include <vector>

namespace qorb::test {
namespace {

using namespace std::chrono_literals;
using core::priority_hook;
using core::priority_list;
using core::slot_set;

std::vector<std::unique_ptr<slot_set>> make_sets(const std::vector<double>& scores) {
  std::vector<std::unique_ptr<slot_set>> out;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    std::string name = "s";  // appended: GCC 12 -O3 misreads "s" + ... (-Wrestrict)
    name += std::to_string(i);
    out.push_back(std::make_unique<slot_set>(std::uint16_t(i), test_backend(name), 2s));
    out.back()->priority.score = scores[i];
  }
  return out;
}

bool listed(const slot_set& s) { return s.priority.pos != priority_hook::absent; }

TEST(priority_list, an_empty_list_has_no_best) {
  priority_list list;
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.size(), 0u);
  EXPECT_EQ(list.best(), nullptr);
  list.rescored();
  EXPECT_EQ(list.best(), nullptr);
}

TEST(priority_list, best_is_the_lowest_score_and_insert_is_idempotent) {
  auto sets = make_sets({3, 1, 2});
  priority_list list;
  for (auto& s : sets) list.insert(*s);
  EXPECT_EQ(list.size(), 3u);
  EXPECT_EQ(list.best(), sets[1].get());
  list.insert(*sets[1]);
  EXPECT_EQ(list.size(), 3u) << "a set is in the list once";
  for (auto& s : sets) EXPECT_TRUE(listed(*s));
}

TEST(priority_list, a_set_that_served_scores_one_more) {
  auto sets = make_sets({1, 1.5});
  priority_list list;
  list.insert(*sets[0]);
  list.insert(*sets[1]);
  ASSERT_EQ(list.best(), sets[0].get());
  list.served(*sets[0]);
  EXPECT_DOUBLE_EQ(sets[0]->priority.score, 1 + priority_list::serve_penalty);
  EXPECT_EQ(list.best(), sets[1].get()) << "claims spread";
  EXPECT_EQ(list.size(), 2u);
  // Out of the list, it still scores.
  list.remove(*sets[1]);
  list.served(*sets[1]);
  EXPECT_DOUBLE_EQ(sets[1]->priority.score, 2.5);
  EXPECT_FALSE(listed(*sets[1]));
}

TEST(priority_list, an_exhausted_set_scores_twenty_more_and_leaves_until_inserted_again) {
  auto sets = make_sets({0, 10, 15});
  priority_list list;
  for (auto& s : sets) list.insert(*s);
  list.exhausted(*sets[0]);
  EXPECT_FALSE(listed(*sets[0]));
  EXPECT_DOUBLE_EQ(sets[0]->priority.score, 0 + priority_list::exhausted_penalty);
  EXPECT_EQ(list.size(), 2u);
  EXPECT_EQ(list.best(), sets[1].get());
  list.exhausted(*sets[1]);
  EXPECT_EQ(list.best(), sets[2].get());
  // Back in, with the penalty it earned: 20 and 30 against 15.
  list.insert(*sets[0]);
  list.insert(*sets[1]);
  EXPECT_EQ(list.size(), 3u);
  EXPECT_EQ(list.best(), sets[2].get()) << "busy backends are tried last";
  list.remove(*sets[2]);
  EXPECT_EQ(list.best(), sets[0].get());
  EXPECT_DOUBLE_EQ(sets[2]->priority.score, 15) << "removal keeps the score";
}

TEST(priority_list, removing_from_anywhere_keeps_the_order) {
  auto sets = make_sets({5, 1, 4, 2, 3, 0});
  priority_list list;
  for (auto& s : sets) list.insert(*s);
  list.remove(*sets[3]);  // somewhere inside
  list.remove(*sets[5]);  // the best
  list.remove(*sets[5]);  // again: nothing
  EXPECT_EQ(list.size(), 4u);
  std::vector<double> order;
  while (slot_set* s = list.best()) {
    order.push_back(s->priority.score);
    list.remove(*s);
  }
  EXPECT_EQ(order, (std::vector<double>{1, 3, 4, 5}));
}

TEST(priority_list, removing_from_the_middle_can_move_the_last_set_up) {
  // Inserted in order, these scores keep this layout; removing 55 (under 50)
  // puts the last entry, 30, in its place, where it belongs above 50.
  auto sets = make_sets({0, 50, 10, 55, 70, 60, 30});
  priority_list list;
  for (auto& s : sets) list.insert(*s);
  list.remove(*sets[3]);
  EXPECT_EQ(sets[6]->priority.pos, 1u);
  std::vector<double> order;
  while (slot_set* s = list.best()) {
    order.push_back(s->priority.score);
    list.remove(*s);
  }
  EXPECT_EQ(order, (std::vector<double>{0, 10, 30, 50, 60, 70}));
}

TEST(priority_list, rescored_orders_by_the_new_scores_and_keeps_absent_sets_out) {
  auto sets = make_sets({0, 1, 2, 3});
  priority_list list;
  for (std::size_t i = 0; i < 3; ++i) list.insert(*sets[i]);
  sets[0]->priority.score = 9;
  sets[1]->priority.score = 7;
  sets[2]->priority.score = 8;
  sets[3]->priority.score = -1;  // not in the list
  EXPECT_EQ(list.best(), sets[0].get()) << "nothing moves before rescored()";
  list.rescored();
  EXPECT_EQ(list.best(), sets[1].get());
  EXPECT_EQ(list.size(), 3u);
  EXPECT_FALSE(listed(*sets[3]));
  list.insert(*sets[3]);
  EXPECT_EQ(list.best(), sets[3].get()) << "inserted with the score it was given";
  list.served(*sets[1]);  // 8: ties with sets[2]
  list.remove(*sets[3]);
  EXPECT_DOUBLE_EQ(list.best()->priority.score, 8);
}

// The reference: each set's score and whether it is in the list.
TEST(priority_list, matches_a_brute_force_reference_over_many_random_sets) {
  for (unsigned seed = 1; seed <= 80; ++seed) {
    std::mt19937 rng(seed);
    const std::size_t n = 1 + rng() % 40;
    std::uniform_int_distribution<int> small(0, 12);  // ties on purpose
    std::vector<double> init(n);
    for (auto& x : init) x = small(rng);
    auto sets = make_sets(init);
    std::vector<double> score = init;
    std::vector<bool> in(n, false);
    priority_list list;
    for (int step = 0; step < 300; ++step) {
      const std::size_t i = rng() % n;
      switch (rng() % 6) {
        case 0:
        case 1:
          list.insert(*sets[i]);
          in[i] = true;
          break;
        case 2:
          list.remove(*sets[i]);
          in[i] = false;
          break;
        case 3:
          list.served(*sets[i]);
          score[i] += priority_list::serve_penalty;
          break;
        case 4:
          if (!in[i]) break;
          list.exhausted(*sets[i]);
          score[i] += priority_list::exhausted_penalty;
          in[i] = false;
          break;
        case 5:
          if (rng() % 8 != 0) break;  // now and then, as a periodic rebalance
          for (std::size_t k = 0; k < n; ++k) {
            score[k] = small(rng);
            sets[k]->priority.score = score[k];
          }
          list.rescored();
          break;
      }
      const auto want = std::size_t(std::count(in.begin(), in.end(), true));
      ASSERT_EQ(list.size(), want) << "seed " << seed << " step " << step;
      double best = std::numeric_limits<double>::infinity();
      for (std::size_t k = 0; k < n; ++k) {
        ASSERT_EQ(listed(*sets[k]), bool(in[k])) << "seed " << seed << " step " << step;
        ASSERT_DOUBLE_EQ(sets[k]->priority.score, score[k]) << "seed " << seed << " step " << step;
        if (in[k]) best = std::min(best, score[k]);
      }
      if (want == 0) {
        ASSERT_EQ(list.best(), nullptr);
      } else {
        ASSERT_NE(list.best(), nullptr);
        ASSERT_DOUBLE_EQ(list.best()->priority.score, best) << "seed " << seed << " step " << step;
      }
    }
    // Drained best first, it gives every listed score in order.
    std::vector<double> expected;
    for (std::size_t k = 0; k < n; ++k) {
      if (in[k]) expected.push_back(score[k]);
    }
    std::sort(expected.begin(), expected.end());
    std::vector<double> drained;
    while (slot_set* s = list.best()) {
      drained.push_back(s->priority.score);
      list.remove(*s);
    }
    ASSERT_EQ(drained, expected) << "seed " << seed;
  }
}

}  // namespace
}  // namespace qorb::test
