// SPDX-License-Identifier: BSL-1.0
// core::slot on its own: every state and event of the machine documented
// at the top of src/core/slot.cpp, driven through a fake slot_port that
// records what the slot asks of the pool. Time is the port's field.
#include <gtest/gtest.h>

#include "core_support/fake_slot_port.hpp"

#include <optional>
#include <string>

namespace qorb::test {
namespace {

using namespace std::chrono_literals;
using core::op_id;
using core::op_kind;
using core::slot_result;
using core::slot_state;
using core::verdict;
using ev = core::slot_event::kind;
using next = slot_result::next;

class slot_test : public ::testing::Test {
 protected:
  slot_test() {
    port.cfg.min_connection_backoff = 10ms;
    port.cfg.max_connection_backoff = 1s;
    port.cfg.spread = 0ms;
    port.cfg.health_check_timeout = 100ms;
    port.cfg.health_interval = 5s;
    port.cfg.connect_timeout = std::nullopt;
    set.adopt(s);
  }
  ~slot_test() override { set.forget(s); }

  slot_result answer(op_id id, bool ok, detail::box_ptr box, std::string why = "failed (test)") {
    return s.resume(port, {.what = ok ? ev::op_ok : ev::op_failed,
                           .op = id,
                           .box = std::move(box),
                           .why = ok ? std::string() : std::move(why)});
  }
  /// Answers the latest connect: a fresh connection, or a failure.
  slot_result connect_answer(bool ok) {
    return answer(port.last_op(), ok, ok ? port.make_box() : nullptr, "refused");
  }
  /// Answers the latest check, giving back the connection it took.
  slot_result check_answer(bool ok) { return answer(port.last_op(), ok, port.take_box(), "bad"); }
  /// Answers the latest check: the server ended the connection normally.
  slot_result ended_answer() {
    return s.resume(
        port,
        {.what = ev::op_ended, .op = port.last_op(), .box = port.take_box(), .why = "idle close"});
  }
  slot_result timer() { return s.resume(port, {.what = ev::timer}); }
  /// Moves the clock to the slot's wake time and fires its timer.
  slot_result fire() {
    EXPECT_TRUE(s.wake_at()) << "no wake time to fire";
    if (s.wake_at()) port.t = *s.wake_at();
    return timer();
  }
  slot_result claim(core::claim_node* by) {
    return s.resume(port, {.what = ev::claim, .claim = by});
  }
  slot_result event(ev what, std::string why = {}) {
    return s.resume(port, {.what = what, .why = std::move(why)});
  }
  /// The watch running now (the latest one started), or 0.
  op_id watch_op() const {
    for (auto it = port.starts.rbegin(); it != port.starts.rend(); ++it) {
      if (it->kind == op_kind::watch) return it->id;
    }
    return 0;
  }
  /// The watch ends: the connection is lost (a watch that returns says so
  /// as well: `ok`).
  slot_result lose(std::string why = "reset by peer", bool ok = false) {
    return answer(watch_op(), ok, nullptr, std::move(why));
  }
  /// Connects and makes the slot idle: its connection's life starts now.
  void up() {
    s.open(port);
    const auto r = connect_answer(true);
    ASSERT_EQ(r.then, next::ready);
    s.make_idle(port);
    ASSERT_EQ(s.state(), slot_state::idle);
  }
  /// Counts the ops started since `before` of `kind`.
  std::size_t started(op_kind kind, std::size_t before = 0) const {
    std::size_t n = 0;
    for (std::size_t i = before; i < port.starts.size(); ++i) n += port.starts[i].kind == kind;
    return n;
  }

