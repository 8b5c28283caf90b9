// SPDX-License-Identifier: BSL-1.0
// A connection's life on the core, on a manual clock: its lifetime (with
// jitter), the idle timeout, min_idle, evict_all, and the count of
// connections opened and closed by reason.
#include <gtest/gtest.h>

#include "core/slot.hpp"
#include "core_support/harness.hpp"

#include <string>

namespace qorb::test {
namespace {

using namespace std::chrono_literals;
using core::claim_outcome;
using core::op_kind;

std::uint64_t closed_for(core_harness& h, close_reason r) {
  return h.state().stats().connections.closed_for(r);
}

// opened - closed is what the pool holds: every connection it counted
// opened is either alive or counted closed.
void expect_counts_balance(core_harness& h) {
  const auto c = h.state().stats().connections;
  EXPECT_EQ(c.opened - c.closed_total(), std::uint64_t(h.live_connections()));
}

TEST(lifetime, is_drawn_from_the_last_tenth_of_max_lifetime_by_default) {
  set_config cfg;
  EXPECT_FALSE(core::draw_lifetime(cfg, 0.5)) << "no max_lifetime: forever";
  cfg.max_lifetime = 100s;
  EXPECT_EQ(*core::draw_lifetime(cfg, 0.0), 100s);
  EXPECT_EQ(*core::draw_lifetime(cfg, 1.0), 90s);
  EXPECT_EQ(*core::draw_lifetime(cfg, 0.5), 95s);
  cfg.max_lifetime_jitter = 40s;
  EXPECT_EQ(*core::draw_lifetime(cfg, 1.0), 60s);
  cfg.max_lifetime_jitter = 0s;
  EXPECT_EQ(*core::draw_lifetime(cfg, 0.7), 100s);
}

TEST(lifetime, an_idle_connection_past_its_lifetime_is_replaced_and_the_backend_stays_online) {
  policy p = small_policy(4);
  p.spares_wanted = 4;
  p.set_config.max_lifetime = 60s;
  p.set_config.max_lifetime_jitter = 10s;
  core_harness h(p);
  h.backends({"a"});
  ASSERT_EQ(h.connect_ok(), 4);
  ASSERT_EQ(h.idle(), 4u);
  h.advance(49s);
  EXPECT_EQ(closed_for(h, close_reason::lifetime), 0u) << "no lifetime is shorter than 50 s";
  h.advance(11s);
  EXPECT_EQ(closed_for(h, close_reason::lifetime), 4u) << "every lifetime is at most 60 s";
  EXPECT_EQ(h.live_connections(), 0);
  EXPECT_TRUE(h.state().stats().backends.at("a").online) << "replacing: still online";
  EXPECT_EQ(h.connect_ok(), 4) << "each one replaced";
  EXPECT_EQ(h.idle(), 4u);
  EXPECT_EQ(h.state().stats().connections.opened, 8u);
  expect_counts_balance(h);
}

TEST(lifetime, connections_opened_together_expire_apart) {
  policy p = small_policy(16);
  p.spares_wanted = 16;
  p.set_config.max_count = 16;
  p.set_config.max_lifetime = 100s;  // jitter: 10 s
  core_harness h(p);
  h.backends({"a"});
  ASSERT_EQ(h.connect_ok(), 16);
  h.advance(90s);
  std::uint64_t last = closed_for(h, close_reason::lifetime);
  int steps_with_closes = 0;
  for (int i = 0; i < 10; ++i) {
    h.advance(1s);
    const std::uint64_t now = closed_for(h, close_reason::lifetime);
    if (now > last) ++steps_with_closes;
    last = now;
  }
  EXPECT_EQ(last, 16u);
  EXPECT_GE(steps_with_closes, 4) << "16 lifetimes spread over 10 s";
}

TEST(lifetime, a_claimed_connection_is_never_closed_while_claimed_only_when_it_returns) {
  policy p = small_policy(2);
  p.spares_wanted = 1;
  p.set_config.max_lifetime = 10s;
  p.set_config.max_lifetime_jitter = 0s;
  core_harness h(p);
  h.backends({"a"});
  h.connect_ok();
  test_claim& c = h.claim();
  ASSERT_EQ(c.outcome, claim_outcome::served);
  const int live = h.live_connections();
  h.advance(30s);
  EXPECT_EQ(c.s->state(), core::slot_state::claimed);
  EXPECT_NE(c.s->connection(), nullptr);
  const std::uint64_t before = closed_for(h, close_reason::lifetime);
  EXPECT_EQ(h.live_connections(), live) << "the claimed one is still open";
  h.release(c);
  EXPECT_EQ(closed_for(h, close_reason::lifetime), before + 1) << "closed as it came back";
  EXPECT_EQ(h.idle(), std::size_t(h.live_connections()));
  expect_counts_balance(h);
}

TEST(idle_timeout, closes_idle_connections_down_to_the_larger_of_min_idle_and_spares) {
  for (const std::size_t min_idle : {0u, 5u}) {
    SCOPED_TRACE(min_idle);
    policy p = small_policy(8);
    p.spares_wanted = 2;
    p.min_idle = min_idle;
    p.set_config.idle_timeout = 30s;
    p.rebalance_interval = 1h;  // the periodic rebalance must not do it
    core_harness h(p);
    h.backends({"a"});
    h.connect_ok();
    std::vector<test_claim*> held;
    for (int i = 0; i < 8; ++i) {
      held.push_back(&h.claim());
      h.connect_ok();
    }
    for (auto* c : held) ASSERT_EQ(c->outcome, claim_outcome::served);
    for (auto* c : held) h.release(*c);
    ASSERT_EQ(h.idle(), 8u);
    h.advance(29s);
    EXPECT_EQ(h.idle(), 8u) << "not unused long enough";
    h.advance(2s);
    const std::size_t keep = std::max<std::size_t>(min_idle, 2);
    EXPECT_EQ(h.idle(), keep);
    EXPECT_EQ(closed_for(h, close_reason::idle), 8 - keep);
    EXPECT_TRUE(h.pending().empty()) << "closed, not replaced";
    h.advance(5min);
    EXPECT_EQ(h.idle(), keep) << "what is kept stays";
    expect_counts_balance(h);
  }
}

TEST(idle_timeout, counts_from_the_last_use_so_a_busy_connection_stays) {
  policy p = small_policy(4);
  p.spares_wanted = 0;
  p.set_config.idle_timeout = 30s;
  p.set_config.max_count = 4;
  p.rebalance_interval = 1h;
  core_harness h(p);
  h.backends({"a", "b"});
  h.connect_ok();
  test_claim& c = h.claim();
  h.connect_ok();
  ASSERT_EQ(c.outcome, claim_outcome::served);
  const std::string used = c.s->set().target().name;
  h.advance(20s);
  h.release(c);
  h.advance(20s);  // 40 s after connect, 20 s after its use
  EXPECT_EQ(h.slots_of(used), 1u);
  EXPECT_EQ(closed_for(h, close_reason::idle), 0u) << "each backend keeps its last connection";
}

TEST(min_idle, keeps_that_many_idle_while_others_are_claimed) {
  policy p = small_policy(8);
  p.spares_wanted = 0;
  p.min_idle = 3;
  core_harness h(p);
  h.backends({"a"});
  h.connect_ok();
  h.connect_ok();
  EXPECT_EQ(h.idle(), 3u);
  test_claim& c1 = h.claim();
  test_claim& c2 = h.claim();
  h.connect_ok();
  ASSERT_EQ(c1.outcome, claim_outcome::served);
  ASSERT_EQ(c2.outcome, claim_outcome::served);
  EXPECT_EQ(h.idle(), 3u) << "topped up while two are claimed";
  EXPECT_EQ(h.claimed(), 2u);
}

TEST(evict_all, closes_idle_connections_now_and_claimed_ones_when_they_return) {
  policy p = small_policy(4);
  p.spares_wanted = 3;
  core_harness h(p);
  h.backends({"a"});
  h.connect_ok();
  h.connect_ok();
  test_claim& c = h.claim();
  ASSERT_EQ(c.outcome, claim_outcome::served);
  h.connect_ok();
  const std::size_t idle = h.idle();
  ASSERT_EQ(idle, 3u);
  h.evict_all();
  EXPECT_EQ(closed_for(h, close_reason::evicted), idle) << "every idle one, now";
  EXPECT_NE(c.s->connection(), nullptr) << "the claimed one stays while claimed";
  EXPECT_TRUE(h.state().stats().backends.at("a").online);
  EXPECT_EQ(h.connect_ok(), int(idle)) << "replacements opened";
  h.release(c);
  EXPECT_EQ(closed_for(h, close_reason::evicted), idle + 1) << "closed as it came back";
  EXPECT_EQ(h.connect_ok(), 1);
  h.evict_all();  // evicts only what is older than this call
  EXPECT_EQ(closed_for(h, close_reason::evicted), 2 * idle + 2);
  h.connect_ok();
  test_claim& fresh = h.claim();
  ASSERT_EQ(fresh.outcome, claim_outcome::served);
  h.release(fresh);
  EXPECT_EQ(closed_for(h, close_reason::evicted), 2 * idle + 2) << "a new connection is kept";
  expect_counts_balance(h);
}

TEST(connection_counts, name_each_reason_a_connection_closed_for) {
  core_harness h(small_policy(2));
  h.backends({"a"});
  h.connect_ok();
  test_claim& c = h.claim();
  h.release(c, true);
  EXPECT_EQ(closed_for(h, close_reason::discarded), 1u);
  h.backends({});
  EXPECT_EQ(closed_for(h, close_reason::removed), 1u);
  expect_counts_balance(h);
  EXPECT_STREQ(to_string(close_reason::check_failed), "check_failed");
  EXPECT_STREQ(to_string(close_reason::terminated), "terminated");
}

}  // namespace
}  // namespace qorb::test
