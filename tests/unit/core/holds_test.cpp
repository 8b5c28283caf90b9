// SPDX-License-Identifier: BSL-1.0
// Who holds the connections, on a manual clock: holders oldest first with
// their ages and claim sites, the hold warning (once per hold, at its
// limit, for a limit set later too), and the claim sites' wait and hold
// figures, bounded at 32 sites plus "other".
#include <gtest/gtest.h>

#include "core/claim_sites.hpp"
#include "core_support/harness.hpp"

#include <source_location>
#include <utility>

namespace qorb::test {
namespace {

using namespace std::chrono_literals;
using core::observation;

std::source_location site_a() { return std::source_location::current(); }
std::source_location site_b() { return std::source_location::current(); }
template <int N>
std::source_location numbered_site() {
  return std::source_location::current();  // one place, a distinct function per N
}
template <int... N>
std::array<std::source_location, sizeof...(N)> numbered_sites(std::integer_sequence<int, N...>) {
  return {numbered_site<N>()...};
}

void connect(core_harness& h, std::size_t connections) {
  h.backends({"a"});
  for (std::size_t i = 0; i < connections && h.connect_ok("a") != 0; ++i) {
  }
}

std::size_t warnings_seen(const core_harness& h) {
  std::size_t n = 0;
  for (const auto& o : h.seen()) n += o.what == observation::kind::hold_warning;
  return n;
}

TEST(holds, holders_are_listed_oldest_first_with_age_backend_and_site) {
  auto p = small_policy(4);
  p.spares_wanted = 4;
  p.time_holds = true;
  core_harness h(p);
  connect(h, 4);
  ASSERT_EQ(h.idle(), 4u);
  core::slot* first = h.try_claim(site_a());
  ASSERT_NE(first, nullptr);
  h.advance(2s);
  core::slot* second = h.try_claim(site_b());
  ASSERT_NE(second, nullptr);
  h.advance(500ms);

  auto held = h.state().holders();
  ASSERT_EQ(held.size(), 2u);
  EXPECT_EQ(held[0].slot, first->id());
  EXPECT_TRUE(held[0].timed);
  EXPECT_EQ(held[0].age, 2500ms);
  EXPECT_EQ(held[0].backend, "a");
  EXPECT_EQ(held[0].site.line, site_a().line());
  EXPECT_EQ(held[0].site.function, site_a().function_name());
  EXPECT_EQ(held[1].slot, second->id());
  EXPECT_EQ(held[1].age, 500ms);
  EXPECT_EQ(held[1].site.line, site_b().line());
  EXPECT_LT(held[0].claim, held[1].claim);
  EXPECT_EQ(h.state().stats().holders.size(), 2u);

  h.release(first);
  held = h.state().holders();
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].slot, second->id());
  EXPECT_EQ(h.state().holders(0).size(), 0u);
}

TEST(holds, untimed_holders_are_listed_in_claim_order_without_an_age) {
  auto p = small_policy(4);
  p.spares_wanted = 4;
  core_harness h(p);
  connect(h, 4);
  core::slot* first = h.try_claim(site_a());
  h.advance(2s);
  core::slot* second = h.try_claim(site_b());
  ASSERT_TRUE(first && second);
  const auto held = h.state().holders();
  ASSERT_EQ(held.size(), 2u);
  EXPECT_EQ(held[0].slot, first->id());
  EXPECT_EQ(held[0].site.line, site_a().line());
  EXPECT_EQ(held[1].slot, second->id());
  for (const auto& x : held) {
    EXPECT_FALSE(x.timed);
    EXPECT_EQ(x.age, 0s);
  }
  h.release(first);
  EXPECT_EQ(h.state().holders().size(), 1u);
  // Claims are still counted per site; holds are not timed.
  for (const auto& row : h.state().stats().sites) {
    EXPECT_EQ(row.wait.count, 1u);
    EXPECT_EQ(row.wait.counts[0], 1u) << "served at once: a wait of 0";
    EXPECT_EQ(row.hold.count, 0u);
  }
  // Turned on later: the holds out stay untimed, new ones are timed.
  p.time_holds = true;
  h.set_policy(p);
  core::slot* third = h.try_claim(site_a());
  h.advance(1s);
  const auto now_held = h.state().holders();
  ASSERT_EQ(now_held.size(), 2u);
  EXPECT_EQ(now_held[1].slot, third->id());
  EXPECT_TRUE(now_held[1].timed);
  EXPECT_EQ(now_held[1].age, 1s);
  h.release(second);
  h.release(third);
  EXPECT_TRUE(h.state().holders().empty());
}

