// SPDX-License-Identifier: BSL-1.0
// The pool's behaviour replayed on the sans-I/O core: a manual clock, fake
// connections, no sockets, no threads, no sleeps.
#include <gtest/gtest.h>

#include "core_support/harness.hpp"

namespace qorb::test {
namespace {

using namespace std::chrono_literals;
using core::claim_outcome;
using core::op_kind;
using core::slot_state;

constexpr core::connector_traits checked{true, false, true};

// Checks max_slots after every event the harness sends.
void hold_the_cap(core_harness& h) {
  h.after_event = [&h](const core::effects&) {
    ASSERT_LE(h.state().total_slots(), h.config().max_slots);
  };
}

TEST(pool_state, nested_claim_on_a_one_slot_pool_fails_with_all_claims_used) {
  core_harness h(small_policy(1));
  h.backends({"a"});
  h.connect_ok("a");
  auto& first = h.claim();
  ASSERT_EQ(first.outcome, claim_outcome::served);
  auto& second = h.claim();
  EXPECT_EQ(h.state().waiting(), 1u);
  h.advance(999ms);
  EXPECT_FALSE(second.outcome);
  h.advance(1ms);
  EXPECT_EQ(second.outcome, claim_outcome::all_claims_used);
  EXPECT_EQ(second.completions, 1);
}

// Broken promise (a): the second backend's probe slot pushed the pool to 2.
TEST(pool_state, max_slots_holds_when_a_backend_appears_while_the_only_slot_is_claimed) {
  core_harness h(small_policy(1));
  hold_the_cap(h);
  h.backends({"a"});
  h.connect_ok();
  auto& c = h.claim();
  ASSERT_EQ(c.outcome, claim_outcome::served);
  h.backends({"a", "b"});
  EXPECT_EQ(h.state().total_slots(), 1u);
  EXPECT_EQ(h.slots_of("b"), 0u) << "b waits for room";
  h.advance(2 * h.config().rebalance_interval);
  EXPECT_EQ(h.state().total_slots(), 1u);
  h.release(c);
  EXPECT_EQ(h.state().total_slots(), 1u);
}

// Broken promise (b): backends dying and coming back in turn, under claims.
TEST(pool_state, max_slots_holds_while_backends_die_and_return_in_turn) {
  auto p = small_policy(12);
  p.set_config.max_count = 8;
  core_harness h(p);
  hold_the_cap(h);
  h.backends({"a", "b", "c"});
  h.connect_ok();
  std::vector<test_claim*> held;
  for (int round = 0; round < 6; ++round) {
    const std::string victim = std::string(1, char('a' + round % 3));
    for (int i = 0; i < 8; ++i) {
      auto& c = h.claim();
      if (c.outcome == claim_outcome::served) held.push_back(&c);
    }
    // The victim's connections die as they return; its reconnects fail.
    for (auto* c : held) h.release(*c, c->s && c->s->set().target().name == victim);
    held.clear();
    h.connect_fail(victim);
    h.connect_ok();
    h.advance(50ms);
    h.connect_ok();
  }
  EXPECT_LE(h.state().total_slots(), 12u);
}

// Broken promise (c): the pool stayed at 12 slots until the periodic
// rebalance, with claims waiting and room for more.
TEST(pool_state, waiting_claims_grow_the_pool_at_once) {
  auto p = small_policy(32);
  p.set_config.max_count = 8;
  p.claim_timeout = 30s;
  core_harness h(p, acquiring);
  hold_the_cap(h);
  h.backends({"a", "b", "c", "d"});
  h.connect_ok();
  EXPECT_EQ(h.state().total_slots(), 8u) << "spares_wanted 8 over 4 backends";
  for (int i = 0; i < 32; ++i) h.claim();
  // Every claim is demand: 8 acquiring + 24 waiting + 8 spares, capped at 32.
  EXPECT_EQ(h.state().total_slots(), 32u);
  h.connect_ok();
  // Every other on_acquire passes; the rest stay stuck.
  std::vector<core::op_id> acquires;
  for (const auto& op : h.pending()) {
    if (op.kind == op_kind::on_acquire) acquires.push_back(op.id);
  }
  for (std::size_t i = 0; i < acquires.size(); i += 2) h.finish(acquires[i], true);
  EXPECT_EQ(h.state().waiting(), 0u);
}

// Broken promise (d): on_acquire went on running for a cancelled claim and
// its slot stayed claimed until health_check_timeout.
TEST(pool_state, cancelling_a_claim_during_on_acquire_cancels_it_and_recycles_at_once) {
  core_harness h(small_policy(1), acquiring);
  h.backends({"a"});
  h.connect_ok();
  auto& c = h.claim();
  auto* op = h.find(op_kind::on_acquire);
  ASSERT_TRUE(op);
  const auto id = op->id;
  const auto cancels = h.cancels();
  h.cancel(c);
  EXPECT_EQ(c.outcome, claim_outcome::cancelled) << "completes at once";
  EXPECT_EQ(h.cancels(), cancels + 1) << "on_acquire is cancelled";
  EXPECT_TRUE(h.find(op_kind::on_acquire)->cancelled);
  h.finish(id, false);  // it answers the cancellation, giving the connection back
  EXPECT_EQ(h.idle(), 1u) << "recycled at once, not reconnected";
  EXPECT_EQ(h.live_connections(), 1);
  EXPECT_EQ(h.find(op_kind::connect), nullptr);
  h.claim();
  EXPECT_TRUE(h.find(op_kind::on_acquire)) << "the next claim gets it";
}

TEST(pool_state, claim_errors_say_why) {
  core_harness h(small_policy());
  auto& none = h.claim();
  h.advance(1s);
  EXPECT_EQ(none.outcome, claim_outcome::no_backends);
  h.backends({"a"});
  auto& offline = h.claim();
  h.connect_fail();
  h.advance(1s);
  EXPECT_EQ(offline.outcome, claim_outcome::no_backends_online);
  h.terminate();
  EXPECT_EQ(h.claim().outcome, claim_outcome::terminated);
  EXPECT_FALSE(h.terminate()) << "a second terminate says so";
}

TEST(pool_state, waiting_claims_are_served_first_come_first_served) {
  core_harness h(small_policy(1));
  h.backends({"a"});
  h.connect_ok();
  auto& holder = h.claim();
  std::vector<test_claim*> waiting;
  for (int i = 0; i < 5; ++i) waiting.push_back(&h.claim());
  // Each return hands the connection to the oldest waiter.
  h.release(holder);
  for (std::size_t i = 0; i < waiting.size(); ++i) {
    ASSERT_EQ(waiting[i]->outcome, claim_outcome::served) << i;
    for (std::size_t later = i + 1; later < waiting.size(); ++later) {
      EXPECT_FALSE(waiting[later]->outcome) << later << " served before " << i;
    }
    h.release(*waiting[i]);
  }
}

TEST(pool_state, a_failed_on_acquire_tries_again_first_in_line) {
  core_harness h(small_policy(1), acquiring);
  h.backends({"a"});
  h.connect_ok();
  auto& first = h.claim();
  auto& second = h.claim();
  h.finish(h.find(op_kind::on_acquire)->id, false);
  EXPECT_FALSE(first.outcome) << "the claimer tries again, quietly";
  // The slot holds its connection for a backoff, then goes to `first`.
  h.advance(10ms);
  ASSERT_TRUE(h.find(op_kind::on_acquire));
  h.finish(h.find(op_kind::on_acquire)->id, true);
  EXPECT_EQ(first.outcome, claim_outcome::served);
  EXPECT_FALSE(second.outcome);
}

// Hardening: an on_acquire that always throws spun past its claim's
// deadline (89,640 calls in 5 s).
TEST(pool_state, an_always_failing_on_acquire_backs_off_and_the_deadline_holds) {
  core_harness h(small_policy(1), acquiring);
  h.backends({"a"});
  h.connect_ok();
  const auto submitted = h.now();
  auto& c = h.claim();
  int calls = 0;
  for (int step = 0; step < 2000 && !c.outcome; ++step) {
    if (auto* op = h.find(op_kind::on_acquire)) {
      ++calls;
      h.finish(op->id, false);
    } else {
      h.advance(1ms);
    }
  }
  // Hardening: it failed with all_claims_used, which is not why.
  EXPECT_EQ(c.outcome, claim_outcome::acquire_failed);
  EXPECT_EQ(h.state().stats().claim_failures.acquire_failed, 1u);
  EXPECT_EQ(h.state().stats().claim_failures.all_claims_used, 0u);
  EXPECT_LE(c.completed_at, submitted + 1s) << "no later than its deadline";
  EXPECT_LE(calls, 10) << "backoff: 10, 20, 40 ... ms within the 1 s deadline";
}

// Hardening: a server that accepts and then drops every connection got
// 2,488 connects in 3 s.
TEST(pool_state, connections_that_die_young_back_off) {
  core_harness h(small_policy(1), checked);
  h.backends({"a"});
  int connects = 0;
  for (int step = 0; step < 5000 && h.now() < time_point{} + 1003s; ++step) {
    if (h.find(op_kind::connect)) {
      ++connects;
      h.connect_ok();
    } else if (auto* op = h.find(op_kind::is_valid)) {
      h.finish(op->id, false);
    } else if (h.idle() == 1) {
      auto& c = h.claim();
      h.release(c, true);  // the server dropped it: the handle discards it
    } else {
      h.advance(1ms);
    }
  }
  EXPECT_LE(connects, 12) << "10 ms doubling up to 1 s over 3 s";
  EXPECT_GE(connects, 4);
}

TEST(pool_state, a_connection_that_lived_long_is_replaced_at_once) {
  core_harness h(small_policy(1), checked);
  h.backends({"a"});
  h.connect_ok();
  h.advance(2s);
  auto& c = h.claim();
  h.release(c, true);
  EXPECT_TRUE(h.find(op_kind::connect)) << "no backoff after a long life";
}

TEST(pool_state, health_checks_run_on_idle_connections_and_failures_reconnect) {
  auto p = small_policy(1);
  p.set_config.health_interval = 5s;
  core_harness h(p, checked);
  h.backends({"a"});
  h.connect_ok();
  h.advance(4999ms);
  EXPECT_FALSE(h.find(op_kind::is_valid));
  h.advance(1ms);
  ASSERT_TRUE(h.find(op_kind::is_valid));
  h.advance(100ms);  // health_check_timeout
  EXPECT_TRUE(h.find(op_kind::is_valid)->cancelled);
  EXPECT_TRUE(h.find(op_kind::connect) || h.state().total_slots() == 1);
}

TEST(pool_state, a_removed_backend_drains_its_claimed_slots_then_goes) {
  core_harness h(small_policy());
  h.backends({"a"});
  h.connect_ok();
  auto& c = h.claim();
  const int live = h.live_connections();
  h.backends({});
  EXPECT_EQ(h.live_connections(), 1) << "idle ones closed at once; " << live;
  EXPECT_EQ(c.s->state(), slot_state::claimed) << "a claimed slot is never removed";
  h.release(c);
  EXPECT_EQ(h.live_connections(), 0);
  EXPECT_EQ(h.state().total_slots(), 0u);
}

TEST(pool_state, terminate_closes_everything_once_handles_return) {
  core_harness h(small_policy(4), acquiring);
  h.backends({"a", "b"});
  h.connect_ok();
  auto& held = h.claim();
  h.finish(h.find(op_kind::on_acquire)->id, true);
  auto& acquiring_claim = h.claim();
  auto& waiting = h.claim();
  h.terminate();
  EXPECT_EQ(acquiring_claim.outcome, claim_outcome::terminated);
  EXPECT_EQ(waiting.outcome == claim_outcome::terminated || !waiting.outcome, true);
  h.release(held);
  // Everything the core started is cancelled or done; nothing waits for time.
  for (auto& op : h.pending()) EXPECT_TRUE(op.cancelled) << int(op.kind);
  h.finish_all(op_kind::on_acquire, false);  // the cancelled calls answer
  EXPECT_EQ(h.state().ops_running(), 0u);
  EXPECT_FALSE(h.state().next_wakeup());
  EXPECT_EQ(h.live_connections(), 0);
}

TEST(pool_state, claims_spread_over_backends_and_prefer_those_with_idle_slots) {
  auto p = small_policy(4);
  p.spares_wanted = 4;
  core_harness h(p);
  h.backends({"a", "b"});
  h.connect_ok();
  h.connect_ok();
  ASSERT_EQ(h.idle(), 4u);
  std::map<std::string, int> by;
  std::vector<test_claim*> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(&h.claim());
    ++by[held.back()->s->set().target().name];
  }
  EXPECT_EQ(by["a"], 2);
  EXPECT_EQ(by["b"], 2);
}

TEST(pool_state, claim_timeout_forever_is_expressible) {
  auto p = small_policy(1);
  p.claim_timeout = duration::max();
  p.set_config.connect_timeout = std::nullopt;  // the connect answers after 1000 h
  core_harness h(p);
  h.backends({"a"});
  auto& c = h.claim();
  h.advance(1000h);
  EXPECT_FALSE(c.outcome);
  h.connect_ok();
  EXPECT_EQ(c.outcome, claim_outcome::served);
}

}  // namespace
}  // namespace qorb::test
