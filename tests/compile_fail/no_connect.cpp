// SPDX-License-Identifier: BSL-1.0
// Compile-fail case (tests/compile_fail/CMakeLists.txt): must not compile, with the message
// below, in one error.
// expect: no `connect`; write `asio::awaitable<connection_type> connect\(const qorb::backend& b\)`
// errors: 1
#define PROBE_HOOKS \
  asio::awaitable<void> is_valid(connection_type& c);  // and no connect at all
#include "connector.hpp"

int main() { build_pool(); }
