// SPDX-License-Identifier: BSL-1.0
// core::slot_set: counts by state, the idle list, the shrink victim and
// online(), with real slots moved through their states by a fake port.
#include <gtest/gtest.h>

#include "core_support/fake_slot_port.hpp"

#include <algorithm>
#include <memory>
#include <vector>

namespace qorb::test {
namespace {

using namespace std::chrono_literals;
using core::slot_state;
using ev = core::slot_event::kind;

constexpr slot_state every_live_state[] = {
    slot_state::backing_off, slot_state::connecting, slot_state::idle,      slot_state::checking,
    slot_state::acquiring,   slot_state::claimed,    slot_state::recycling, slot_state::cooling};

class slot_set_test : public ::testing::Test {
 protected:
  slot_set_test() {
    port.cfg.min_connection_backoff = 10ms;
    port.cfg.max_connection_backoff = 1s;
    port.cfg.spread = 0ms;
    port.cfg.health_check_timeout = 100ms;
    port.cfg.health_interval = 5s;
  }
  ~slot_set_test() override {
    for (auto& s : slots) s->set().forget(*s);
  }

  core::slot& add(core::slot_set& to) {
    slots.push_back(std::make_unique<core::slot>(to.next_slot_id(), to));
    to.adopt(*slots.back());
    return *slots.back();
  }
  void answer(core::slot& s, bool ok) {
    auto& start = port.starts.back();
    detail::box_ptr box = start.kind == core::op_kind::connect ? (ok ? port.make_box() : nullptr)
                                                               : std::move(start.box);
    s.resume(port, {.what = ok ? ev::op_ok : ev::op_failed, .op = start.id, .box = std::move(box)});
  }
  /// A new slot of `to` in state `st`.
  core::slot& make(slot_state st, core::slot_set& to) {
    core::slot& s = add(to);
    port.hooks = {&port.cfg, st == slot_state::checking,
                  st == slot_state::acquiring || st == slot_state::cooling,
                  st == slot_state::recycling};
    s.open(port);
    if (st == slot_state::connecting) return s;
    answer(s, st != slot_state::backing_off);
    if (st == slot_state::backing_off) return s;
    s.make_idle(port);
    if (st == slot_state::idle) return s;
    if (st == slot_state::checking) {
      port.t = *s.wake_at();
      s.resume(port, {.what = ev::timer});
      return s;
    }
    claims.push_back(std::make_unique<core::claim_node>());
    s.resume(port, {.what = ev::claim, .claim = claims.back().get()});
    if (st == slot_state::cooling) answer(s, false);
    if (st == slot_state::recycling) s.resume(port, {.what = ev::release});
    return s;
  }
  core::slot& make(slot_state st) { return make(st, set); }
  /// Closes a slot and takes it out of its set.
  void drop(core::slot& s) {
    s.close(port, close_reason::resized);
    s.set().forget(s);
    std::erase_if(slots, [&](const auto& p) { return p.get() == &s; });
  }
  std::vector<const core::slot*> idle_list() const {
    std::vector<const core::slot*> out;
    const core::slot* prev = nullptr;
    for (const core::slot* s = set.idle_front(); s && out.size() < 100; s = s->in_idle.next) {
      EXPECT_EQ(s->in_idle.prev, prev) << "the links agree both ways";
      out.push_back(s);
      prev = s;
    }
    return out;
  }

