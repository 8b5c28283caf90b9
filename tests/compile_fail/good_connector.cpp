// SPDX-License-Identifier: BSL-1.0
// Compile-fail case (tests/compile_fail/CMakeLists.txt): a connector with every hook
// right must compile.
// expect: compiles
#define PROBE_HOOKS \
  asio::awaitable<connection_type> connect(const qorb::backend& b); \
  asio::awaitable<void> is_valid(connection_type& c); \
  asio::awaitable<void> on_acquire(connection_type& c); \
  asio::awaitable<void> on_recycle(const connection_type& c); \
  asio::awaitable<void> ping(connection_type& c);  // not hook-like: a helper
#include "connector.hpp"

int main() { build_pool(); }
