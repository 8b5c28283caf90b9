// SPDX-License-Identifier: BSL-1.0
// The demo's narration: every line it prints goes out at once.
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <utility>

namespace qorb::demo {

// Prints a line at once (the output may be a pipe read by a test).
template <class... Args>
void say(fmt::format_string<Args...> format, Args&&... args) {
  std::fputs(fmt::format(format, std::forward<Args>(args)...).c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

}  // namespace qorb::demo
