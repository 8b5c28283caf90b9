// SPDX-License-Identifier: BSL-1.0
// More of docs/behaviour.md replayed on the core: backends coming, going
// and moving, fail-fast without backends, periodic and event-driven
// rebalances, stats of removed sets, health checks off, connect_timeout,
// claims with their own timeout, terminating twice. A manual clock only.
#include <gtest/gtest.h>

#include "core_support/harness.hpp"

#include <algorithm>
#include <string>
#include <vector>

namespace qorb::test {
namespace {

using namespace std::chrono_literals;
using core::claim_outcome;
using core::op_kind;
using core::slot_state;
using kind = core::observation::kind;

constexpr core::connector_traits recycling{false, false, true};
constexpr core::connector_traits checked{true, false, true};

std::size_t count_seen(const core_harness& h, kind what, const std::string& set = {}) {
  return std::size_t(std::count_if(h.seen().begin(), h.seen().end(), [&](const auto& o) {
    return o.what == what && (set.empty() || (o.set && o.set->name == set));
  }));
}

std::string name_of(const test_claim& c) { return c.s ? c.s->set().target().name : "(none)"; }

backend at_port(const std::string& name, unsigned short port) {
  return backend{name, {asio::ip::make_address("127.0.0.1"), port}};
}

// ----- backends appearing, disappearing, moving ----------------------------------

TEST(pool_state_more, a_new_backend_gets_a_probe_then_its_share_once_online) {
  core_harness h(small_policy());  // spares 8
  h.backends({"a"});
  h.connect_ok();
  ASSERT_EQ(h.slots_of("a"), 8u);
  h.backends({"a", "b"});
  EXPECT_EQ(count_seen(h, kind::backend_added, "b"), 1u);
  EXPECT_EQ(h.slots_of("b"), 1u) << "offline: one probing slot";
  EXPECT_EQ(h.slots_of("a"), 7u) << "a gives up what b's probe takes from the budget";
  ASSERT_TRUE(h.find(op_kind::connect, "b"));
  h.finish(h.find(op_kind::connect, "b")->id, true);
  EXPECT_EQ(h.slots_of("b"), 4u) << "online: an even share";
  EXPECT_EQ(h.slots_of("a"), 4u);
  h.connect_ok("b");
  EXPECT_EQ(h.idle(), 8u);
  const auto stats = h.state().stats();
  ASSERT_TRUE(stats.backends.contains("b"));
  EXPECT_TRUE(stats.backends.at("b").online);
  EXPECT_EQ(stats.backends.at("b").unclaimed, 4u);
  EXPECT_EQ(h.live_connections(), 8);
}

TEST(pool_state_more, a_removed_backend_closes_what_is_not_claimed_and_drains_the_rest) {
  core_harness h(small_policy(8), recycling);  // 4 slots each, no room to grow
  h.backends({"a", "b"});
  h.connect_ok();
  h.connect_ok();
  ASSERT_EQ(h.slots_of("b"), 4u);
  // Claim everything; keep one of b's claimed and leave another recycling.
  std::vector<test_claim*> held;
  for (int i = 0; i < 8; ++i) held.push_back(&h.claim());
  test_claim* kept = nullptr;
  core::slot* recycled = nullptr;
  for (auto* c : held) {
    ASSERT_EQ(c->outcome, claim_outcome::served);
    if (name_of(*c) != "b") continue;
    if (!kept) {
      kept = c;
    } else if (!recycled) {
      recycled = c->s;
    }
  }
  ASSERT_TRUE(kept && recycled);
  for (auto* c : held) {
    if (c != kept) h.release(*c);
  }
  std::vector<core::op_id> others;
  for (const auto& op : h.pending()) {
    if (op.kind == op_kind::on_recycle && op.s != recycled) others.push_back(op.id);
  }
  for (auto id : others) h.finish(id, true);
  ASSERT_EQ(h.pending().size(), 1u);
  const auto recycle_id = h.pending().front().id;
  ASSERT_EQ(recycled->state(), slot_state::recycling);
  ASSERT_EQ(h.state().stats().backends.at("b").unclaimed, 2u);
  const int live = h.live_connections();  // 8: one of them in the recycle's hands

  h.backends({"a"});
  EXPECT_EQ(count_seen(h, kind::backend_removed, "b"), 1u);
  EXPECT_EQ(h.live_connections(), live - 2) << "b's idle connections closed at once";
  ASSERT_TRUE(h.find(op_kind::on_recycle, "b"));
  EXPECT_TRUE(h.find(op_kind::on_recycle, "b")->cancelled) << "its check in flight is cancelled";
  EXPECT_EQ(kept->s->state(), slot_state::claimed) << "a claimed slot stays claimed";
  EXPECT_EQ(h.slots_of("b"), 1u);
  auto stats = h.state().stats();
  ASSERT_TRUE(stats.backends.contains("b"));
  EXPECT_TRUE(stats.backends.at("b").removed);
  EXPECT_EQ(stats.backends.at("b").claimed, 1u);
  EXPECT_EQ(stats.backends.at("b").checking + stats.backends.at("b").unclaimed, 0u);
  // The cancelled recycle answers: its connection is closed.
  h.finish(recycle_id, true);
  EXPECT_EQ(h.live_connections(), live - 3);
  // The claimed one closes when it comes back; then b is gone.
  h.release(*kept);
  EXPECT_EQ(h.live_connections(), live - 4);
  EXPECT_EQ(h.slots_of("b"), 0u);
  EXPECT_FALSE(h.state().stats().backends.contains("b"));
  // a takes the whole budget.
  h.connect_ok("a");
  EXPECT_EQ(h.slots_of("a"), 8u);
  EXPECT_EQ(h.idle(), 8u);
  EXPECT_EQ(h.live_connections(), 8);
}

TEST(pool_state_more, removing_a_backend_cancels_its_connect_and_closes_the_late_answer) {
  core_harness h(small_policy());
  h.backends({"a", "b"});
  auto* op = h.find(op_kind::connect, "b");
  ASSERT_TRUE(op);
  const auto id = op->id;
  h.backends({"a"});
  ASSERT_TRUE(h.find(op_kind::connect, "b"));
  EXPECT_TRUE(h.find(op_kind::connect, "b")->cancelled);
  EXPECT_EQ(h.slots_of("b"), 0u);
  h.finish(id, true);
  EXPECT_EQ(h.live_connections(), 0) << "the connection came too late: closed";
  EXPECT_EQ(h.slots_of("b"), 0u);
  EXPECT_FALSE(h.state().stats().backends.contains("b"));
}

TEST(pool_state_more, a_changed_address_is_a_removal_and_a_new_set) {
  int mine = 0;  // the connection this test makes itself; outlives the pool
  core_harness h(small_policy());
  h.backends({"a"});  // 127.0.0.1:1
  h.connect_ok();
  auto& c = h.claim();
  ASSERT_EQ(c.outcome, claim_outcome::served);
  const int live = h.live_connections();
  ASSERT_EQ(live, 8);

  core::effects fx;
  h.state().backends_changed({{"a", at_port("a", 99)}}, fx);
  EXPECT_EQ(fx.closing.size(), 7u) << "the old address's idle connections";
  std::size_t removed = 0, added = 0;
  for (const auto& o : fx.seen) {
    if (o.what == kind::backend_removed) {
      ++removed;
      EXPECT_EQ(o.count, 1u) << "one claimed slot still out";
      EXPECT_EQ(o.set->address, "127.0.0.1:1");
    }
    if (o.what == kind::backend_added) {
      ++added;
      EXPECT_EQ(o.set->address, "127.0.0.1:99");
    }
  }
  EXPECT_EQ(removed, 1u);
  EXPECT_EQ(added, 1u);
  ASSERT_FALSE(fx.starts.empty());
  for (const auto& st : fx.starts) {
    EXPECT_EQ(st.kind, op_kind::connect);
    EXPECT_EQ(st.target, at_port("a", 99)) << "new connects go to the new address";
  }
  auto stats = h.state().stats();
  ASSERT_TRUE(stats.backends.contains("a"));
  ASSERT_TRUE(stats.backends.contains("a (removed)"));
  EXPECT_EQ(stats.backends.at("a").address, at_port("a", 99).address);
  EXPECT_FALSE(stats.backends.at("a").removed);
  EXPECT_EQ(stats.backends.at("a (removed)").address, at_port("a", 1).address);
  EXPECT_TRUE(stats.backends.at("a (removed)").removed);
  EXPECT_EQ(stats.backends.at("a (removed)").claimed, 1u);

  // The new set connects and serves.
  const core::op_id first = fx.starts.front().id;
  core::effects done;
  h.state().op_finished(first, true, std::make_unique<fake_box>(&mine, "a", 1000), "", done);
  EXPECT_EQ(h.state().stats().backends.at("a").unclaimed, 1u);
  auto& next = h.claim();
  ASSERT_EQ(next.outcome, claim_outcome::served);
  EXPECT_EQ(next.s->set().target(), at_port("a", 99));
  // The old set's claimed slot closes on return, and its row goes.
  fx.closing.clear();
  const int before = h.live_connections();
  h.release(c);
  EXPECT_EQ(h.live_connections(), before - 1);
  EXPECT_FALSE(h.state().stats().backends.contains("a (removed)"));
  h.release(next);
}

TEST(pool_state_more, the_same_backend_published_again_changes_nothing) {
  core_harness h(small_policy());
  h.backends({"a", "b"});
  h.connect_ok();
  h.connect_ok();
  const auto slots = h.state().total_slots();
  const auto added = count_seen(h, kind::backend_added);
  h.backends({"b", "a"});
  EXPECT_EQ(h.state().total_slots(), slots);
  EXPECT_EQ(count_seen(h, kind::backend_added), added);
  EXPECT_EQ(count_seen(h, kind::backend_removed), 0u);
  EXPECT_EQ(h.live_connections(), int(slots));
}

// ----- fail fast without backends ------------------------------------------------

TEST(pool_state_more, fail_fast_without_backends_waits_before_the_first_answer) {
  auto p = small_policy();
  p.fail_fast_without_backends = true;
  core_harness h(p);
  auto& early = h.claim();
  EXPECT_FALSE(early.outcome) << "the resolver has not answered yet";
  EXPECT_EQ(h.state().waiting(), 1u);
  h.advance(500ms);
  h.backends({});
  EXPECT_EQ(early.outcome, claim_outcome::no_backends) << "the set became empty: at once";
  EXPECT_EQ(early.completed_at, h.now());
  auto& now = h.claim();
  EXPECT_EQ(now.outcome, claim_outcome::no_backends) << "while it is empty: at once";
  EXPECT_EQ(h.state().stats().claim_failures.no_backends, 2u);
}

TEST(pool_state_more, fail_fast_fails_waiting_claims_as_the_set_becomes_empty) {
  auto p = small_policy();
  p.fail_fast_without_backends = true;
  core_harness h(p);
  h.backends({"a"});
  auto& waiting = h.claim();
  auto& other = h.claim(5s);
  ASSERT_FALSE(waiting.outcome);
  h.advance(100ms);
  h.backends({});
  EXPECT_EQ(waiting.outcome, claim_outcome::no_backends);
  EXPECT_EQ(other.outcome, claim_outcome::no_backends);
  EXPECT_EQ(waiting.completed_at, h.now()) << "not at its deadline";
  EXPECT_EQ(h.state().waiting(), 0u);
  // Backends again: claims wait again.
  h.backends({"a"});
  auto& later = h.claim();
  EXPECT_FALSE(later.outcome);
  h.connect_ok();
  EXPECT_EQ(later.outcome, claim_outcome::served);
}

TEST(pool_state_more, without_fail_fast_an_empty_set_fails_claims_at_their_deadline) {
  core_harness h(small_policy());
  h.backends({"a"});
  auto& waiting = h.claim();
  h.backends({});
  EXPECT_FALSE(waiting.outcome);
  auto& fresh = h.claim();
  EXPECT_FALSE(fresh.outcome);
  h.advance(999ms);
  EXPECT_FALSE(waiting.outcome);
  h.advance(1ms);
  EXPECT_EQ(waiting.outcome, claim_outcome::no_backends);
  EXPECT_EQ(fresh.outcome, claim_outcome::no_backends);
}

// ----- rebalancing ---------------------------------------------------------------

TEST(pool_state_more, event_driven_rebalances_only_raise_the_budget_and_the_periodic_lowers_it) {
  auto p = small_policy();
  p.spares_wanted = 2;
  p.rebalance_interval = 10s;
  core_harness h(p);
  h.backends({"a"});
  h.connect_ok();
  ASSERT_EQ(h.state().total_slots(), 2u);
  std::vector<test_claim*> held;
  for (int i = 0; i < 6; ++i) held.push_back(&h.claim());
  EXPECT_EQ(h.state().total_slots(), 8u) << "2 claimed + 4 waiting + 2 spares, at once";
  h.connect_ok();
  for (auto* c : held) ASSERT_EQ(c->outcome, claim_outcome::served);
  EXPECT_EQ(h.idle(), 2u);
  for (auto* c : held) h.release(*c);
  EXPECT_EQ(h.state().total_slots(), 8u) << "returns do not lower the budget";
  EXPECT_EQ(h.idle(), 8u);
  h.advance(9999ms);
  EXPECT_EQ(h.state().total_slots(), 8u);
  h.advance(1ms);  // the periodic rebalance
  EXPECT_EQ(h.state().total_slots(), 2u) << "0 claimed + 2 spares";
  EXPECT_EQ(h.live_connections(), 2);
  EXPECT_EQ(h.idle(), 2u);
}

TEST(pool_state_more, the_periodic_rebalance_rescores_backends_by_recent_failures) {
  auto p = small_policy();
  p.rebalance_interval = 1s;  // inside the 2 s failure window
  core_harness h(p);
  h.backends({"a"});
  h.connect_ok();
  for (int i = 0; i < 30; ++i) h.release(h.claim());  // a: +30 for claims served
  h.backends({"a", "b"});
  h.connect_ok("b");
  h.connect_ok("b");
  ASSERT_EQ(h.state().stats().backends.at("b").unclaimed, 4u);
  auto& first = h.claim();
  ASSERT_EQ(name_of(first), "b") << "a fresh backend scores below a busy one";
  core::effects fx;
  for (int i = 0; i < 10; ++i) h.state().failure_reported(*first.s, "5xx", fx);
  EXPECT_EQ(h.state().stats().backends.at("b").recent_failures, 10u);
  h.release(first);
  auto& second = h.claim();
  EXPECT_EQ(name_of(second), "b") << "without a rescore, failures do not move it";
  h.release(second);
  h.advance(1s);  // rescored: a in [0, 5), b in [10, 15)
  auto& third = h.claim();
  EXPECT_EQ(name_of(third), "a") << "fewest recent failures first";
  h.release(third);
}

// ----- stats ---------------------------------------------------------------------

TEST(pool_state_more, stats_keep_a_row_for_each_removed_set_of_one_name) {
  core_harness h(small_policy());
  h.backends({"a"});
  h.connect_ok();
  auto& first = h.claim();
  h.backends({});
  h.backends({"a"});
  h.connect_ok();
  auto& second = h.claim();
  ASSERT_EQ(second.outcome, claim_outcome::served);
  ASSERT_NE(second.s, first.s);
  h.backends({});
  auto stats = h.state().stats();
  ASSERT_EQ(stats.backends.size(), 2u) << "both removed sets, under distinct keys";
  for (const auto& [key, b] : stats.backends) {
    EXPECT_TRUE(b.removed) << key;
    EXPECT_EQ(b.claimed, 1u) << key;
  }
  EXPECT_TRUE(stats.backends.contains("a"));
  EXPECT_TRUE(stats.backends.contains("a (removed)"));
  // With the name live again, three rows.
  h.backends({"a"});
  stats = h.state().stats();
  ASSERT_EQ(stats.backends.size(), 3u);
  ASSERT_TRUE(stats.backends.contains("a"));
  EXPECT_FALSE(stats.backends.at("a").removed) << "the live set has the plain name";
  for (const auto& [key, b] : stats.backends) {
    if (key != "a") {
      EXPECT_TRUE(b.removed) << key;
    }
  }
  // As each drains, its row goes.
  h.release(first);
  stats = h.state().stats();
  EXPECT_EQ(stats.backends.size(), 2u);
  h.release(second);
  stats = h.state().stats();
  EXPECT_EQ(stats.backends.size(), 1u);
  EXPECT_FALSE(stats.backends.at("a").removed);
}

// ----- health checks, connect_timeout --------------------------------------------

TEST(pool_state_more, no_health_checks_when_health_interval_is_nullopt) {
  auto p = small_policy();
  p.set_config.health_interval = std::nullopt;
  core_harness h(p, checked);
  h.backends({"a"});
  h.connect_ok();
  h.advance(2h);
  EXPECT_FALSE(h.find(op_kind::is_valid));
  for (const auto& o : h.seen()) {
    EXPECT_FALSE(o.what == kind::op_started && o.op == op_kind::is_valid);
  }
  EXPECT_EQ(h.idle(), 8u);
  // The same pool with an interval checks.
  p.set_config.health_interval = 30s;
  core_harness control(p, checked);
  control.backends({"a"});
  control.connect_ok();
  control.advance(30s);
  EXPECT_TRUE(control.find(op_kind::is_valid));
}

TEST(pool_state_more, connect_timeout_bounds_each_connect) {
  auto p = small_policy();
  p.set_config.connect_timeout = 200ms;
  core_harness h(p);
  h.backends({"a"});
  const auto id = h.find(op_kind::connect)->id;
  h.advance(199ms);
  EXPECT_FALSE(h.find(op_kind::connect)->cancelled);
  h.advance(1ms);
  ASSERT_TRUE(h.find(op_kind::connect));
  EXPECT_TRUE(h.find(op_kind::connect)->cancelled) << "timed out: cancelled";
  EXPECT_EQ(h.state().stats().backends.at("a").connect_failures, 1u);
  bool timed_out = false;
  for (const auto& o : h.seen()) {
    if (o.what == kind::op_failed && o.op == op_kind::connect) timed_out = o.flag;
  }
  EXPECT_TRUE(timed_out);
  // The backoff, then a new attempt.
  h.advance(9ms);
  EXPECT_EQ(h.pending().size(), 1u);
  h.advance(1ms);
  ASSERT_EQ(h.pending().size(), 2u);
  // The abandoned connect answers late: closed; the new one is used.
  h.finish(id, true);
  EXPECT_EQ(h.live_connections(), 0);
  EXPECT_EQ(h.state().total_slots(), 1u) << "still the one probing slot";
  h.finish(h.find(op_kind::connect)->id, true);
  EXPECT_EQ(h.live_connections(), 1);
  EXPECT_EQ(h.idle(), 1u);
}

TEST(pool_state_more, connects_time_out_after_10_s_by_default) {
  core_harness h(small_policy());
  ASSERT_EQ(h.config().set_config.connect_timeout, std::chrono::seconds(10));
  h.backends({"a"});
  h.advance(9999ms);
  EXPECT_EQ(h.cancels(), 0u);
  h.advance(1ms);
  EXPECT_EQ(h.cancels(), 1u);
  EXPECT_EQ(h.state().stats().backends.at("a").connect_failures, 1u);
}

TEST(pool_state_more, connects_have_no_time_bound_without_connect_timeout) {
  policy p = small_policy();
  p.set_config.connect_timeout = std::nullopt;
  core_harness h(p);
  h.backends({"a"});
  h.advance(2h);
  ASSERT_TRUE(h.find(op_kind::connect));
  EXPECT_FALSE(h.find(op_kind::connect)->cancelled);
  EXPECT_EQ(h.cancels(), 0u);
  EXPECT_EQ(h.state().stats().backends.at("a").connect_failures, 0u);
}

// ----- claims with their own timeout ---------------------------------------------

TEST(pool_state_more, a_claims_own_timeout_replaces_claim_timeout) {
  core_harness h(small_policy());  // claim_timeout 1 s
  h.backends({"a"});
  const auto start = h.now();
  auto& quick = h.claim(200ms);
  auto& patient = h.claim(5s);
  auto& plain = h.claim();
  h.advance(199ms);
  EXPECT_FALSE(quick.outcome);
  h.advance(1ms);
  EXPECT_EQ(quick.outcome, claim_outcome::no_backends_online);
  EXPECT_EQ(quick.completed_at, start + 200ms);
  h.advance(800ms);
  EXPECT_EQ(plain.outcome, claim_outcome::no_backends_online);
  EXPECT_FALSE(patient.outcome) << "longer than claim_timeout";
  h.advance(3999ms);
  EXPECT_FALSE(patient.outcome);
  h.advance(1ms);
  EXPECT_EQ(patient.outcome, claim_outcome::no_backends_online);
  EXPECT_EQ(patient.completed_at, start + 5s);
}

TEST(pool_state_more, a_claims_own_timeout_holds_during_on_acquire) {
  core_harness h(small_policy(1), acquiring);
  h.backends({"a"});
  h.connect_ok();
  auto& c = h.claim(50ms);
  auto* op = h.find(op_kind::on_acquire);
  ASSERT_TRUE(op);
  const auto id = op->id;
  h.advance(49ms);
  EXPECT_FALSE(c.outcome);
  h.advance(1ms);
  EXPECT_EQ(c.outcome, claim_outcome::all_claims_used) << "before health_check_timeout";
  EXPECT_TRUE(h.find(op_kind::on_acquire)->cancelled);
  h.finish(id, false);  // the cancelled call answers with the connection
  EXPECT_EQ(h.idle(), 1u) << "recycled";
  EXPECT_EQ(h.live_connections(), 1);
}

// ----- terminate -----------------------------------------------------------------

TEST(pool_state_more, terminating_twice_does_nothing_the_second_time) {
  core_harness h(small_policy());
  h.backends({"a"});
  h.connect_ok();
  auto& held = h.claim();
  ASSERT_TRUE(h.terminate());
  EXPECT_EQ(count_seen(h, kind::terminating), 1u);
  core::effects fx;
  EXPECT_FALSE(h.state().terminate(fx));
  EXPECT_TRUE(fx.seen.empty());
  EXPECT_TRUE(fx.completions.empty());
  EXPECT_TRUE(fx.starts.empty());
  EXPECT_TRUE(fx.cancels.empty());
  EXPECT_TRUE(fx.closing.empty());
  EXPECT_FALSE(h.terminate());
  EXPECT_EQ(count_seen(h, kind::terminating), 1u);
  EXPECT_TRUE(h.state().terminated());
  EXPECT_TRUE(h.state().stats().terminated);
  // Still terminated: claims fail, nothing opens, the held slot closes on return.
  EXPECT_EQ(h.claim().outcome, claim_outcome::terminated);
  EXPECT_EQ(h.try_claim(), nullptr);
  h.backends({"a", "b"});
  EXPECT_EQ(h.slots_of("b"), 0u);
  EXPECT_EQ(h.live_connections(), 1);
  h.release(held);
  EXPECT_EQ(h.live_connections(), 0);
  EXPECT_EQ(h.state().total_slots(), 0u);
  EXPECT_FALSE(h.state().next_wakeup());
}

// ----- normal ends (a hook threw errc::connection_ended) --------------------------

// Hardening: a server's idle keep-alive close counted two check failures,
// backed the backend off and marked it offline, so claims failed with
// "no backends online" though no request did.
TEST(pool_state_more, an_idle_close_is_replaced_and_the_backend_never_goes_offline) {
  auto p = small_policy(1);
  p.spares_wanted = 1;
  p.set_config.health_interval = 5s;  // the server closes idle ones sooner
  p.set_config.spread = 0ms;
  core_harness h(p, checked);
  h.backends({"a"});
  h.connect_ok();
  ASSERT_EQ(count_seen(h, kind::set_online), 1u);
  for (int round = 0; round < 10; ++round) {
    h.advance(5s);
    auto* check = h.find(op_kind::is_valid);
    ASSERT_TRUE(check) << "round " << round;
    h.end_normally(check->id);
    // A claim made while the connection is replaced waits for the new one.
    auto& c = h.claim();
    EXPECT_FALSE(c.outcome);
    ASSERT_TRUE(h.find(op_kind::connect)) << "replaced at once, no backoff";
    h.connect_ok();
    EXPECT_EQ(c.outcome, claim_outcome::served);
    h.release(c);
    ASSERT_TRUE(h.find(op_kind::on_recycle));
    h.finish(h.find(op_kind::on_recycle)->id, true);
  }
  EXPECT_EQ(count_seen(h, kind::set_offline), 0u) << "never offline";
  EXPECT_EQ(count_seen(h, kind::op_failed), 0u) << "nothing failed";
  EXPECT_EQ(count_seen(h, kind::ended), 10u) << "each end is seen (logged at debug)";
  const auto b = h.state().stats().backends.at("a");
  EXPECT_EQ(b.check_failures, 0u);
  EXPECT_EQ(b.recent_failures, 0u);
  EXPECT_TRUE(b.online);
}

// The storm guard: a backend that ends every connection right after it is
// made still backs off (and counts failures), as a failing one does.
TEST(pool_state_more, a_backend_that_ends_every_connection_young_backs_off) {
  auto p = small_policy(1);
  p.spares_wanted = 1;
  p.set_config.health_interval = 50ms;  // younger than min(1 s, max_connection_backoff)
  core_harness h(p, checked);
  h.backends({"a"});
  int connects = 0;
  for (int step = 0; step < 100000 && h.now() < time_point{} + 1003s; ++step) {
    if (h.find(op_kind::connect)) {
      ++connects;
      h.connect_ok();
    } else if (auto* check = h.find(op_kind::is_valid)) {
      h.end_normally(check->id);
    } else {
      h.advance(1ms);
    }
  }
  // Checks every 50 ms, each failing young: backoff 10, 20, ... 1000 ms.
  EXPECT_LE(connects, 10) << "no backoff: one connect per 50 ms would be 60";
  EXPECT_GT(h.state().stats().backends.at("a").check_failures, 0u);
}

// An on_acquire that finds its connection ended normally does not fail the
// claim: another connection serves it, and no failure is counted.
TEST(pool_state_more, an_on_acquire_that_finds_a_normal_end_serves_the_claim_elsewhere) {
  auto p = small_policy(2);
  p.spares_wanted = 2;
  core_harness h(p, acquiring);
  h.backends({"a"});
  h.connect_ok();
  ASSERT_EQ(h.idle(), 2u);
  h.advance(2s);  // old enough to end normally
  auto& c = h.claim();
  auto* first = h.find(op_kind::on_acquire);
  ASSERT_TRUE(first);
  const core::slot* ended_on = first->s;
  h.end_normally(first->id);
  EXPECT_FALSE(c.outcome);
  auto* second = h.find(op_kind::on_acquire);
  ASSERT_TRUE(second) << "the claim is offered the other connection";
  EXPECT_NE(second->s, ended_on);
  h.finish(second->id, true);
  EXPECT_EQ(c.outcome, claim_outcome::served);
  ASSERT_EQ(count_seen(h, kind::acquire_failed), 1u) << "passed on, as after a failure";
  const auto passed = std::find_if(h.seen().begin(), h.seen().end(),
                                   [](const auto& o) { return o.what == kind::acquire_failed; });
  EXPECT_TRUE(passed->flag) << "flagged as a normal end, not a refusal";
  EXPECT_EQ(h.state().stats().backends.at("a").check_failures, 0u);
  EXPECT_TRUE(h.find(op_kind::connect)) << "the ended one is replaced";
}

// Hardening: a claim refused by an always-throwing on_acquire failed with
// all_claims_used; it says on_acquire failed, also when the refusal
// came from a second connection while the first was cooling.
TEST(pool_state_more, a_claim_on_acquire_keeps_refusing_fails_with_acquire_failed) {
  auto p = small_policy(2);
  p.spares_wanted = 2;
  core_harness h(p, acquiring);
  h.backends({"a"});
  h.connect_ok();
  auto& c = h.claim(300ms);
  for (int step = 0; step < 10000 && !c.outcome; ++step) {
    if (auto* op = h.find(op_kind::on_acquire)) {
      h.finish(op->id, false);
    } else {
      h.advance(1ms);
    }
  }
  EXPECT_EQ(c.outcome, claim_outcome::acquire_failed);
  // A claim that merely waits for a busy pool still says all_claims_used.
  auto& holder = h.claim(1s);
  for (int step = 0; step < 10000 && !holder.outcome; ++step) {
    if (auto* op = h.find(op_kind::on_acquire)) {
      h.finish(op->id, true);
    } else {
      h.advance(1ms);
    }
  }
  ASSERT_EQ(holder.outcome, claim_outcome::served);
  auto& holder2 = h.claim(1s);
  for (int step = 0; step < 10000 && !holder2.outcome; ++step) {
    if (auto* op = h.find(op_kind::on_acquire)) {
      h.finish(op->id, true);
    } else {
      h.advance(1ms);
    }
  }
  ASSERT_EQ(holder2.outcome, claim_outcome::served);
  auto& waiter = h.claim(100ms);
  h.advance(200ms);
  EXPECT_EQ(waiter.outcome, claim_outcome::all_claims_used);
  const auto f = h.state().stats().claim_failures;
  EXPECT_EQ(f.acquire_failed, 1u);
  EXPECT_EQ(f.all_claims_used, 1u);
}

}  // namespace
}  // namespace qorb::test
