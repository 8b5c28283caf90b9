// SPDX-License-Identifier: BSL-1.0
// The observations a pool_observer is built on, on a manual clock: every
// connection the core closes is observed with its close_reason and its
// backend, a return says whether it was a discard, and neither is recorded
// unless traced (the claim path records nothing for nobody).
#include <gtest/gtest.h>

#include "core/slot.hpp"
#include "core_support/harness.hpp"

#include <algorithm>
#include <string>
#include <vector>

namespace qorb::test {
namespace {

using core::claim_outcome;
using kind = core::observation::kind;

std::vector<core::observation> of_kind(const core_harness& h, kind k) {
  std::vector<core::observation> out;
  for (const auto& o : h.seen()) {
    if (o.what == k) out.push_back(o);
  }
  return out;
}

TEST(observations, each_closed_connection_names_its_reason_slot_and_backend) {
  policy p = small_policy(4);
  p.spares_wanted = 2;
  core_harness h(p);
  h.backends({"a"});
  ASSERT_EQ(h.connect_ok(), 2);
  test_claim& c = h.claim();
  ASSERT_EQ(c.outcome, claim_outcome::served);
  const std::uint64_t discarded_slot = c.s->id();
  h.release(c, true);
  h.evict_all();
  ASSERT_GE(h.connect_ok(), 1) << "replacements";
  h.terminate();
  std::vector<close_reason> reasons;
  for (const auto& o : of_kind(h, kind::closed)) {
    ASSERT_NE(o.set, nullptr);
    EXPECT_EQ(o.set->name, "a");
    reasons.push_back(o.closed_for);
  }
  ASSERT_GE(reasons.size(), 2u);
  EXPECT_EQ(reasons.front(), close_reason::discarded);
  EXPECT_EQ(of_kind(h, kind::closed).front().slot, discarded_slot);
  EXPECT_EQ(reasons[1], close_reason::evicted) << "the idle one, evicted";
  // One observation per connection counted closed, reason for reason.
  const auto counts = h.state().stats().connections;
  EXPECT_EQ(reasons.size(), counts.closed_total());
  for (std::size_t r = 0; r < close_reason_count; ++r) {
    EXPECT_EQ(std::uint64_t(std::count(reasons.begin(), reasons.end(), close_reason(r))),
              counts.closed[r])
        << to_string(close_reason(r));
  }
  EXPECT_EQ(reasons.back(), close_reason::terminated);
}

TEST(observations, a_return_names_its_backend_and_whether_it_was_a_discard) {
  core_harness h(small_policy(2));
  h.backends({"a"});
  h.connect_ok();
  test_claim& kept = h.claim();
  h.release(kept);
  h.finish_all(core::op_kind::on_recycle, true);
  test_claim& broken = h.claim();
  ASSERT_EQ(broken.outcome, claim_outcome::served);
  h.release(broken, true);
  const auto returns = of_kind(h, kind::handle_returned);
  ASSERT_EQ(returns.size(), 2u);
  EXPECT_FALSE(returns[0].flag);
  EXPECT_TRUE(returns[1].flag);
  for (const auto& o : returns) {
    ASSERT_NE(o.set, nullptr);
    EXPECT_EQ(o.set->name, "a");
  }
}

TEST(observations, closes_and_returns_are_recorded_only_when_traced) {
  core_harness h(small_policy(2));
  h.tracing = false;
  h.backends({"a"});
  h.connect_ok();
  test_claim& c = h.claim();
  h.release(c, true);
  h.terminate();
  EXPECT_GE(h.state().stats().connections.closed_total(), 1u);
  EXPECT_TRUE(of_kind(h, kind::closed).empty());
  EXPECT_TRUE(of_kind(h, kind::handle_returned).empty());
  EXPECT_TRUE(of_kind(h, kind::claim_started).empty());
}

}  // namespace
}  // namespace qorb::test
