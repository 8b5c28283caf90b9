// SPDX-License-Identifier: BSL-1.0
// README "Use it" is a whole program (extracted from README.md at build
// time, compiled with the suite's warnings); here it runs against real echo
// servers on loopback, as its text says: it claims, echoes a line, and
// terminates the pool, which ends io.run().
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <qorb/backend.hpp>

#include <string>

#include "support/echo_server.hpp"
#include "support/wait.hpp"

namespace qorb::test {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

TEST(ReadmeUseIt, EchoesThroughThePoolAndEndsWhenThePoolTerminates) {
  echo_server first;
  echo_server second;
  std::string out;
  // Returning at all (within the bound) shows io.run() ends once the pool
  // terminated.
  const int rc = run_command(
      {README_USE_IT_PATH, qorb::to_string(first.endpoint()), qorb::to_string(second.endpoint())}, &out, 60s);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_THAT(out, ::testing::ContainsRegex("echoed by 127\\.0\\.0\\.1:[0-9]+: hello"));
  EXPECT_THAT(out, ::testing::Not(HasSubstr("claim failed")));
  EXPECT_GE(first.accepted() + second.accepted(), 1u) << "the pool connected to the echo servers";
}

TEST(ReadmeUseIt, RejectsAnArgumentThatIsNoAddress) {
  std::string out;
  EXPECT_EQ(run_command({README_USE_IT_PATH, "not-an-address"}, &out, 30s), 2) << out;
  EXPECT_THAT(out, HasSubstr("not ip:port: not-an-address"));
}

}  // namespace
}  // namespace qorb::test
