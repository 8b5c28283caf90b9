// SPDX-License-Identifier: BSL-1.0
// core::claim_queue: first come, first served, a failed claim back at the
// front, removal from anywhere, and the deadlines of queued and acquiring
// claims.
#include <gtest/gtest.h>

#include "core/claim_queue.hpp"

#include <vector>

namespace qorb::core {
namespace {

using namespace std::chrono_literals;
using phase = claim_node::phase;

const time_point t0{std::chrono::seconds(100)};

std::vector<claim_node*> order(const claim_queue& q) {
  std::vector<claim_node*> out;
  claim_node* prev = nullptr;
  for (claim_node* c = q.front(); c && out.size() < 100; c = c->in_queue.next) {
    EXPECT_EQ(c->in_queue.prev, prev) << "the links agree both ways";
    out.push_back(c);
    prev = c;
  }
  return out;
}

TEST(claim_queue, an_empty_queue) {
  claim_queue q;
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.front(), nullptr);
  EXPECT_EQ(q.pop_front(), nullptr);
  EXPECT_EQ(q.expired(time_point::max()), nullptr);
  EXPECT_FALSE(q.next_deadline());
}

TEST(claim_queue, is_first_come_first_served) {
  claim_node a, b, c;
  claim_queue q;
  q.push(a, false);
  q.push(b, false);
  q.push(c, false);
  EXPECT_EQ(q.size(), 3u);
  EXPECT_FALSE(q.empty());
  EXPECT_EQ(a.where, phase::queued);
  EXPECT_EQ(order(q), (std::vector<claim_node*>{&a, &b, &c}));
  EXPECT_EQ(q.pop_front(), &a);
  EXPECT_EQ(a.where, phase::fresh);
  EXPECT_EQ(a.in_queue.next, nullptr);
  EXPECT_EQ(q.pop_front(), &b);
  EXPECT_EQ(q.pop_front(), &c);
  EXPECT_EQ(q.pop_front(), nullptr);
  EXPECT_TRUE(q.empty());
  // Usable again once empty: the tail was cleared too.
  q.push(b, false);
  q.push(a, false);
  EXPECT_EQ(order(q), (std::vector<claim_node*>{&b, &a}));
}

TEST(claim_queue, a_claim_pushed_to_the_front_goes_first) {
  claim_node a, b, c, d;
  claim_queue q;
  q.push(a, false);
  q.push(b, false);
  q.push(c, true);
  EXPECT_EQ(order(q), (std::vector<claim_node*>{&c, &a, &b}));
  EXPECT_EQ(c.where, phase::queued);
  q.push(d, false);
  EXPECT_EQ(order(q), (std::vector<claim_node*>{&c, &a, &b, &d}));
  // Into an empty queue, the front is also the back.
  claim_queue e;
  e.push(a, true);
  e.push(b, false);
  e.push(c, true);
  EXPECT_EQ(order(e), (std::vector<claim_node*>{&c, &a, &b}));
  EXPECT_EQ(e.size(), 3u);
}

TEST(claim_queue, claims_leave_from_anywhere) {
  claim_node a, b, c, d;
  claim_queue q;
  for (auto* n : {&a, &b, &c}) q.push(*n, false);
  q.remove(b);  // the middle
  EXPECT_EQ(b.where, phase::fresh);
  EXPECT_EQ(b.in_queue.prev, nullptr);
  EXPECT_EQ(b.in_queue.next, nullptr);
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(order(q), (std::vector<claim_node*>{&a, &c}));
  q.remove(c);  // the tail
  q.push(d, false);
  EXPECT_EQ(order(q), (std::vector<claim_node*>{&a, &d})) << "the tail moved back";
  q.remove(a);  // the head
  EXPECT_EQ(q.front(), &d);
  EXPECT_EQ(d.in_queue.prev, nullptr);
  q.remove(d);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.front(), nullptr);
  q.push(c, true);
  EXPECT_EQ(order(q), (std::vector<claim_node*>{&c}));
}

TEST(claim_queue, deadlines_of_queued_and_acquiring_claims) {
  claim_node a, b, acquiring;
  claim_queue q;
  a.deadline.at = t0 + 30ms;
  b.deadline.at = t0 + 20ms;
  acquiring.deadline.at = t0 + 10ms;
  q.push(a, false);
  q.push(b, false);
  q.watch(a);
  q.watch(b);
  EXPECT_EQ(q.next_deadline(), t0 + 20ms);
  // A claim whose on_acquire runs is not in line, but its deadline holds.
  acquiring.where = phase::acquiring;
  q.watch(acquiring);
  EXPECT_EQ(q.size(), 2u) << "only waiting claims count";
  EXPECT_EQ(q.next_deadline(), t0 + 10ms);
  EXPECT_EQ(q.expired(t0 + 9ms), nullptr);
  EXPECT_EQ(q.expired(t0 + 10ms), &acquiring) << "at its deadline";
  q.unwatch(acquiring);
  EXPECT_EQ(q.expired(t0 + 10ms), nullptr);
  EXPECT_EQ(q.expired(t0 + 1h), &b) << "the earliest first";
  q.remove(b);
  q.unwatch(b);
  EXPECT_EQ(q.expired(t0 + 1h), &a);
  EXPECT_EQ(q.next_deadline(), t0 + 30ms);
  q.unwatch(a);
  q.unwatch(a);  // twice: nothing
  EXPECT_FALSE(q.next_deadline());
  EXPECT_EQ(q.expired(time_point::max()), nullptr);
  EXPECT_EQ(order(q), (std::vector<claim_node*>{&a})) << "unwatching leaves the line alone";
}

TEST(claim_queue, watching_again_moves_a_deadline) {
  claim_node a, b;
  claim_queue q;
  a.deadline.at = t0 + 10ms;
  b.deadline.at = t0 + 20ms;
  q.watch(a);
  q.watch(b);
  a.deadline.at = t0 + 30ms;
  q.watch(a);
  EXPECT_EQ(q.next_deadline(), t0 + 20ms);
  EXPECT_EQ(q.expired(t0 + 25ms), &b);
  b.deadline.at = t0 + 40ms;
  q.watch(b);
  EXPECT_EQ(q.expired(t0 + 30ms), &a);
}

// watch() schedules at c.deadline.at, and c.deadline is the heap's own
// hook: a deadline set earlier before watch() is already stored when the
// heap compares old and new, and must still move up.
TEST(claim_queue, watching_again_moves_a_deadline_earlier) {
  claim_node a, b, c;
  claim_queue q;
  a.deadline.at = t0 + 10ms;
  b.deadline.at = t0 + 20ms;
  c.deadline.at = t0 + 30ms;
  q.watch(a);
  q.watch(b);
  q.watch(c);
  c.deadline.at = t0 + 5ms;
  q.watch(c);
  EXPECT_EQ(q.next_deadline(), t0 + 5ms);
  EXPECT_EQ(q.expired(t0 + 5ms), &c);
}

}  // namespace
}  // namespace qorb::core
