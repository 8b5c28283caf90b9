// SPDX-License-Identifier: BSL-1.0
// The one rule for a test that needs an outside tool which
// `scripts/install-deps.sh test` installs (nginx, tmux, etcd, bpftrace, ...):
// without the tool the test skips and says which tool is missing; with
// QORB_REQUIRE_TOOLS=1 in the environment (scripts/test.sh sets it, so CI
// runs with it) it fails instead, naming the tool, so that a suite cannot go
// green having run none of those tests. A skip that is a choice (no root, too
// few descriptors, a kernel that refuses to attach) is not a missing tool:
// such tests call GTEST_SKIP() themselves, with their reason.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <string_view>

namespace qorb::test {

/// Whether a missing tool is a failure (QORB_REQUIRE_TOOLS=1) or a skip.
inline bool tools_required() {
  const char* v = std::getenv("QORB_REQUIRE_TOOLS");
  return v != nullptr && std::string_view(v) == "1";
}

/// How a missing tool ends a test: skipped, or failed when required.
inline ::testing::TestPartResult::Type missing_tool_result() {
  return tools_required() ? ::testing::TestPartResult::kFatalFailure
                          : ::testing::TestPartResult::kSkip;
}

/// What a missing tool's skip or failure says.
inline std::string missing_tool_message(std::string_view tool) {
  std::string m(tool);
  m += " is not installed (scripts/install-deps.sh test adds it)";
  if (tools_required()) m += "; QORB_REQUIRE_TOOLS=1 makes that a failure";
  return m;
}

}  // namespace qorb::test

/// Ends the test (or its SetUp) because `tool` is missing: a skip, or a
/// fatal failure under QORB_REQUIRE_TOOLS=1. More detail may be streamed
/// after it, as after GTEST_SKIP().
#define QORB_MISSING_TOOL(tool)                                           \
  return GTEST_MESSAGE_(::qorb::test::missing_tool_message(tool).c_str(), \
                        ::qorb::test::missing_tool_result())
