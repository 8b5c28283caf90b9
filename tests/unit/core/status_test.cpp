// SPDX-License-Identifier: BSL-1.0
// The pool's status, the connect storm guard, a drain and a new policy on
// the core, on a manual clock: status_tracker alone, then through
// pool_state.
#include <gtest/gtest.h>

#include "core/claim_outcomes.hpp"
#include "core/status_tracker.hpp"
#include "core_support/harness.hpp"

#include <algorithm>
#include <set>
#include <string>
#include <vector>

namespace qorb::test {
namespace {

using namespace std::chrono_literals;
using core::claim_outcome;
using core::op_kind;
using kind = core::observation::kind;

std::vector<std::pair<pool_status, pool_status>> changes(const core_harness& h) {
  std::vector<std::pair<pool_status, pool_status>> out;
  std::uint64_t seq = 0;
  for (const auto& o : h.seen()) {
    if (o.what != kind::status_changed) continue;
    EXPECT_EQ(o.seq, ++seq) << "numbered in order";
    out.emplace_back(o.status_from, o.status_to);
  }
  return out;
}

using change = std::pair<pool_status, pool_status>;
constexpr auto starting = pool_status::starting, running = pool_status::running,
               failed = pool_status::failed, stopping = pool_status::stopping,
               stopped = pool_status::stopped;

TEST(status_tracker, fails_after_failed_after_only_when_every_backend_is_failing) {
  policy p;
  p.failed_after = 10s;
  const time_point t0{1000s};
  core::status_tracker st(t0);
  core::status_inputs in{.online = 0, .known = 2, .failing = 1};
  EXPECT_FALSE(st.update(p, in, t0 + 20s)) << "one backend is still trying its first connect";
  in.failing = 2;
  EXPECT_FALSE(st.update(p, in, t0 + 9s)) << "not for failed_after yet";
  EXPECT_EQ(st.deadline(p), t0 + 10s);
  EXPECT_EQ(st.update(p, in, t0 + 10s), starting);
  EXPECT_EQ(st.status(), failed);
  in.online = 1;
  EXPECT_EQ(st.update(p, in, t0 + 11s), failed);
  EXPECT_EQ(st.status(), running);
}

TEST(status_tracker, fails_at_once_when_every_known_backend_refused_permanently) {
  policy p;
  const time_point t0{1000s};
  core::status_tracker st(t0);
  EXPECT_EQ(st.update(p, {.online = 0, .known = 2, .failing = 2, .refused = 2}, t0 + 1ms),
            starting);
  EXPECT_EQ(st.status(), failed);
}

TEST(status_tracker, stops_only_once_no_claim_is_out) {
  policy p;
  const time_point t0{1000s};
  core::status_tracker st(t0);
  st.update(p, {.online = 1, .known = 1}, t0);
  EXPECT_EQ(st.update(p, {.online = 1, .known = 1, .draining = true, .claims_out = true}, t0),
            running);
  EXPECT_EQ(st.status(), stopping);
  EXPECT_EQ(st.update(p, {.known = 0, .terminated = true, .claims_out = false}, t0), stopping);
  EXPECT_EQ(st.status(), stopped);
}

TEST(pool_status, goes_running_failed_running_and_fails_claims_at_once_when_failed) {
  policy p = small_policy(4);
  p.failed_after = 5s;
  p.claim_timeout = 30s;
  core_harness h(p);
  EXPECT_EQ(h.state().status(), starting);
  h.backends({"a"});
  h.connect_ok();
  EXPECT_EQ(h.state().status(), running);
  // Every connection lost, every reconnect fails.
  for (int i = 0; i < 8; ++i) {
    core::slot* s = h.try_claim();
    if (!s) break;
    h.release(s, true);
  }
  test_claim& waiting = h.claim();
  for (int i = 0; i < 200 && h.state().status() != failed; ++i) {
    h.connect_fail();
    h.advance(200ms);
  }
  ASSERT_EQ(h.state().status(), failed);
  EXPECT_EQ(waiting.outcome, claim_outcome::pool_failed) << "a waiting claim fails with the pool";
  test_claim& now = h.claim();
  EXPECT_EQ(now.outcome, claim_outcome::pool_failed) << "at once, not at claim_timeout";
  h.advance(2s);
  h.connect_ok();
  EXPECT_EQ(h.state().status(), running);
  EXPECT_EQ(changes(h),
            (std::vector<change>{{starting, running}, {running, failed}, {failed, running}}));
  EXPECT_EQ(h.state().stats().claim_failures.pool_failed, 2u);
}

TEST(pool_status, wait_when_failed_lets_claims_wait_for_their_timeout) {
  policy p = small_policy(2);
  p.failed_after = 1s;
  p.wait_when_failed = true;
  core_harness h(p);
  h.backends({"a"});
  for (int i = 0; i < 100 && h.state().status() != failed; ++i) {
    h.connect_fail();
    h.advance(100ms);
  }
  ASSERT_EQ(h.state().status(), failed);
  test_claim& c = h.claim();
  EXPECT_FALSE(c.outcome) << "waits";
  h.connect_ok();
  EXPECT_EQ(c.outcome, claim_outcome::served);
}

TEST(pool_status, a_pool_whose_resolver_knows_nothing_fails_after_failed_after) {
  policy p = small_policy(2);
  p.failed_after = 3s;
  core_harness h(p);
  h.advance(2999ms);
  EXPECT_EQ(h.state().status(), starting);
  h.advance(1ms);
  EXPECT_EQ(h.state().status(), failed);
}

TEST(permanent_failure, backs_off_at_the_longest_delay_and_fails_the_pool_at_once) {
  policy p = small_policy(4);  // backoff 10 ms .. 1 s, no spread
  p.failed_after = 1h;
  core_harness h(p);
  h.backends({"a", "b"});
  EXPECT_EQ(h.connect_refuse("a"), 1);
  EXPECT_EQ(h.state().status(), starting) << "b may still connect";
  h.advance(999ms);
  EXPECT_FALSE(h.find(op_kind::connect, "a")) << "no retry before max_connection_backoff";
  h.advance(1ms);
  EXPECT_TRUE(h.find(op_kind::connect, "a"));
  h.connect_refuse();
  EXPECT_EQ(h.state().status(), failed) << "every known backend refused: at once";
  EXPECT_EQ(h.claim().outcome, claim_outcome::pool_failed);
  const auto stats = h.state().stats();
  EXPECT_GE(stats.backends.at("a").connect_failures, 2u);
}

TEST(max_connecting, holds_connects_in_flight_and_starts_the_rest_in_order) {
  policy p = small_policy(32);
  p.spares_wanted = 32;
  p.set_config.max_count = 32;
  p.max_connecting = 3;
  p.set_config.connect_timeout = 100ms;
  core_harness h(p);
  h.backends({"a"});
  h.finish(h.find(op_kind::connect)->id, true);  // the probe; then its share
  EXPECT_EQ(h.connects_pending(), 3u);
  EXPECT_EQ(h.state().connects_waiting(), 28u);
  h.advance(99ms);
  EXPECT_EQ(h.cancels(), 0u) << "a connect's time bound starts when it starts";
  for (int i = 0; i < 100 && h.connects_pending() > 0; ++i) {
    EXPECT_LE(h.connects_pending(), 3u);
    h.finish(h.find(op_kind::connect)->id, true);
  }
  EXPECT_EQ(h.idle(), 32u);
  EXPECT_EQ(h.state().connects_waiting(), 0u);
  EXPECT_EQ(h.state().stats().connections.opened, 32u);
}

TEST(drain, refuses_claims_says_drained_once_every_claim_is_back_and_stops_after_terminate) {
  core_harness h(small_policy(4));
  h.backends({"a"});
  h.connect_ok();
  test_claim& c1 = h.claim();
  test_claim& c2 = h.claim();
  ASSERT_EQ(c2.outcome, claim_outcome::served);
  h.begin_drain();
  EXPECT_EQ(h.state().status(), stopping);
  EXPECT_EQ(h.claim().outcome, claim_outcome::terminated);
  EXPECT_EQ(h.try_claim(), nullptr);
  EXPECT_EQ(h.state().claims_out(), 2u);
  h.release(c1);
  auto drained = [&] {
    return std::count_if(h.seen().begin(), h.seen().end(),
                         [](const auto& o) { return o.what == kind::drained; });
  };
  EXPECT_EQ(drained(), 0);
  h.release(c2);
  EXPECT_EQ(drained(), 1);
  h.terminate();
  EXPECT_EQ(h.state().status(), stopped);
  EXPECT_EQ(h.live_connections(), 0);
}

TEST(set_policy, a_smaller_cap_closes_idle_now_and_claimed_on_return_a_larger_grows) {
  policy p = small_policy(8);
  p.spares_wanted = 8;
  core_harness h(p);
  h.backends({"a"});
  h.connect_ok();
  h.connect_ok();
  ASSERT_EQ(h.idle(), 8u);
  std::vector<test_claim*> held;
  for (int i = 0; i < 4; ++i) held.push_back(&h.claim());
  policy smaller = p;
  smaller.max_slots = 2;
  smaller.spares_wanted = 2;
  h.set_policy(smaller);
  EXPECT_EQ(h.idle(), 0u) << "idle ones close first";
  EXPECT_EQ(h.state().total_slots(), 4u) << "claimed ones stay while claimed";
  for (auto* c : held) h.release(*c);
  EXPECT_LE(h.state().total_slots(), 2u);
  EXPECT_EQ(h.state().stats().connections.closed_for(close_reason::resized), 6u);
  policy larger = p;
  larger.max_slots = 12;
  larger.spares_wanted = 12;
  larger.set_config.max_count = 12;
  h.set_policy(larger);
  h.connect_ok();
  EXPECT_EQ(h.idle(), 12u) << "grows at once";
}

// The one table of claim outcomes: every failure has a counter of its own
// and a name and reason of its own; every outcome but served and cancelled
// is a qorb::errc whose message the category knows.
TEST(claim_outcomes, every_failure_has_its_own_counter_name_reason_and_code) {
  std::set<std::string> names, reasons;
  std::vector<std::uint64_t claim_failure_stats::*> counters;
  for (const auto& row : core::claim_outcomes) {
    EXPECT_TRUE(names.insert(row.name).second) << row.name;
    EXPECT_TRUE(reasons.insert(row.reason).second) << row.reason;
    if (row.outcome == claim_outcome::served) {
      EXPECT_EQ(row.counter, nullptr);
      continue;
    }
    ASSERT_NE(row.counter, nullptr) << row.name;
    EXPECT_EQ(std::find(counters.begin(), counters.end(), row.counter), counters.end())
        << row.name << ": a counter of its own";
    counters.push_back(row.counter);
    if (row.outcome == claim_outcome::cancelled) continue;
    ASSERT_EQ(row.kind, core::claim_outcome_info::code_kind::errc_value) << row.name;
    EXPECT_EQ(std::error_code(row.code).category().name(), std::string("qorb"));
    EXPECT_EQ(std::error_code(row.code).message().find("unknown"), std::string::npos) << row.name;
  }
  EXPECT_EQ(core::info(claim_outcome::pool_failed).code, errc::pool_failed);
}

}  // namespace
}  // namespace qorb::test
