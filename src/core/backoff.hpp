// SPDX-License-Identifier: BSL-1.0
// Reconnect delays for one slot.
#pragma once

#include <qorb/policy.hpp>

namespace qorb::core {

/// After the n-th failure in a row: min * 2^(n-1), capped at max, plus a
/// random share of `spread`. The slot decides when a streak ends (reset).
class backoff {
 public:
  /// Counts a failure and gives the delay before the next attempt, within
  /// [min_connection_backoff, max_connection_backoff + spread).
  /// `random01` is in [0, 1).
  duration next(const set_config& cfg, double random01) noexcept;
  /// A failure that will not pass (a permanent error): the longest delay
  /// at once, and every failure after it too until a reset.
  duration give_up(const set_config& cfg, double random01) noexcept {
    failures_ = 64;
    return next(cfg, random01);
  }
  void reset() noexcept { failures_ = 0; }
  unsigned failures() const noexcept { return failures_; }

 private:
  unsigned failures_ = 0;
};

}  // namespace qorb::core
