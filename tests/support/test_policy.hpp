// SPDX-License-Identifier: BSL-1.0
// A policy for tests: intervals short enough that reconnects, rebalances,
// checks and timeouts all happen within a test's time.
#pragma once

#include <qorb/policy.hpp>

#include <chrono>

namespace qorb::test {

/// qorb's defaults, fast: claims wait up to 5 s, reconnects back off from
/// 5 ms to 50 ms, a periodic rebalance every 100 ms, checks time out after
/// 200 ms. Idle connections keep the default health_interval (30 s, so
/// practically never in a test). A test that needs other values changes
/// them on the returned policy.
inline policy quick_policy() {
  using namespace std::chrono_literals;
  policy p;
  p.claim_timeout = 5s;
  p.rebalance_interval = 100ms;
  p.set_config.min_connection_backoff = 5ms;
  p.set_config.max_connection_backoff = 50ms;
  p.set_config.spread = 2ms;
  p.set_config.health_check_timeout = 200ms;
  return p;
}

}  // namespace qorb::test
