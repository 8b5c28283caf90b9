// SPDX-License-Identifier: BSL-1.0
// Compile-fail case (tests/compile_fail/CMakeLists.txt): must not compile, with the message
// below.
// expect: `is_valid` does not have the hook's signature.*expected `asio::awaitable<void> is_valid\(connection_type& c\)`
#define PROBE_HOOKS \
  asio::awaitable<connection_type> connect(const qorb::backend& b); \
  asio::awaitable<bool> is_valid(connection_type& c);  // the pool would ignore it
#include "connector.hpp"

int main() { build_pool(); }