  fake_slot_port port;
  core::slot_set set{7, test_backend("a", 9), 2s};
  std::vector<std::unique_ptr<core::claim_node>> claims;
  std::vector<std::unique_ptr<core::slot>> slots;
};

TEST_F(slot_set_test, a_new_set_is_empty_and_offline) {
  EXPECT_EQ(set.id(), 7u);
  EXPECT_EQ(set.target(), test_backend("a", 9));
  EXPECT_EQ(set.label()->name, "a");
  EXPECT_EQ(set.label()->address, "127.0.0.1:9");
  EXPECT_EQ(set.size(), 0u);
  for (auto st : every_live_state) EXPECT_EQ(set.count(st), 0u);
  EXPECT_FALSE(set.online());
  EXPECT_EQ(set.idle_front(), nullptr);
  EXPECT_EQ(set.shrink_victim(), nullptr);
}

TEST_F(slot_set_test, slot_ids_carry_the_set_id_in_their_upper_bits) {
  EXPECT_EQ(set.next_slot_id(), (std::uint64_t(7) << 48) | 0);
  EXPECT_EQ(set.next_slot_id(), (std::uint64_t(7) << 48) | 1);
  core::slot_set other(8, test_backend("b"), 2s);
  EXPECT_EQ(other.next_slot_id() >> 48, 8u);
}

TEST_F(slot_set_test, counts_follow_every_state) {
  for (auto st : every_live_state) {
    core::slot& s = make(st);
    ASSERT_EQ(s.state(), st) << core::to_string(st);
  }
  EXPECT_EQ(set.size(), 8u);
  for (auto st : every_live_state) EXPECT_EQ(set.count(st), 1u) << core::to_string(st);
  EXPECT_EQ(set.count(slot_state::closed), 0u);
  EXPECT_EQ(set.unclaimed(), 1u);
  EXPECT_EQ(set.claimed(), 2u) << "claimed and acquiring";
  EXPECT_EQ(set.checking(), 3u) << "checking, recycling and cooling";
  EXPECT_EQ(set.connecting(), 2u) << "connecting and backing off";
  set.total_claims = 5;
  const auto c = set.counts();
  EXPECT_EQ(c.connecting, 2u);
  EXPECT_EQ(c.unclaimed, 1u);
  EXPECT_EQ(c.checking, 3u);
  EXPECT_EQ(c.claimed, 2u);
  EXPECT_EQ(c.total_claims, 5u);
  // Closing moves a slot to `closed`; forgetting it takes it out.
  core::slot& claimed = *slots[5];
  ASSERT_EQ(claimed.state(), slot_state::claimed);
  claimed.close(port, close_reason::terminated);
  EXPECT_EQ(set.claimed(), 1u);
  EXPECT_EQ(set.count(slot_state::closed), 1u);
  EXPECT_EQ(set.size(), 8u);
  set.forget(claimed);
  EXPECT_EQ(set.count(slot_state::closed), 0u);
  EXPECT_EQ(set.size(), 7u);
  std::erase_if(slots, [&](const auto& p) { return p.get() == &claimed; });
  while (!slots.empty()) drop(*slots.back());
  EXPECT_EQ(set.size(), 0u);
  for (auto st : every_live_state) EXPECT_EQ(set.count(st), 0u);
}

TEST_F(slot_set_test, stats_show_the_counts_counters_and_recent_failures) {
  make(slot_state::idle);
  make(slot_state::claimed);
  make(slot_state::backing_off);
  set.total_claims = 3;
  set.connect_failures = 4;
  set.check_failures = 2;
  set.failures.add(port.t);
  set.failures.add(port.t);
  auto b = set.stats(port.t);
  EXPECT_EQ(b.address, test_backend("a", 9).address);
  EXPECT_EQ(b.unclaimed, 1u);
  EXPECT_EQ(b.claimed, 1u);
  EXPECT_EQ(b.connecting, 1u);
  EXPECT_EQ(b.checking, 0u);
  EXPECT_EQ(b.total_claims, 3u);
  EXPECT_EQ(b.connect_failures, 4u);
  EXPECT_EQ(b.check_failures, 2u);
  EXPECT_EQ(b.recent_failures, 2u);
  EXPECT_TRUE(b.online);
  EXPECT_FALSE(b.removed);
  set.removed = true;
  EXPECT_TRUE(set.stats(port.t + 1h).removed);
  EXPECT_EQ(set.stats(port.t + 1h).recent_failures, 0u) << "out of the window";
}

TEST_F(slot_set_test, online_means_some_slot_holds_a_connection) {
  make(slot_state::connecting);
  make(slot_state::backing_off);
  EXPECT_FALSE(set.online()) << "connecting slots hold nothing";
  {
    // Replacing a connection that ended normally: still online.
    core::slot_set one(1, test_backend("b"), 2s);
    core::slot& r = make(slot_state::checking, one);  // 5 s up: old enough
    auto& check = port.starts.back();
    r.resume(port, {.what = ev::op_ended, .op = check.id, .box = std::move(check.box)});
    ASSERT_EQ(r.state(), slot_state::replacing);
    EXPECT_TRUE(one.online());
    EXPECT_EQ(one.connecting(), 1u);
    drop(r);
    EXPECT_FALSE(one.online());
  }
  for (auto st : every_live_state) {
    core::slot_set one(1, test_backend("b"), 2s);
    make(st, one);
    const bool holds = st != slot_state::connecting && st != slot_state::backing_off;
    EXPECT_EQ(one.online(), holds) << core::to_string(st);
    while (!slots.empty() && &slots.back()->set() == &one) drop(*slots.back());
  }
  core::slot& s = make(slot_state::idle);
  EXPECT_TRUE(set.online());
  drop(s);
  EXPECT_FALSE(set.online());
}

TEST_F(slot_set_test, the_idle_list_is_last_in_first_out) {
  // With only idle and claimed slots, shrink_victim() is the list's tail:
  // the idle slot unused the longest.
  core::slot& a = make(slot_state::idle);
  core::slot& b = make(slot_state::idle);
  core::slot& c = make(slot_state::idle);
  EXPECT_EQ(idle_list(), (std::vector<const core::slot*>{&c, &b, &a}));
  EXPECT_EQ(set.idle_front(), &c) << "the most recently used first";
  EXPECT_EQ(set.shrink_victim(), &a);
  // Claiming from the middle unlinks it there.
  core::claim_node claim;
  b.resume(port, {.what = ev::claim, .claim = &claim});
  ASSERT_EQ(b.state(), slot_state::claimed);
  EXPECT_EQ(idle_list(), (std::vector<const core::slot*>{&c, &a}));
  EXPECT_EQ(b.in_idle.prev, nullptr);
  EXPECT_EQ(b.in_idle.next, nullptr);
  EXPECT_EQ(set.shrink_victim(), &a);
  // A returned slot goes to the front.
  ASSERT_EQ(b.resume(port, {.what = ev::release}).then, core::slot_result::next::ready);
  b.make_idle(port);
  EXPECT_EQ(idle_list(), (std::vector<const core::slot*>{&b, &c, &a}));
  // The tail leaves: the one before it is the tail now.
  core::claim_node other;
  a.resume(port, {.what = ev::claim, .claim = &other});
  EXPECT_EQ(idle_list(), (std::vector<const core::slot*>{&b, &c}));
  EXPECT_EQ(set.shrink_victim(), &c);
  // The head leaves.
  b.resume(port, {.what = ev::claim, .claim = &claim});
  EXPECT_EQ(idle_list(), (std::vector<const core::slot*>{&c}));
  EXPECT_EQ(set.shrink_victim(), &c);
  // The last one leaves (closed): the list is empty at both ends.
  c.close(port, close_reason::resized);
  EXPECT_EQ(set.idle_front(), nullptr);
  EXPECT_EQ(set.unclaimed(), 0u);
  drop(c);
  EXPECT_EQ(set.shrink_victim(), nullptr) << "only claimed slots";
  // Back in, one at a time: head and tail are the same slot, then not.
  ASSERT_EQ(a.resume(port, {.what = ev::release}).then, core::slot_result::next::ready);
  a.make_idle(port);
  EXPECT_EQ(set.shrink_victim(), &a);
  ASSERT_EQ(b.resume(port, {.what = ev::release}).then, core::slot_result::next::ready);
  b.make_idle(port);
  EXPECT_EQ(idle_list(), (std::vector<const core::slot*>{&b, &a}));
  EXPECT_EQ(set.shrink_victim(), &a);
}

TEST_F(slot_set_test, shrink_victim_prefers_unconnected_slots_then_the_oldest_idle_one) {
  make(slot_state::claimed);
  core::slot& old_idle = make(slot_state::idle);
  make(slot_state::checking);
  core::slot& new_idle = make(slot_state::idle);
  core::slot& connecting = make(slot_state::connecting);
  make(slot_state::acquiring);
  EXPECT_EQ(set.shrink_victim(), &connecting) << "not connected goes first";
  drop(connecting);
  core::slot& waiting = make(slot_state::backing_off);
  EXPECT_EQ(set.shrink_victim(), &waiting) << "backing off counts as not connected";
  drop(waiting);
  EXPECT_EQ(set.shrink_victim(), &old_idle) << "then the idle one unused the longest";
  drop(old_idle);
  EXPECT_EQ(set.shrink_victim(), &new_idle);
  drop(new_idle);
  EXPECT_EQ(set.shrink_victim(), nullptr) << "busy slots settle first";
  make(slot_state::recycling);
  make(slot_state::cooling);
  EXPECT_EQ(set.shrink_victim(), nullptr);
  EXPECT_EQ(set.size(), 5u);
}

}  // namespace
}  // namespace qorb::test
