// SPDX-License-Identifier: BSL-1.0
// core::deadline_heap: schedule, reschedule earlier or later, cancel from
// anywhere; and many random items checked against a sorted reference.
#include <gtest/gtest.h>

#include "core/deadline_heap.hpp"

#include <algorithm>
#include <map>
#include <random>
#include <vector>

namespace qorb::core {
namespace {

using namespace std::chrono_literals;

struct item {
  int id = 0;
  deadline_hook hook;
};
using heap = deadline_heap<item, &item::hook>;

const time_point t0{std::chrono::seconds(100)};

std::vector<item> make_items(int n) {
  std::vector<item> out(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) out[std::size_t(i)].id = i;
  return out;
}

/// Empties the heap top first; the ids in that order.
std::vector<int> drain(heap& h) {
  std::vector<int> out;
  while (item* top = h.top()) {
    out.push_back(top->id);
    h.cancel(*top);
  }
  return out;
}

TEST(deadline_heap, an_empty_heap_has_no_top) {
  heap h;
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(h.size(), 0u);
  EXPECT_EQ(h.top(), nullptr);
}

TEST(deadline_heap, the_top_is_the_earliest) {
  auto items = make_items(4);
  heap h;
  h.schedule(items[0], t0 + 30ms);
  h.schedule(items[1], t0 + 10ms);
  h.schedule(items[2], t0 + 40ms);
  h.schedule(items[3], t0 + 20ms);
  EXPECT_EQ(h.size(), 4u);
  EXPECT_FALSE(h.empty());
  EXPECT_EQ(h.top(), &items[1]);
  EXPECT_EQ(h.top_time(), t0 + 10ms);
  for (auto& i : items) EXPECT_TRUE(i.hook.queued());
  EXPECT_EQ(drain(h), (std::vector<int>{1, 3, 0, 2}));
  for (auto& i : items) EXPECT_FALSE(i.hook.queued());
}

TEST(deadline_heap, rescheduling_moves_an_item_earlier_or_later) {
  auto items = make_items(4);
  heap h;
  for (int i = 0; i < 4; ++i) h.schedule(items[std::size_t(i)], t0 + (i + 1) * 10ms);
  h.schedule(items[3], t0 + 5ms);  // earlier: to the top
  EXPECT_EQ(h.top(), &items[3]);
  EXPECT_EQ(h.top_time(), t0 + 5ms);
  EXPECT_EQ(h.size(), 4u) << "moved, not added";
  h.schedule(items[3], t0 + 100ms);  // later: to the bottom
  EXPECT_EQ(h.top(), &items[0]);
  h.schedule(items[0], t0 + 10ms);  // the same time: stays
  EXPECT_EQ(h.top(), &items[0]);
  h.schedule(items[0], t0 + 25ms);  // later, but not last
  EXPECT_EQ(items[0].hook.at, t0 + 25ms);
  EXPECT_EQ(drain(h), (std::vector<int>{1, 0, 2, 3}));
}

TEST(deadline_heap, rescheduling_at_the_hooks_own_time_moves_it_either_way) {
  // The caller set hook.at first and passes it in: old and new are equal.
  auto items = make_items(4);
  heap h;
  for (int i = 0; i < 4; ++i) h.schedule(items[std::size_t(i)], t0 + (i + 1) * 10ms);
  items[3].hook.at = t0 + 1ms;
  h.schedule(items[3], items[3].hook.at);
  EXPECT_EQ(h.top(), &items[3]) << "earlier";
  items[3].hook.at = t0 + 100ms;
  h.schedule(items[3], items[3].hook.at);
  EXPECT_EQ(h.top(), &items[0]) << "later";
  EXPECT_EQ(drain(h), (std::vector<int>{0, 1, 2, 3}));
}

TEST(deadline_heap, cancel_takes_an_item_out_from_anywhere) {
  auto items = make_items(7);
  heap h;
  for (int i = 0; i < 7; ++i) h.schedule(items[std::size_t(i)], t0 + (i + 1) * 10ms);
  h.cancel(items[4]);  // the middle
  EXPECT_FALSE(items[4].hook.queued());
  EXPECT_EQ(h.size(), 6u);
  h.cancel(items[0]);  // the top
  EXPECT_EQ(h.top(), &items[1]);
  h.cancel(items[6]);  // the last one added
  h.cancel(items[6]);  // not queued: nothing
  EXPECT_EQ(h.size(), 4u);
  EXPECT_EQ(drain(h), (std::vector<int>{1, 2, 3, 5}));
  // A cancelled item can be scheduled again.
  h.schedule(items[4], t0 + 1ms);
  h.schedule(items[0], t0);
  EXPECT_EQ(h.top(), &items[0]);
  EXPECT_EQ(drain(h), (std::vector<int>{0, 4}));
}

TEST(deadline_heap, cancel_from_the_middle_can_move_the_last_item_up) {
  // A heap where the last item, moved into a hole, is earlier than the
  // hole's parent: cancel must sift it up, not only down.
  auto items = make_items(7);
  heap h;
  const std::vector<int> at = {0, 50, 10, 55, 70, 60, 30};  // inserted in order: this layout
  for (int i = 0; i < 7; ++i) h.schedule(items[std::size_t(i)], t0 + at[std::size_t(i)] * 1ms);
  h.cancel(items[3]);  // 55, under 50: the last item (30) fills the hole and belongs above 50
  EXPECT_EQ(items[6].hook.pos, 1u);
  // Left under 50, it would come out after it.
  EXPECT_EQ(drain(h), (std::vector<int>{0, 2, 6, 1, 5, 4}));
}

TEST(deadline_heap, equal_times_all_come_out) {
  auto items = make_items(20);
  heap h;
  for (auto& i : items) h.schedule(i, t0);
  auto order = drain(h);
  std::sort(order.begin(), order.end());
  std::vector<int> all(20);
  for (int i = 0; i < 20; ++i) all[std::size_t(i)] = i;
  EXPECT_EQ(order, all);
}

// Random schedules, reschedules (earlier and later), cancels and pops on
// many items; after every step the heap's top and size match a sorted
// reference, and at the end it drains in the reference's order.
TEST(deadline_heap, matches_a_sorted_reference_with_many_random_items) {
  for (unsigned seed = 1; seed <= 25; ++seed) {
    std::mt19937 rng(seed);
    const int n = 1 + int(rng() % 200);
    auto items = make_items(n);
    std::map<int, time_point> ref;  // queued id -> time
    heap h;
    std::uniform_int_distribution<int> ms(0, 500);  // ties on purpose
    for (int step = 0; step < 1000; ++step) {
      item& it = items[rng() % std::size_t(n)];
      switch (rng() % 5) {
        case 0:
        case 1: {  // schedule, or move (earlier or later)
          const time_point at = t0 + ms(rng) * 1ms;
          h.schedule(it, at);
          ref[it.id] = at;
          break;
        }
        case 2:
          h.cancel(it);
          ref.erase(it.id);
          break;
        case 3:
          if (h.empty()) break;
          ref.erase(h.top()->id);
          h.cancel(*h.top());
          break;
        case 4:
          if (!it.hook.queued()) break;
          // Nudge by a little: the common "a bit earlier / later" move.
          ref[it.id] = it.hook.at + (rng() % 2 ? 1ms : -1ms);
          h.schedule(it, ref[it.id]);
          break;
      }
      ASSERT_EQ(h.size(), ref.size()) << "seed " << seed << " step " << step;
      for (const auto& i : items) {
        if (step % 8 != 0) break;  // every item now and then; the top every step
        ASSERT_EQ(i.hook.queued(), ref.contains(i.id)) << "seed " << seed << " step " << step;
        if (i.hook.queued()) {
          ASSERT_LT(i.hook.pos, h.size());
        }
      }
      if (ref.empty()) {
        ASSERT_EQ(h.top(), nullptr);
        continue;
      }
      time_point earliest = time_point::max();
      for (const auto& [id, at] : ref) earliest = std::min(earliest, at);
      ASSERT_EQ(h.top_time(), earliest) << "seed " << seed << " step " << step;
      ASSERT_EQ(ref.at(h.top()->id), earliest);
    }
    std::vector<std::pair<time_point, int>> sorted;
    for (const auto& [id, at] : ref) sorted.push_back({at, id});
    std::sort(sorted.begin(), sorted.end());
    std::vector<time_point> want, got;
    for (const auto& [at, id] : sorted) want.push_back(at);
    while (item* top = h.top()) {
      got.push_back(top->hook.at);
      EXPECT_EQ(ref.at(top->id), top->hook.at);
      h.cancel(*top);
    }
    ASSERT_EQ(got, want) << "seed " << seed;
  }
}

}  // namespace
}  // namespace qorb::core