TEST(holds, a_claim_served_after_waiting_is_held_from_when_it_was_served) {
  auto p = small_policy(1);
  p.spares_wanted = 1;
  p.time_holds = true;
  core_harness h(p);
  connect(h, 1);
  core::slot* s = h.try_claim(site_a());
  ASSERT_NE(s, nullptr);
  test_claim& waiter = h.claim(5s, site_b());
  h.advance(300ms);
  h.release(s);
  ASSERT_EQ(waiter.outcome, core::claim_outcome::served);
  h.advance(100ms);
  const auto held = h.state().holders();
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].age, 100ms);
  EXPECT_EQ(held[0].site.line, site_b().line());
  // The sites: a's claim held 300 ms and waited 0; b's waited 300 ms.
  const auto sites = h.state().stats().sites;
  ASSERT_EQ(sites.size(), 2u);
  for (const auto& row : sites) {
    ASSERT_EQ(row.wait.count, 1u);
    if (row.site.line == site_a().line()) {
      EXPECT_DOUBLE_EQ(row.wait.sum_s, 0.0);
      ASSERT_EQ(row.hold.count, 1u);
      EXPECT_NEAR(row.hold.sum_s, 0.3, 1e-9);
    } else {
      EXPECT_EQ(row.site.line, site_b().line());
      EXPECT_NEAR(row.wait.sum_s, 0.3, 1e-9);
      EXPECT_EQ(row.hold.count, 0u) << "still held";
    }
  }
}

TEST(holds, a_hold_past_the_limit_is_warned_about_once_at_its_limit) {
  auto p = small_policy(2);
  p.spares_wanted = 2;
  p.hold_warning = 10s;
  core_harness h(p);
  connect(h, 2);
  core::slot* kept = h.try_claim(site_a());
  core::slot* brief = h.try_claim(site_b());
  ASSERT_TRUE(kept && brief);
  h.advance(5s);
  h.release(brief);  // back in time: never warned about
  h.advance(5s - 1ms);
  EXPECT_EQ(warnings_seen(h), 0u);
  h.advance(1ms);
  ASSERT_EQ(warnings_seen(h), 1u);
  const observation* w = nullptr;
  for (const auto& o : h.seen()) {
    if (o.what == observation::kind::hold_warning) w = &o;
  }
  EXPECT_EQ(w->slot, kept->id());
  EXPECT_EQ(w->delay, 10s);
  EXPECT_EQ(w->site.line(), site_a().line());
  ASSERT_TRUE(w->set);
  EXPECT_EQ(w->set->name, "a");
  h.advance(1h);
  EXPECT_EQ(warnings_seen(h), 1u) << "once per hold";
  EXPECT_EQ(h.state().stats().hold_warnings, 1u);
  EXPECT_TRUE(h.state().holders()[0].warned);
  // Returned and claimed again: a new hold, warned about again.
  h.release(kept);
  ASSERT_NE(h.try_claim(site_a()), nullptr);
  h.advance(10s);
  EXPECT_EQ(warnings_seen(h), 2u);
}

TEST(holds, a_limit_set_later_warns_about_timed_holds_already_out) {
  auto p = small_policy(3);
  p.spares_wanted = 3;
  p.time_holds = true;
  core_harness h(p);
  connect(h, 3);
  ASSERT_NE(h.try_claim(site_a()), nullptr);
  h.advance(1min);
  EXPECT_EQ(warnings_seen(h), 0u) << "no limit: no warning";
  p.hold_warning = 30s;
  h.set_policy(p);
  h.advance(1ms);
  EXPECT_EQ(warnings_seen(h), 1u);
  ASSERT_NE(h.try_claim(site_b()), nullptr);
  h.advance(30s);
  EXPECT_EQ(warnings_seen(h), 2u);
}

TEST(holds, holds_made_before_holds_were_timed_are_never_warned_about) {
  auto p = small_policy(2);
  p.spares_wanted = 2;
  core_harness h(p);
  connect(h, 2);
  ASSERT_NE(h.try_claim(site_a()), nullptr);  // untimed: no clock was read
  p.hold_warning = 30s;
  h.set_policy(p);
  ASSERT_NE(h.try_claim(site_b()), nullptr);
  h.advance(1h);
  EXPECT_EQ(warnings_seen(h), 1u) << "only the timed hold";
}

TEST(claim_sites, keeps_32_sites_and_counts_the_rest_as_other) {
  core::claim_sites sites;
  const auto many = numbered_sites(std::make_integer_sequence<int, 40>{});
  for (std::size_t i = 0; i < many.size(); ++i) {
    const auto row = sites.index(many[i]);
    EXPECT_EQ(row, i < core::claim_sites::capacity ? i : core::claim_sites::other);
    sites.waited(row, 0.001);
    if (i == 3) sites.waited(row, 0.002);  // the busiest
  }
  EXPECT_EQ(sites.index(many[5]), 5u) << "a known site keeps its row";
  const auto rows = sites.stats();
  ASSERT_EQ(rows.size(), 33u);
  EXPECT_EQ(rows.front().wait.count, 2u) << "busiest first";
  EXPECT_TRUE(rows.back().other);
  EXPECT_EQ(rows.back().site.label(), "other");
  EXPECT_EQ(rows.back().wait.count, 8u);
  EXPECT_EQ(core::claim_sites::describe(site_a()).label(),
            std::string(site_a().file_name()) + ":" + std::to_string(site_a().line()));
}

}  // namespace
}  // namespace qorb::test