  fake_slot_port port;
  core::slot_set set{0, test_backend(), 2s};
  core::slot s{set.next_slot_id(), set};
  core::claim_node c, other;
};

// ----- connecting ---------------------------------------------------------------

TEST_F(slot_test, open_starts_a_connect_without_a_box_or_a_deadline) {
  s.open(port);
  EXPECT_EQ(s.state(), slot_state::connecting);
  ASSERT_EQ(port.starts.size(), 1u);
  EXPECT_EQ(port.starts[0].kind, op_kind::connect);
  EXPECT_EQ(port.starts[0].s, &s);
  EXPECT_EQ(port.starts[0].box, nullptr);
  EXPECT_TRUE(s.running());
  EXPECT_FALSE(s.wake_at()) << "no connect_timeout: no deadline";
  EXPECT_EQ(set.count(slot_state::connecting), 1u);
  EXPECT_EQ(timer().then, next::nothing);
  EXPECT_EQ(s.state(), slot_state::connecting) << "a timer without a wake time does nothing";
}

TEST_F(slot_test, a_connect_that_succeeds_makes_the_slot_ready_and_the_pool_makes_it_idle) {
  s.open(port);
  const auto r = connect_answer(true);
  EXPECT_EQ(r.then, next::ready);
  EXPECT_EQ(r.retry, nullptr);
  EXPECT_EQ(box_id(s.connection()), 1);
  EXPECT_FALSE(s.running());
  ASSERT_EQ(port.ends.size(), 1u);
  EXPECT_EQ(port.ends[0].kind, op_kind::connect);
  EXPECT_EQ(port.ends[0].v, verdict::ok);
  EXPECT_EQ(s.state(), slot_state::ready) << "the pool decides what comes next";
  EXPECT_EQ(set.count(slot_state::connecting), 1u)
      << "counted where it came from until the pool decides (within the event)";
  EXPECT_EQ(set.count(slot_state::ready), 0u);
  s.make_idle(port);
  EXPECT_EQ(s.state(), slot_state::idle);
  EXPECT_EQ(set.unclaimed(), 1u);
  EXPECT_EQ(set.idle_front(), &s);
  EXPECT_FALSE(s.wake_at()) << "no is_valid: no health check";
  EXPECT_EQ(port.live, 1);
  EXPECT_TRUE(port.closed_boxes.empty());
}

TEST_F(slot_test, a_connect_that_returns_no_connection_is_a_failure) {
  s.open(port);
  EXPECT_EQ(answer(port.last_op(), true, nullptr).then, next::nothing);
  EXPECT_EQ(s.state(), slot_state::backing_off);
  ASSERT_EQ(port.ends.size(), 1u);
  EXPECT_EQ(port.ends[0].v, verdict::failed);
  EXPECT_EQ(port.ends[0].why, "no connection returned");
  EXPECT_EQ(port.ends[0].retry, 10ms);
}

TEST_F(slot_test, failed_connects_back_off_doubling_up_to_max_connection_backoff) {
  s.open(port);
  duration expected = 10ms;
  for (int i = 0; i < 8; ++i) {
    const auto arms = port.arms;
    EXPECT_EQ(connect_answer(false).then, next::nothing);
    ASSERT_EQ(s.state(), slot_state::backing_off) << i;
    EXPECT_FALSE(s.running());
    const auto& end = port.ends.back();
    EXPECT_EQ(end.kind, op_kind::connect);
    EXPECT_EQ(end.v, verdict::failed);
    EXPECT_EQ(end.why, "refused");
    EXPECT_EQ(end.retry, std::min<duration>(expected, 1s)) << i;
    ASSERT_TRUE(s.wake_at());
    EXPECT_EQ(*s.wake_at(), port.t + end.retry);
    EXPECT_EQ(port.arms, arms + 1) << "the pool is told of the wake time";
    // Not before its time.
    const auto starts = port.starts.size();
    port.t = *s.wake_at() - 1ns;
    timer();
    EXPECT_EQ(s.state(), slot_state::backing_off);
    EXPECT_EQ(port.starts.size(), starts);
    fire();
    ASSERT_EQ(s.state(), slot_state::connecting);
    EXPECT_EQ(started(op_kind::connect, starts), 1u);
    expected *= 2;
  }
  EXPECT_EQ(s.retries().failures(), 8u);
  EXPECT_EQ(port.ends.back().retry, 1s) << "10, 20, ... 640 ms, then the cap";
}

TEST_F(slot_test, backoffs_and_health_checks_add_a_random_share_of_spread) {
  port.cfg.spread = 100ms;
  port.random = 0.25;
  port.hooks.has_is_valid = true;
  s.open(port);
  connect_answer(false);
  EXPECT_EQ(port.ends.back().retry, 35ms);
  EXPECT_EQ(*s.wake_at(), port.t + 35ms);
  fire();
  connect_answer(true);
  s.make_idle(port);
  ASSERT_TRUE(s.wake_at());
  EXPECT_EQ(*s.wake_at(), port.t + 5s + 25ms);
}

TEST_F(slot_test, a_connect_timeout_abandons_the_connect_and_backs_off) {
  port.cfg.connect_timeout = 50ms;
  s.open(port);
  const op_id op = port.last_op();
  ASSERT_TRUE(s.wake_at());
  EXPECT_EQ(*s.wake_at(), port.t + 50ms);
  port.t += 49ms;
  timer();
  EXPECT_EQ(s.state(), slot_state::connecting);
  EXPECT_TRUE(port.cancels.empty());
  fire();
  ASSERT_EQ(port.cancels.size(), 1u);
  EXPECT_EQ(port.cancels[0].id, op);
  EXPECT_TRUE(port.cancels[0].abandon);
  ASSERT_EQ(port.ends.size(), 1u);
  EXPECT_EQ(port.ends[0].kind, op_kind::connect);
  EXPECT_EQ(port.ends[0].v, verdict::timed_out);
  EXPECT_EQ(port.ends[0].retry, 10ms);
  EXPECT_EQ(s.state(), slot_state::backing_off);
  EXPECT_FALSE(s.running());
  EXPECT_EQ(*s.wake_at(), port.t + 10ms);
  // The abandoned connect answers late: its connection is closed.
  EXPECT_EQ(answer(op, true, port.make_box()).then, next::nothing);
  EXPECT_EQ(port.closed_boxes.size(), 1u);
  EXPECT_EQ(s.connection(), nullptr);
  EXPECT_EQ(s.state(), slot_state::backing_off);
  // The next attempt has its own deadline.
  fire();
  EXPECT_EQ(s.state(), slot_state::connecting);
  EXPECT_NE(port.last_op(), op);
  EXPECT_EQ(*s.wake_at(), port.t + 50ms);
}

TEST_F(slot_test, a_connect_that_answers_in_time_drops_its_deadline) {
  port.cfg.connect_timeout = 50ms;
  s.open(port);
  connect_answer(true);
  EXPECT_FALSE(s.wake_at());
  s.make_idle(port);
  port.t += 1h;
  timer();
  EXPECT_EQ(s.state(), slot_state::idle);
  EXPECT_TRUE(port.cancels.empty());
  EXPECT_EQ(port.ends.size(), 1u);
}

TEST_F(slot_test, a_successful_connect_alone_does_not_end_the_backoff_streak) {
  s.open(port);
  for (int i = 0; i < 3; ++i) {
    connect_answer(false);
    fire();
  }
  connect_answer(true);
  EXPECT_EQ(s.retries().failures(), 3u) << "the streak ends once a connection stays up";
}

// ----- health checks ------------------------------------------------------------

TEST_F(slot_test, a_health_check_is_due_health_interval_after_the_slot_became_idle) {
  port.hooks.has_is_valid = true;
  up();
  const int conn = box_id(s.connection());
  ASSERT_TRUE(s.wake_at());
  EXPECT_EQ(*s.wake_at(), port.t + 5s);
  port.t += 4999ms;
  timer();
  EXPECT_EQ(s.state(), slot_state::idle) << "not due yet";
  EXPECT_EQ(started(op_kind::is_valid), 0u);
  fire();
  EXPECT_EQ(s.state(), slot_state::checking);
  ASSERT_EQ(started(op_kind::is_valid), 1u);
  EXPECT_EQ(box_id(port.starts.back().box.get()), conn) << "the check takes the connection";
  EXPECT_EQ(s.connection(), nullptr);
  EXPECT_EQ(*s.wake_at(), port.t + 100ms) << "health_check_timeout";
  EXPECT_EQ(set.checking(), 1u);
  EXPECT_EQ(set.unclaimed(), 0u);
  EXPECT_EQ(check_answer(true).then, next::ready);
  EXPECT_EQ(port.ends.back().kind, op_kind::is_valid);
  EXPECT_EQ(port.ends.back().v, verdict::ok);
  EXPECT_EQ(box_id(s.connection()), conn);
  s.make_idle(port);
  EXPECT_EQ(*s.wake_at(), port.t + 5s) << "and again after each check it passed";
  EXPECT_TRUE(port.closed_boxes.empty());
}

TEST_F(slot_test, no_health_checks_without_is_valid) {
  up();
  EXPECT_FALSE(s.wake_at());
}

TEST_F(slot_test, no_health_checks_when_health_interval_is_nullopt) {
  port.hooks.has_is_valid = true;
  port.cfg.health_interval = std::nullopt;
  up();
  EXPECT_FALSE(s.wake_at());
  port.t += 1000h;
  timer();
  EXPECT_EQ(s.state(), slot_state::idle);
}

TEST_F(slot_test, a_failed_health_check_on_an_old_connection_reconnects_at_once) {
  port.hooks.has_is_valid = true;
  up();
  fire();  // 5 s after connecting: longer than max_connection_backoff
  const auto before = port.starts.size();
  EXPECT_EQ(check_answer(false).then, next::nothing);
  EXPECT_EQ(port.closed_boxes.size(), 1u) << "the connection is closed";
  EXPECT_EQ(port.ends.back().kind, op_kind::is_valid);
  EXPECT_EQ(port.ends.back().v, verdict::failed);
  EXPECT_EQ(port.ends.back().why, "bad");
  EXPECT_EQ(s.state(), slot_state::connecting);
  EXPECT_EQ(started(op_kind::connect, before), 1u);
  EXPECT_EQ(s.retries().failures(), 0u);
}

TEST_F(slot_test, a_failed_health_check_on_a_young_connection_backs_off) {
  port.hooks.has_is_valid = true;
  port.cfg.health_interval = 200ms;
  up();
  fire();
  const auto before = port.starts.size();
  check_answer(false);
  EXPECT_EQ(port.closed_boxes.size(), 1u);
  EXPECT_EQ(s.state(), slot_state::backing_off);
  EXPECT_EQ(started(op_kind::connect, before), 0u);
  EXPECT_EQ(*s.wake_at(), port.t + 10ms);
  EXPECT_EQ(s.retries().failures(), 1u);
}

TEST_F(slot_test, a_failed_health_check_that_lost_the_connection_closes_nothing) {
  port.hooks.has_is_valid = true;
  up();
  fire();
  const auto lost = port.take_box();  // the check kept it
  answer(port.last_op(), false, nullptr);
  EXPECT_TRUE(port.closed_boxes.empty());
  EXPECT_EQ(s.connection(), nullptr);
  EXPECT_EQ(s.state(), slot_state::connecting);
}

TEST_F(slot_test, a_health_check_that_times_out_is_abandoned_and_its_late_answer_closed) {
  port.hooks.has_is_valid = true;
  up();
  fire();
  const op_id op = port.last_op();
  auto box = port.take_box();
  fire();  // health_check_timeout
  ASSERT_EQ(port.cancels.size(), 1u);
  EXPECT_EQ(port.cancels[0].id, op);
  EXPECT_TRUE(port.cancels[0].abandon);
  EXPECT_EQ(port.ends.back().kind, op_kind::is_valid);
  EXPECT_EQ(port.ends.back().v, verdict::timed_out);
  EXPECT_EQ(s.state(), slot_state::connecting) << "old connection: at once";
  const auto before = port.starts.size();
  EXPECT_EQ(answer(op, true, std::move(box)).then, next::nothing);
  EXPECT_EQ(port.closed_boxes.size(), 1u);
  EXPECT_EQ(s.state(), slot_state::connecting);
  EXPECT_EQ(port.starts.size(), before);
  EXPECT_EQ(s.connection(), nullptr);
}

// ----- claims -------------------------------------------------------------------

TEST_F(slot_test, a_claim_without_on_acquire_hands_the_connection_over_at_once) {
  port.hooks.has_is_valid = true;
  up();
  ASSERT_TRUE(s.wake_at());
  const auto r = claim(&c);
  EXPECT_EQ(r.then, next::handed_over);
  EXPECT_EQ(s.state(), slot_state::claimed);
  EXPECT_EQ(s.claim(), &c);
  EXPECT_EQ(box_id(s.connection()), 1);
  // The idle health check's timer may stay armed (a claim does not pay to
  // disarm it), but it runs no check while claimed.
  const std::size_t starts = port.starts.size();
  port.t += std::chrono::hours(1);
  timer();
  EXPECT_EQ(port.starts.size(), starts) << "no health check while claimed";
  EXPECT_EQ(s.state(), slot_state::claimed);
  EXPECT_EQ(box_id(s.connection()), 1);
  EXPECT_FALSE(s.wake_at()) << "fired, not armed again";
  EXPECT_EQ(set.claimed(), 1u);
  EXPECT_EQ(set.unclaimed(), 0u);
  EXPECT_EQ(set.idle_front(), nullptr);
}

TEST_F(slot_test, a_health_check_armed_before_a_claim_never_cuts_the_reconnect_after_it) {
  port.hooks.has_is_valid = true;
  port.cfg.connect_timeout = std::nullopt;
  up();
  const auto health_due = *s.wake_at();
  claim(&c);
  // Claimed past the health check's time and past max_connection_backoff:
  // a discard reconnects at once, with no bound of its own.
  port.t = health_due + std::chrono::hours(1);
  event(ev::discard, "broken");
  ASSERT_EQ(s.state(), slot_state::connecting);
  const std::size_t cancels = port.cancels.size();
  timer();
  EXPECT_EQ(s.state(), slot_state::connecting) << "the old health check's time is no deadline";
  EXPECT_EQ(port.cancels.size(), cancels);
}

TEST_F(slot_test, a_slot_that_is_neither_idle_nor_ready_refuses_a_claim) {
  s.open(port);
  EXPECT_EQ(claim(&c).then, next::nothing);
  EXPECT_EQ(s.claim(), nullptr);
  EXPECT_EQ(s.state(), slot_state::connecting);
  connect_answer(true);
  s.make_idle(port);
  claim(&c);
  EXPECT_EQ(claim(&other).then, next::nothing) << "claimed already";
  EXPECT_EQ(s.claim(), &c);
}

TEST_F(slot_test, a_ready_slot_goes_to_a_claim_within_the_event) {
  s.open(port);
  ASSERT_EQ(connect_answer(true).then, next::ready);
  EXPECT_EQ(claim(&c).then, next::handed_over) << "just connected, for a waiting claim";
  EXPECT_EQ(s.state(), slot_state::claimed);
}

TEST_F(slot_test, a_claim_with_on_acquire_runs_it_then_hands_over) {
  port.hooks.has_on_acquire = true;
  up();
  const auto before = port.starts.size();
  EXPECT_EQ(claim(&c).then, next::nothing);
  EXPECT_EQ(s.state(), slot_state::acquiring);
  ASSERT_EQ(started(op_kind::on_acquire, before), 1u);
  EXPECT_EQ(box_id(port.starts.back().box.get()), 1);
  EXPECT_EQ(s.claim(), &c);
  EXPECT_EQ(*s.wake_at(), port.t + 100ms);
  EXPECT_EQ(set.claimed(), 1u) << "acquiring counts as claimed";
  const auto r = check_answer(true);
  EXPECT_EQ(r.then, next::handed_over);
  EXPECT_EQ(r.retry, nullptr);
  EXPECT_EQ(s.state(), slot_state::claimed);
  EXPECT_EQ(box_id(s.connection()), 1);
  EXPECT_EQ(port.ends.back().kind, op_kind::on_acquire);
  EXPECT_EQ(port.ends.back().v, verdict::ok);
  EXPECT_FALSE(s.wake_at());
}

TEST_F(slot_test, a_failed_on_acquire_on_a_young_connection_retries_the_claim_and_cools) {
  port.hooks.has_on_acquire = true;
  up();
  port.t += 100ms;
  claim(&c);
  const auto r = check_answer(false);
  EXPECT_EQ(r.retry, &c) << "the claim tries again";
  EXPECT_EQ(r.then, next::nothing);
  EXPECT_EQ(s.claim(), nullptr);
  EXPECT_EQ(port.ends.back().kind, op_kind::on_acquire);
  EXPECT_EQ(port.ends.back().v, verdict::failed);
  EXPECT_EQ(port.ends.back().why, "bad");
  EXPECT_EQ(port.ends.back().retry, 10ms);
  // Without on_recycle it cools at once, holding its connection.
  EXPECT_EQ(s.state(), slot_state::cooling);
  EXPECT_EQ(box_id(s.connection()), 1);
  EXPECT_EQ(*s.wake_at(), port.t + 10ms);
  EXPECT_EQ(set.checking(), 1u);
  EXPECT_TRUE(set.online());
  EXPECT_EQ(claim(&other).then, next::nothing) << "cooling: offered to no claim";
  EXPECT_EQ(s.claim(), nullptr);
  port.t += 9ms;
  EXPECT_EQ(timer().then, next::nothing);
  EXPECT_EQ(fire().then, next::ready);
  s.make_idle(port);
  EXPECT_EQ(s.state(), slot_state::idle);
  EXPECT_TRUE(port.closed_boxes.empty());
  EXPECT_EQ(s.retries().failures(), 1u);
}

TEST_F(slot_test, a_failed_on_acquire_recycles_first_and_cools_for_what_is_left) {
  port.hooks.has_on_acquire = true;
  port.hooks.has_on_recycle = true;
  up();
  claim(&c);
  const time_point failed_at = port.t;
  const auto before = port.starts.size();
  EXPECT_EQ(check_answer(false).retry, &c);
  EXPECT_EQ(s.state(), slot_state::recycling);
  EXPECT_EQ(started(op_kind::on_recycle, before), 1u);
  port.t += 4ms;
  EXPECT_EQ(check_answer(true).then, next::nothing);
  EXPECT_EQ(s.state(), slot_state::cooling);
  EXPECT_EQ(*s.wake_at(), failed_at + 10ms) << "the hold counts from the failure";
  EXPECT_EQ(fire().then, next::ready);
}

TEST_F(slot_test, a_recycle_that_ends_after_the_hold_is_ready_at_once) {
  port.hooks.has_on_acquire = true;
  port.hooks.has_on_recycle = true;
  up();
  claim(&c);
  check_answer(false);
  port.t += 50ms;
  EXPECT_EQ(check_answer(true).then, next::ready);
  EXPECT_NE(s.state(), slot_state::cooling);
}

TEST_F(slot_test, a_failed_on_acquire_on_an_old_connection_is_ready_again_at_once) {
  port.hooks.has_on_acquire = true;
  up();
  port.t += 2s;
  claim(&c);
  const auto r = check_answer(false);
  EXPECT_EQ(r.retry, &c);
  EXPECT_EQ(r.then, next::ready);
  EXPECT_EQ(port.ends.back().retry, duration::zero());
  EXPECT_EQ(s.retries().failures(), 0u);
  s.make_idle(port);
  EXPECT_EQ(s.state(), slot_state::idle);
}

TEST_F(slot_test, on_acquire_failures_back_off_counting_from_the_previous_failure) {
  port.hooks.has_on_acquire = true;
  up();
  port.t += 2s;
  claim(&c);
  ASSERT_EQ(check_answer(false).then, next::ready);  // old: no hold, streak reset
  s.make_idle(port);
  port.t += 500ms;  // 2.5 s after connecting, 0.5 s after the last failure
  claim(&c);
  check_answer(false);
  EXPECT_EQ(port.ends.back().retry, 10ms);
  EXPECT_EQ(s.state(), slot_state::cooling);
}

TEST_F(slot_test, an_on_acquire_that_times_out_retries_the_claim_and_replaces_the_connection) {
  port.hooks.has_on_acquire = true;
  up();
  claim(&c);
  const op_id op = port.last_op();
  auto box = port.take_box();
  const auto r = fire();
  EXPECT_EQ(r.retry, &c);
  EXPECT_EQ(r.then, next::nothing);
  ASSERT_EQ(port.cancels.size(), 1u);
  EXPECT_EQ(port.cancels[0].id, op);
  EXPECT_TRUE(port.cancels[0].abandon);
  EXPECT_EQ(port.ends.back().kind, op_kind::on_acquire);
  EXPECT_EQ(port.ends.back().v, verdict::timed_out);
  // 100 ms after connecting: young, so it backs off.
  EXPECT_EQ(s.state(), slot_state::backing_off);
  EXPECT_EQ(*s.wake_at(), port.t + 10ms);
  EXPECT_EQ(s.connection(), nullptr);
  EXPECT_EQ(s.claim(), nullptr);
  EXPECT_EQ(answer(op, true, std::move(box)).then, next::nothing);
  EXPECT_EQ(port.closed_boxes.size(), 1u) << "the late answer is closed";
  EXPECT_EQ(s.state(), slot_state::backing_off);
}

TEST_F(slot_test, an_on_acquire_timeout_on_an_old_connection_reconnects_at_once) {
  port.hooks.has_on_acquire = true;
  up();
  port.t += 2s;
  claim(&c);
  const auto before = port.starts.size();
  EXPECT_EQ(fire().retry, &c);
  EXPECT_EQ(s.state(), slot_state::connecting);
  EXPECT_EQ(started(op_kind::connect, before), 1u);
}

TEST_F(slot_test, an_on_acquire_failure_without_the_connection_replaces_it) {
  port.hooks.has_on_acquire = true;
  up();
  claim(&c);
  auto box = port.take_box();  // the operation lost it
  const auto r = answer(port.last_op(), false, nullptr);
  EXPECT_EQ(r.retry, &c);
  EXPECT_EQ(s.state(), slot_state::backing_off);
  EXPECT_EQ(s.connection(), nullptr);
}

TEST_F(slot_test, a_cancelled_claim_keeps_on_acquire_running_and_recycles_what_it_returns) {
  port.hooks.has_on_acquire = true;
  up();
  claim(&c);
  const op_id op = port.last_op();
  EXPECT_EQ(event(ev::cancel).then, next::nothing);
  ASSERT_EQ(port.cancels.size(), 1u);
  EXPECT_EQ(port.cancels[0].id, op);
  EXPECT_FALSE(port.cancels[0].abandon) << "the slot still waits for the answer";
  EXPECT_EQ(s.claim(), nullptr);
  EXPECT_EQ(s.state(), slot_state::abandoned) << "on_acquire runs for a claim that went away";
  EXPECT_EQ(set.claimed(), 1u) << "not free before on_acquire answers";
  EXPECT_TRUE(s.running());
  EXPECT_EQ(event(ev::cancel).then, next::nothing);
  EXPECT_EQ(port.cancels.size(), 1u) << "a second cancel does nothing";
  // The operation answers the cancellation, giving the connection back.
  const auto r = check_answer(false);
  EXPECT_EQ(r.retry, nullptr) << "no claim to retry";
  EXPECT_EQ(r.then, next::ready) << "recycled, not lost";
  EXPECT_EQ(port.ends.back().kind, op_kind::on_acquire);
  EXPECT_EQ(port.ends.back().v, verdict::cancelled);
  EXPECT_EQ(box_id(s.connection()), 1);
  EXPECT_TRUE(port.closed_boxes.empty());
  EXPECT_EQ(s.retries().failures(), 0u) << "no fault of the backend's";
  s.make_idle(port);
  EXPECT_EQ(s.state(), slot_state::idle);
}

TEST_F(slot_test, a_cancelled_claims_on_acquire_that_succeeds_still_recycles) {
  port.hooks.has_on_acquire = true;
  port.hooks.has_on_recycle = true;
  up();
  claim(&c);
  event(ev::cancel);
  const auto before = port.starts.size();
  const auto r = check_answer(true);
  EXPECT_EQ(r.then, next::nothing);
  EXPECT_EQ(r.retry, nullptr);
  EXPECT_EQ(s.state(), slot_state::recycling);
  EXPECT_EQ(started(op_kind::on_recycle, before), 1u);
  EXPECT_EQ(port.ends.back().v, verdict::cancelled);
  EXPECT_EQ(check_answer(true).then, next::ready);
}

TEST_F(slot_test, a_cancelled_claims_on_acquire_that_never_answers_times_out_and_reconnects) {
  port.hooks.has_on_acquire = true;
  up();
  claim(&c);
  const op_id op = port.last_op();
  event(ev::cancel);
  const auto r = fire();
  EXPECT_EQ(r.retry, nullptr);
  ASSERT_EQ(port.cancels.size(), 2u);
  EXPECT_EQ(port.cancels[1].id, op);
  EXPECT_TRUE(port.cancels[1].abandon);
  EXPECT_EQ(port.ends.back().v, verdict::cancelled);
  EXPECT_EQ(s.state(), slot_state::connecting) << "no backoff: not the backend's fault";
}

TEST_F(slot_test, cancel_outside_acquiring_does_nothing) {
  up();
  event(ev::cancel);
  claim(&c);
  event(ev::cancel);
  EXPECT_TRUE(port.cancels.empty());
  EXPECT_EQ(s.claim(), &c);
  EXPECT_EQ(s.state(), slot_state::claimed);
}

// ----- returns ------------------------------------------------------------------

TEST_F(slot_test, a_release_without_on_recycle_is_ready_at_once) {
  up();
  claim(&c);
  const auto r = event(ev::release);
  EXPECT_EQ(r.then, next::ready);
  EXPECT_EQ(s.claim(), nullptr);
  EXPECT_EQ(box_id(s.connection()), 1);
  EXPECT_EQ(event(ev::release).then, next::nothing) << "a second release is ignored";
  s.make_idle(port);
  EXPECT_EQ(s.state(), slot_state::idle);
  EXPECT_EQ(port.starts.size(), 1u);
}

TEST_F(slot_test, a_release_with_on_recycle_runs_it_then_is_ready) {
  port.hooks.has_on_recycle = true;
  up();
  claim(&c);
  EXPECT_EQ(event(ev::release).then, next::nothing);
  EXPECT_EQ(s.state(), slot_state::recycling);
  ASSERT_EQ(started(op_kind::on_recycle), 1u);
  EXPECT_EQ(box_id(port.starts.back().box.get()), 1);
  EXPECT_EQ(s.connection(), nullptr);
  EXPECT_EQ(*s.wake_at(), port.t + 100ms);
  EXPECT_EQ(set.checking(), 1u) << "recycling counts as checking";
  EXPECT_EQ(check_answer(true).then, next::ready);
  EXPECT_EQ(port.ends.back().kind, op_kind::on_recycle);
  EXPECT_EQ(port.ends.back().v, verdict::ok);
  EXPECT_FALSE(s.wake_at());
}

TEST_F(slot_test, a_failed_recycle_closes_the_connection_and_reconnects) {
  port.hooks.has_on_recycle = true;
  up();
  port.t += 2s;
  claim(&c);
  event(ev::release);
  check_answer(false);
  EXPECT_EQ(port.closed_boxes.size(), 1u);
  EXPECT_EQ(port.ends.back().kind, op_kind::on_recycle);
  EXPECT_EQ(port.ends.back().v, verdict::failed);
  EXPECT_EQ(s.state(), slot_state::connecting);
}

TEST_F(slot_test, a_recycle_that_times_out_is_abandoned) {
  port.hooks.has_on_recycle = true;
  up();
  claim(&c);
  event(ev::release);
  const op_id op = port.last_op();
  auto box = port.take_box();
  fire();
  ASSERT_EQ(port.cancels.size(), 1u);
  EXPECT_EQ(port.cancels[0].id, op);
  EXPECT_TRUE(port.cancels[0].abandon);
  EXPECT_EQ(port.ends.back().kind, op_kind::on_recycle);
  EXPECT_EQ(port.ends.back().v, verdict::timed_out);
  EXPECT_EQ(s.state(), slot_state::backing_off) << "100 ms old: young";
  answer(op, true, std::move(box));
  EXPECT_EQ(port.closed_boxes.size(), 1u);
}

TEST_F(slot_test, release_and_discard_of_a_slot_not_claimed_are_ignored) {
  up();
  EXPECT_EQ(event(ev::release).then, next::nothing);
  EXPECT_EQ(event(ev::discard).then, next::nothing);
  EXPECT_EQ(s.state(), slot_state::idle);
  EXPECT_TRUE(port.closed_boxes.empty());
  EXPECT_TRUE(port.drops.empty());
}

TEST_F(slot_test, a_discard_drops_the_connection_and_backs_off_when_young) {
  up();
  claim(&c);
  EXPECT_EQ(event(ev::discard, "broken").then, next::nothing);
  EXPECT_EQ(port.closed_boxes.size(), 1u);
  EXPECT_EQ(s.connection(), nullptr);
  EXPECT_EQ(s.claim(), nullptr);
  ASSERT_EQ(port.drops.size(), 1u);
  EXPECT_TRUE(port.drops[0].discarded);
  EXPECT_EQ(port.drops[0].why, "broken");
  EXPECT_EQ(s.state(), slot_state::backing_off);
  EXPECT_EQ(*s.wake_at(), port.t + 10ms);
}

TEST_F(slot_test, a_discard_of_an_old_connection_reconnects_at_once) {
  up();
  port.t += 1h;
  claim(&c);
  event(ev::discard);
  EXPECT_EQ(s.state(), slot_state::connecting);
  EXPECT_EQ(started(op_kind::connect), 2u);
}

TEST_F(slot_test, a_lost_idle_connection_is_closed_and_replaced) {
  port.hooks.has_is_valid = true;
  port.hooks.has_watch = true;
  up();
  port.t += 1h;
  EXPECT_EQ(lose("reset by peer").then, next::nothing);
  EXPECT_EQ(port.closed_boxes.size(), 1u);
  ASSERT_EQ(port.drops.size(), 1u);
  EXPECT_FALSE(port.drops[0].discarded);
  EXPECT_EQ(port.drops[0].why, "reset by peer");
  EXPECT_EQ(s.state(), slot_state::connecting);
  EXPECT_FALSE(s.wake_at()) << "the health check went with the connection";
}

// ----- the watch (issue: never hand out a dead connection) -----------------------

TEST_F(slot_test, an_idle_slot_runs_a_watch_that_borrows_its_connection) {
  port.hooks.has_watch = true;
  up();
  ASSERT_EQ(started(op_kind::watch), 1u);
  EXPECT_EQ(port.starts.back().box, nullptr) << "the connection stays the slot's";
  EXPECT_NE(s.connection(), nullptr);
  EXPECT_TRUE(s.running());
}

TEST_F(slot_test, without_a_watch_hook_an_idle_slot_runs_nothing) {
  up();
  EXPECT_EQ(started(op_kind::watch), 0u);
  EXPECT_FALSE(s.running());
}

TEST_F(slot_test, a_watch_that_returns_is_a_loss_too) {
  port.hooks.has_watch = true;
  up();
  port.t += 1h;
  lose("the connector's watch ended", true);
  ASSERT_EQ(port.drops.size(), 1u);
  EXPECT_EQ(s.state(), slot_state::connecting);
}

TEST_F(slot_test, a_claim_cancels_the_watch_and_abandons_it) {
  port.hooks.has_watch = true;
  up();
  const op_id w = watch_op();
  EXPECT_EQ(claim(&c).then, next::handed_over) << "the claim waits for nothing";
  ASSERT_EQ(port.cancels.size(), 1u);
  EXPECT_EQ(port.cancels[0].id, w);
  EXPECT_TRUE(port.cancels[0].abandon) << "its result is stale";
  // Its answer, when it comes, is no loss: the claim keeps the connection.
  answer(w, false, nullptr, "operation aborted");
  EXPECT_EQ(s.state(), slot_state::claimed);
  EXPECT_TRUE(port.drops.empty());
  EXPECT_TRUE(port.closed_boxes.empty());
}

TEST_F(slot_test, a_return_starts_a_new_watch) {
  port.hooks.has_watch = true;
  up();
  claim(&c);
  ASSERT_EQ(event(ev::release).then, next::ready);
  s.make_idle(port);
  EXPECT_EQ(started(op_kind::watch), 2u);
  EXPECT_NE(watch_op(), port.cancels.back().id);
  // The first watch's late answer is stale; the second one's is a loss.
  answer(port.cancels.back().id, false, nullptr, "aborted");
  EXPECT_TRUE(port.drops.empty());
  port.t += 1h;
  lose();
  EXPECT_EQ(port.drops.size(), 1u);
}

TEST_F(slot_test, a_health_check_cancels_the_watch_first) {
  port.hooks.has_watch = true;
  port.hooks.has_is_valid = true;
  up();
  const op_id w = watch_op();
  fire();
  EXPECT_EQ(s.state(), slot_state::checking);
  ASSERT_EQ(port.cancels.size(), 1u);
  EXPECT_EQ(port.cancels[0].id, w);
  ASSERT_EQ(check_answer(true).then, next::ready);
  s.make_idle(port);
  EXPECT_EQ(started(op_kind::watch), 2u) << "watched again once idle";
}

TEST_F(slot_test, a_close_cancels_the_watch_before_the_connection_goes) {
  port.hooks.has_watch = true;
  up();
  const op_id w = watch_op();
  s.close(port, close_reason::resized);
  ASSERT_EQ(port.cancels.size(), 1u);
  EXPECT_EQ(port.cancels[0].id, w);
  EXPECT_EQ(port.closed_boxes.size(), 1u);
  EXPECT_TRUE(port.drops.empty()) << "a cancelled watch is no loss";
}

TEST_F(slot_test, a_retired_connection_cancels_its_watch) {
  port.hooks.has_watch = true;
  port.cfg.max_lifetime = 10s;
  port.cfg.max_lifetime_jitter = 0s;
  up();
  const op_id w = watch_op();
  fire();  // the lifetime ends while idle
  EXPECT_EQ(s.state(), slot_state::replacing);
  ASSERT_EQ(port.cancels.size(), 1u);
  EXPECT_EQ(port.cancels[0].id, w);
  EXPECT_TRUE(port.drops.empty());
}

TEST_F(slot_test, a_watch_that_sees_a_normal_end_replaces_without_a_failure) {
  port.hooks.has_watch = true;
  up();
  port.t += 1h;
  s.resume(port, {.what = ev::op_ended, .op = watch_op(), .why = "keep-alive closed"});
  EXPECT_EQ(s.state(), slot_state::replacing) << "still online";
  EXPECT_EQ(port.closed_boxes.size(), 1u);
  EXPECT_TRUE(port.drops.empty()) << "no failure";
  ASSERT_FALSE(port.ends.empty());
  EXPECT_EQ(port.ends.back().kind, op_kind::watch);
  EXPECT_EQ(port.ends.back().v, verdict::ended);
}

TEST_F(slot_test, a_normal_end_the_watch_sees_right_after_connect_is_a_loss) {
  port.hooks.has_watch = true;
  up();
  port.t += 10ms;
  s.resume(port, {.what = ev::op_ended, .op = watch_op(), .why = "closed"});
  ASSERT_EQ(port.drops.size(), 1u) << "a backend that ends every connection at once is failing";
  EXPECT_EQ(s.state(), slot_state::backing_off);
}

// ----- the young-connection rule ------------------------------------------------

TEST_F(slot_test, a_connection_lost_young_continues_the_backoff_streak) {
  port.hooks.has_watch = true;
  s.open(port);
  connect_answer(false);  // 10 ms
  fire();
  connect_answer(false);  // 20 ms
  fire();
  connect_answer(true);
  s.make_idle(port);
  port.t += 999ms;  // max_connection_backoff is 1 s
  lose();
  EXPECT_EQ(s.state(), slot_state::backing_off);
  EXPECT_EQ(*s.wake_at(), port.t + 40ms) << "as after a third failed connect";
  EXPECT_EQ(s.retries().failures(), 3u);
}

TEST_F(slot_test, a_connection_lost_after_max_connection_backoff_reconnects_at_once) {
  port.hooks.has_watch = true;
  s.open(port);
  connect_answer(false);
  fire();
  connect_answer(false);
  fire();
  connect_answer(true);
  s.make_idle(port);
  port.t += 1s;
  const auto before = port.starts.size();
  lose();
  EXPECT_EQ(s.state(), slot_state::connecting);
  EXPECT_EQ(started(op_kind::connect, before), 1u);
  EXPECT_EQ(s.retries().failures(), 0u) << "the streak is over";
  connect_answer(false);
  EXPECT_EQ(port.ends.back().retry, 10ms) << "a new streak starts from the minimum";
}

// ----- normal ends (a hook threw errc::connection_ended) --------------------------

// Hardening: a server's idle keep-alive close counted as a check failure,
// backed the slot off and took its backend offline.
TEST_F(slot_test, a_health_check_that_finds_a_normal_end_replaces_the_connection_at_once) {
  port.hooks.has_is_valid = true;
  up();
  fire();  // 5 s after connecting: older than normal_end_min_age (1 s)
  const auto before = port.starts.size();
  EXPECT_EQ(ended_answer().then, next::nothing);
  EXPECT_EQ(port.closed_boxes.size(), 1u) << "the connection is closed";
  ASSERT_EQ(port.ends.size(), 2u);
  EXPECT_EQ(port.ends.back().kind, op_kind::is_valid);
  EXPECT_EQ(port.ends.back().v, verdict::ended) << "not a failure";
  EXPECT_EQ(port.ends.back().why, "idle close");
  EXPECT_EQ(s.state(), slot_state::replacing);
  EXPECT_EQ(started(op_kind::connect, before), 1u) << "at once, no backoff";
  EXPECT_EQ(s.retries().failures(), 0u);
  EXPECT_TRUE(set.online()) << "a backend replacing a normally ended connection stays online";
  EXPECT_EQ(set.connecting(), 1u);
  EXPECT_EQ(connect_answer(true).then, next::ready);
  s.make_idle(port);
  EXPECT_EQ(s.state(), slot_state::idle);
  EXPECT_EQ(port.live - int(port.closed_boxes.size()), 1) << "one connection open";
}

TEST_F(slot_test, a_normal_end_keeps_the_backoff_streak_of_a_connection_younger_than_max) {
  port.hooks.has_is_valid = true;
  port.cfg.max_connection_backoff = 10s;
  port.cfg.health_interval = 2s;
  s.open(port);
  connect_answer(false);  // a streak of one
  fire();
  connect_answer(true);
  s.make_idle(port);
  fire();  // 2 s up: old enough to end normally, younger than max_connection_backoff
  ended_answer();
  EXPECT_EQ(port.ends.back().v, verdict::ended);
  EXPECT_EQ(s.state(), slot_state::replacing);
  EXPECT_EQ(s.retries().failures(), 1u) << "neither advanced nor reset";
}

TEST_F(slot_test, a_normal_end_of_a_young_connection_counts_as_a_failure_and_backs_off) {
  port.hooks.has_is_valid = true;
  port.cfg.health_interval = 200ms;  // under min(1 s, max_connection_backoff 1 s)
  up();
  fire();
  const auto before = port.starts.size();
  ended_answer();
  EXPECT_EQ(port.ends.back().v, verdict::failed);
  EXPECT_EQ(port.ends.back().why, "idle close (200 ms after it connected: too young)");
  EXPECT_EQ(s.state(), slot_state::backing_off);
  EXPECT_EQ(started(op_kind::connect, before), 0u);
  EXPECT_EQ(*s.wake_at(), port.t + 10ms);
  EXPECT_EQ(s.retries().failures(), 1u);
  EXPECT_FALSE(set.online());
}

TEST_F(slot_test, the_young_limit_is_max_connection_backoff_when_that_is_shorter) {
  port.hooks.has_is_valid = true;
  port.cfg.max_connection_backoff = 100ms;
  port.cfg.health_interval = 150ms;
  up();
  fire();
  ended_answer();
  EXPECT_EQ(port.ends.back().v, verdict::ended);
  EXPECT_EQ(s.state(), slot_state::replacing);
  EXPECT_EQ(s.retries().failures(), 0u) << "up for max_connection_backoff: the streak ends";
}

TEST_F(slot_test, a_recycle_that_finds_a_normal_end_replaces_the_connection) {
  port.hooks.has_on_recycle = true;
  up();
  claim(&c);
  port.t += 2s;
  event(ev::release);
  ASSERT_EQ(s.state(), slot_state::recycling);
  EXPECT_EQ(ended_answer().then, next::nothing);
  EXPECT_EQ(port.ends.back().kind, op_kind::on_recycle);
  EXPECT_EQ(port.ends.back().v, verdict::ended);
  EXPECT_EQ(s.state(), slot_state::replacing);
  EXPECT_EQ(port.closed_boxes.size(), 1u);
}

// A server that answers `Connection: close` ends each connection after one
// claim, however young: the reconnects are bounded by the claims.
TEST_F(slot_test, a_recycle_that_finds_a_normal_end_of_a_young_connection_is_no_failure) {
  port.hooks.has_on_recycle = true;
  up();
  claim(&c);
  port.t += 1ms;
  event(ev::release);
  ended_answer();
  EXPECT_EQ(port.ends.back().v, verdict::ended);
  EXPECT_EQ(s.state(), slot_state::replacing);
  EXPECT_EQ(s.retries().failures(), 0u);
}

TEST_F(slot_test, an_on_acquire_that_finds_a_normal_end_of_a_young_connection_fails) {
  port.hooks.has_on_acquire = true;
  up();
  port.t += 1ms;
  claim(&c);
  const auto r = ended_answer();
  EXPECT_EQ(r.retry, &c);
  EXPECT_FALSE(r.retry_after_end) << "a failure of on_acquire";
  EXPECT_EQ(port.ends.back().v, verdict::failed);
}

TEST_F(slot_test, an_on_acquire_that_finds_a_normal_end_passes_the_claim_on_without_a_failure) {
  port.hooks.has_on_acquire = true;
  up();
  port.t += 2s;
  claim(&c);
  const auto r = ended_answer();
  EXPECT_EQ(r.retry, &c) << "another connection serves the claim";
  EXPECT_TRUE(r.retry_after_end) << "not a failure of on_acquire";
  EXPECT_EQ(r.then, next::nothing);
  EXPECT_EQ(s.claim(), nullptr);
  EXPECT_EQ(port.ends.back().kind, op_kind::on_acquire);
  EXPECT_EQ(port.ends.back().v, verdict::ended);
  EXPECT_EQ(s.state(), slot_state::replacing) << "no cooling: the connection is gone";
  EXPECT_EQ(port.closed_boxes.size(), 1u);
  EXPECT_EQ(s.retries().failures(), 0u);
}

// A young end that on_acquire finds is a failure: the slot is to hold its
// connection for a backoff. If on_recycle then finds the same end on the
// way back, the slot keeps that backoff: reconnecting at once would get
// around the storm guard (each waiting claim looping connect, end,
// reconnect at loopback speed).
TEST_F(slot_test, an_end_found_on_the_way_back_from_a_failed_on_acquire_keeps_its_backoff) {
  port.hooks.has_on_acquire = true;
  port.hooks.has_on_recycle = true;
  up();
  port.t += 1ms;
  claim(&c);
  const auto r = ended_answer();  // young: on_acquire failed
  EXPECT_EQ(r.retry, &c);
  EXPECT_EQ(port.ends.back().v, verdict::failed);
  ASSERT_EQ(s.state(), slot_state::recycling);
  ended_answer();  // on_recycle finds the connection ended too
  EXPECT_EQ(port.ends.back().v, verdict::ended);
  EXPECT_EQ(s.state(), slot_state::backing_off) << "not replacing at once";
  ASSERT_TRUE(s.wake_at());
  EXPECT_GT(*s.wake_at(), port.t) << "the on_acquire failure's backoff is kept";
  const auto connects = started(op_kind::connect);
  fire();
  EXPECT_EQ(started(op_kind::connect), connects + 1) << "it reconnects when the backoff ends";
}

// Without on_recycle, is_valid runs on return; it cannot tell a close the
// server meant from a drop, so an end it finds on a young connection is a
// failure, as in a health check.
TEST_F(slot_test, an_end_found_by_is_valid_standing_in_for_on_recycle_is_judged_by_age) {
  port.hooks.has_is_valid = true;
  port.hooks.has_on_recycle = true;
  port.hooks.recycle_is_is_valid = true;
  up();
  claim(&c);
  port.t += 1ms;
  event(ev::release);
  ASSERT_EQ(s.state(), slot_state::recycling);
  ended_answer();
  EXPECT_EQ(port.ends.back().v, verdict::failed) << "young: a failure";
  EXPECT_EQ(s.state(), slot_state::backing_off);
  EXPECT_EQ(s.retries().failures(), 1u);
}

TEST_F(slot_test, a_replacing_connect_that_fails_backs_off_and_goes_offline) {
  port.hooks.has_is_valid = true;
  up();
  fire();
  ended_answer();
  ASSERT_EQ(s.state(), slot_state::replacing);
  connect_answer(false);
  EXPECT_EQ(port.ends.back().kind, op_kind::connect);
  EXPECT_EQ(port.ends.back().v, verdict::failed);
  EXPECT_EQ(s.state(), slot_state::backing_off);
  EXPECT_FALSE(set.online());
}

TEST_F(slot_test, a_replacing_connect_keeps_the_connect_timeout) {
  port.hooks.has_is_valid = true;
  port.cfg.connect_timeout = 300ms;
  up();
  fire();
  ended_answer();
  ASSERT_EQ(s.state(), slot_state::replacing);
  EXPECT_EQ(*s.wake_at(), port.t + 300ms);
  fire();
  EXPECT_EQ(port.ends.back().v, verdict::timed_out);
  EXPECT_EQ(s.state(), slot_state::backing_off);
}

TEST_F(slot_test, a_stale_normal_end_is_closed_and_changes_nothing) {
  port.hooks.has_is_valid = true;
  up();
  fire();
  const op_id check = port.last_op();
  auto box = port.take_box();
  fire();  // timed out: abandoned
  const auto st = s.state();
  const auto ends = port.ends.size();
  EXPECT_EQ(s.resume(port, {.what = ev::op_ended, .op = check, .box = std::move(box)}).then,
            next::nothing);
  EXPECT_EQ(s.state(), st);
  EXPECT_EQ(port.ends.size(), ends);
  EXPECT_EQ(port.closed_boxes.size(), 1u);
}

// ----- stale results ------------------------------------------------------------

TEST_F(slot_test, results_for_operations_it_gave_up_on_are_closed) {
  port.hooks.has_is_valid = true;
  up();
  const op_id connect = port.starts[0].id;
  EXPECT_EQ(answer(connect, true, port.make_box()).then, next::nothing) << "answered already";
  EXPECT_EQ(port.closed_boxes.size(), 1u);
  EXPECT_EQ(s.state(), slot_state::idle);
  EXPECT_EQ(box_id(s.connection()), 1);
  fire();
  const op_id check = port.last_op();
  EXPECT_EQ(answer(check + 1000, true, port.make_box()).then, next::nothing) << "unknown id";
  EXPECT_EQ(answer(connect, false, port.make_box()).then, next::nothing) << "stale failure";
  EXPECT_EQ(port.closed_boxes.size(), 3u);
  EXPECT_EQ(s.state(), slot_state::checking);
  EXPECT_TRUE(s.running());
  EXPECT_EQ(port.ends.size(), 1u) << "no stale answer counts";
  EXPECT_EQ(check_answer(true).then, next::ready) << "the live check still counts";
}

// ----- close, from every state --------------------------------------------------

class slot_close_test : public slot_test, public ::testing::WithParamInterface<slot_state> {
 protected:
  void bring_to(slot_state st) {
    switch (st) {
      case slot_state::backing_off:
        s.open(port);
        connect_answer(false);
        break;
      case slot_state::connecting:
        s.open(port);
        break;
      case slot_state::idle:
        port.hooks.has_is_valid = true;
        up();
        break;
      case slot_state::checking:
        port.hooks.has_is_valid = true;
        up();
        fire();
        break;
      case slot_state::acquiring:
        port.hooks.has_on_acquire = true;
        up();
        claim(&c);
        break;
      case slot_state::abandoned:
        port.hooks.has_on_acquire = true;
        up();
        claim(&c);
        event(ev::cancel);
        break;
      case slot_state::claimed:
        up();
        claim(&c);
        break;
      case slot_state::recycling:
        port.hooks.has_on_recycle = true;
        up();
        claim(&c);
        event(ev::release);
        break;
      case slot_state::cooling:
        port.hooks.has_on_acquire = true;
        up();
        claim(&c);
        check_answer(false);
        break;
      case slot_state::replacing:
        port.hooks.has_is_valid = true;
        up();
        fire();
        ended_answer();
        break;
      case slot_state::ready:
        s.open(port);
        connect_answer(true);
        break;
      case slot_state::closed:
      case slot_state::count_:
        break;
    }
  }
};

TEST_P(slot_close_test, cancels_the_operation_and_closes_the_connection) {
  bring_to(GetParam());
  ASSERT_EQ(s.state(), GetParam());
  const bool running = s.running();
  const op_id op = port.last_op();
  const bool held = s.connection() != nullptr;
  detail::box_ptr in_flight = running && !port.starts.empty() ? port.take_box() : nullptr;
  const auto closed_before = port.closed_boxes.size();
  s.close(port, close_reason::resized);
  EXPECT_EQ(s.state(), slot_state::closed);
  EXPECT_FALSE(s.running());
  EXPECT_FALSE(s.wake_at());
  EXPECT_EQ(s.claim(), nullptr);
  EXPECT_EQ(s.connection(), nullptr);
  if (running) {
    ASSERT_FALSE(port.cancels.empty());
    EXPECT_EQ(port.cancels.back().id, op);
    EXPECT_TRUE(port.cancels.back().abandon);
  } else {
    EXPECT_TRUE(port.cancels.empty());
  }
  EXPECT_EQ(port.closed_boxes.size(), closed_before + (held ? 1 : 0));
  EXPECT_EQ(set.count(slot_state::closed), 1u);
  EXPECT_EQ(set.unclaimed() + set.claimed() + set.checking() + set.connecting(), 0u);
  // Whatever the operation answers later is closed; nothing starts.
  const auto starts = port.starts.size();
  if (running) {
    if (!in_flight && port.starts.back().kind == op_kind::connect) in_flight = port.make_box();
    EXPECT_EQ(answer(op, true, std::move(in_flight)).then, next::nothing);
    EXPECT_EQ(port.closed_boxes.size(), closed_before + (held ? 1 : 0) + 1);
  }
  port.t += 1h;
  EXPECT_EQ(timer().then, next::nothing);
  EXPECT_EQ(claim(&other).then, next::nothing);
  EXPECT_EQ(s.state(), slot_state::closed);
  EXPECT_EQ(port.starts.size(), starts);
  EXPECT_EQ(port.live, int(port.closed_boxes.size())) << "every connection went to close()";
}

INSTANTIATE_TEST_SUITE_P(
    every_state, slot_close_test,
    ::testing::Values(slot_state::backing_off, slot_state::connecting, slot_state::idle,
                      slot_state::checking, slot_state::acquiring, slot_state::abandoned,
                      slot_state::claimed, slot_state::recycling, slot_state::cooling,
                      slot_state::replacing, slot_state::ready),
    [](const auto& param) { return std::string(core::to_string(param.param)); });

}  // namespace
}  // namespace qorb::test
