// SPDX-License-Identifier: BSL-1.0
// Compile-fail case (tests/compile_fail/CMakeLists.txt): must not compile, with the message
// below.
// (The expect line and the macro are kept as written: one line each.)
// clang-format off
// expect: `watch` does not have the hook's signature.*expected `asio::awaitable<void> watch\(connection_type& c\)`
#define PROBE_HOOKS \
  asio::awaitable<connection_type> connect(const qorb::backend& b); \
  asio::awaitable<bool> watch(connection_type& c);
// clang-format on
#include "connector.hpp"

int main() { build_pool(); }
