// SPDX-License-Identifier: BSL-1.0
// core::failure_window: failures over a sliding window, forgotten a bucket
// (a tenth of the span) at a time.
#include <gtest/gtest.h>

#include "core/failure_window.hpp"

namespace qorb::core {
namespace {

using namespace std::chrono_literals;

const time_point t0{std::chrono::seconds(100)};  // a bucket boundary for these spans

TEST(failure_window, counts_failures_inside_the_window_only) {
  failure_window w(1000ms);  // ten 100 ms buckets
  w.add(t0);
  w.add(t0 + 50ms);
  w.add(t0 + 450ms);
  EXPECT_EQ(w.count(t0 + 500ms), 3u);
  EXPECT_EQ(w.count(t0 + 1050ms), 1u) << "the first two slid out";
  EXPECT_EQ(w.count(t0 + 1500ms), 0u);
  w.add(t0 + 5000ms);
  EXPECT_EQ(w.count(t0 + 5000ms), 1u) << "a reused bucket starts from zero";
}

TEST(failure_window, starts_empty) {
  failure_window w(1000ms);
  EXPECT_EQ(w.count(t0), 0u);
  EXPECT_EQ(w.count(time_point{}), 0u);
}

TEST(failure_window, a_failure_is_forgotten_a_whole_bucket_at_a_time) {
  failure_window w(1000ms);
  w.add(t0 + 99ms);  // the last instant of the first bucket
  EXPECT_EQ(w.count(t0 + 999ms), 1u) << "nine buckets on: still in";
  EXPECT_EQ(w.count(t0 + 1000ms), 0u) << "ten buckets on: out, though only 901 ms passed";
  failure_window v(1000ms);
  v.add(t0);
  EXPECT_EQ(v.count(t0 + 999ms), 1u) << "999 ms later: in";
  EXPECT_EQ(v.count(t0 + 1000ms), 0u);
}

TEST(failure_window, counts_every_bucket_of_the_window) {
  failure_window w(1000ms);
  for (int i = 0; i < 10; ++i) {
    for (int k = 0; k <= i; ++k) w.add(t0 + i * 100ms);  // i + 1 failures in bucket i
  }
  EXPECT_EQ(w.count(t0 + 950ms), 55u);
  // Each step forgets the oldest bucket: 1, then 2, then 3 ...
  EXPECT_EQ(w.count(t0 + 1000ms), 54u);
  EXPECT_EQ(w.count(t0 + 1100ms), 52u);
  EXPECT_EQ(w.count(t0 + 1200ms), 49u);
  EXPECT_EQ(w.count(t0 + 1800ms), 10u) << "only the last bucket left";
  EXPECT_EQ(w.count(t0 + 1900ms), 0u);
}

TEST(failure_window, the_same_ring_slot_a_window_later_does_not_add_up) {
  failure_window w(1000ms);
  w.add(t0);
  w.add(t0);
  w.add(t0 + 1000ms);  // the same one of the ten buckets, a window later
  EXPECT_EQ(w.count(t0 + 1000ms), 1u);
}

TEST(failure_window, long_after_the_last_failure_nothing_counts) {
  failure_window w(1000ms);
  for (int i = 0; i < 10; ++i) w.add(t0 + i * 100ms);
  EXPECT_EQ(w.count(t0 + 1h), 0u) << "stale buckets are not read as current";
  EXPECT_EQ(w.count(t0 + 1h + 50ms), 0u);
}

TEST(failure_window, a_span_shorter_than_ten_ticks_still_works) {
  failure_window w(duration(5));
  w.add(t0);
  EXPECT_EQ(w.count(t0), 1u);
  EXPECT_EQ(w.count(t0 + 1h), 0u);
}

TEST(failure_window, many_failures_in_one_bucket) {
  failure_window w(2s);
  for (int i = 0; i < 10000; ++i) w.add(t0 + 10ms);
  EXPECT_EQ(w.count(t0 + 100ms), 10000u);
}

}  // namespace
}  // namespace qorb::core
