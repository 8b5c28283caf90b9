// SPDX-License-Identifier: BSL-1.0
// Compile-fail case (tests/compile_fail/CMakeLists.txt): must not compile, with the message
// below, in one error.
// expect: `connect` does not have the hook's signature; expected `asio::awaitable<connection_type> connect\(const qorb::backend& b\)`
// errors: 1
#define PROBE_HOOKS \
  connection_type connect(const qorb::backend& b);  // must be a coroutine
#include "connector.hpp"

int main() { build_pool(); }
