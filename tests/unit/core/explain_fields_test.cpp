// SPDX-License-Identifier: BSL-1.0
// The backend_stats fields pool::explain() reads that only the core can
// fill (retry_in, offline_for, failed_permanently), on a manual clock.
#include <gtest/gtest.h>

#include "core_support/harness.hpp"

namespace qorb::test {
namespace {

using namespace std::chrono_literals;

backend_stats row(core_harness& h, const std::string& name) {
  return h.state().stats().backends.at(name);
}

TEST(explain_fields, offline_for_counts_from_the_backends_arrival_and_clears_once_online) {
  core_harness h(small_policy(1));
  h.backends({"a"});
  h.advance(250ms);
  auto b = row(h, "a");
  ASSERT_TRUE(b.offline_for);
  EXPECT_EQ(*b.offline_for, 250ms);
  EXPECT_FALSE(b.online);
  EXPECT_EQ(h.connect_ok("a"), 1);
  b = row(h, "a");
  EXPECT_TRUE(b.online);
  EXPECT_FALSE(b.offline_for);
  EXPECT_FALSE(b.retry_in);
}

TEST(explain_fields, offline_for_restarts_when_the_backend_goes_offline_again) {
  core_harness h(small_policy(1));
  h.backends({"a"});
  h.advance(5s);
  ASSERT_EQ(h.connect_ok("a"), 1);
  auto& c = h.claim();
  ASSERT_TRUE(c.s);
  h.advance(2s);
  h.release(c, true);  // the only connection broken: the backend is offline
  h.advance(30ms);
  const auto b = row(h, "a");
  EXPECT_FALSE(b.online);
  ASSERT_TRUE(b.offline_for);
  EXPECT_EQ(*b.offline_for, 30ms) << "from going offline, not from the backend's arrival";
}

TEST(explain_fields, retry_in_says_how_long_a_backing_off_backend_waits) {
  core_harness h(small_policy(1));  // backoff from 10 ms, no spread
  h.backends({"a"});
  EXPECT_FALSE(row(h, "a").retry_in) << "connecting, not backing off";
  ASSERT_EQ(h.connect_fail("a"), 1);
  auto b = row(h, "a");
  ASSERT_TRUE(b.retry_in);
  EXPECT_EQ(*b.retry_in, 10ms);
  EXPECT_FALSE(b.failed_permanently);
  h.advance(4ms);
  b = row(h, "a");
  ASSERT_TRUE(b.retry_in);
  EXPECT_EQ(*b.retry_in, 6ms);
}

TEST(explain_fields, a_permanent_failure_is_said_with_the_longest_retry) {
  core_harness h(small_policy(1));  // max backoff 1 s
  h.backends({"a"});
  ASSERT_EQ(h.connect_refuse("a"), 1);
  const auto b = row(h, "a");
  EXPECT_TRUE(b.failed_permanently);
  ASSERT_TRUE(b.retry_in);
  EXPECT_EQ(*b.retry_in, 1s);
}

}  // namespace
}  // namespace qorb::test
