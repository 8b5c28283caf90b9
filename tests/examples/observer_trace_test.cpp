// SPDX-License-Identifier: BSL-1.0
// observer_trace as a user runs it: its pool's events printed as trace
// lines, a span per claim (served, waited, failed), connects that succeed
// and fail, closes with their reason, and the status.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "support/wait.hpp"

namespace qorb::test {
namespace {

using namespace std::chrono_literals;

bool has(const std::string& out, const std::string& pattern) {
  return std::regex_search(out, std::regex(pattern));
}

TEST(observer_trace, prints_a_span_per_claim_and_the_pools_connection_events) {
  std::string out;
  const int rc = run_command({OBSERVER_TRACE_PATH, "--claimers", "3"}, &out, 60s);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(has(out, R"(pool trace  connect 127\.0\.0\.1:\d+ slot \d+ ok in [0-9.]+ ms)")) << out;
  EXPECT_TRUE(has(out, R"(connect 127\.0\.0\.1:\d+ slot \d+ failed in ([0-9.]+|\?) ms: .*refused)"))
      << out;
  EXPECT_TRUE(has(out, R"(backend 127\.0\.0\.1:\d+ online)")) << out;
  EXPECT_TRUE(has(out, R"(span claim#1 started)")) << out;
  EXPECT_TRUE(has(out, R"(span claim#1 served after [0-9.]+ ms by \S+ slot \d+)")) << out;
  EXPECT_TRUE(has(out, R"(span claim#1 released after [0-9.]+ ms held)")) << out;
  // 3 claimers x 2 claims on the first lines, then the ones that fill the
  // pool and the one that times out.
  EXPECT_TRUE(has(out, R"(span claim#\d+ failed after [0-9.]+ ms: )")) << out;
  EXPECT_TRUE(has(out, R"(closed 127\.0\.0\.1:\d+ slot \d+: terminated)")) << out;
  EXPECT_TRUE(has(out, R"(status starting -> running)")) << out;
  EXPECT_TRUE(has(out, R"(status running -> stopped)")) << out;
}

TEST(observer_trace, rejects_a_bad_argument) {
  std::string out;
  EXPECT_EQ(run_command({OBSERVER_TRACE_PATH, "--nonsense"}, &out, 30s), 2) << out;
}

}  // namespace
}  // namespace qorb::test
