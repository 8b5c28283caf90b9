// SPDX-License-Identifier: BSL-1.0
// What the core asks of the world: the time now and a random number. The
// driver answers from the system's monotonic clock and a seeded engine; the
// simulator and the tests from a manual clock and a fixed seed.
#pragma once

#include <qorb/detail/core_port.hpp>

namespace qorb::core {

class environment {
 public:
  virtual ~environment() = default;
  virtual time_point now() = 0;
  /// The time now, to a few milliseconds (the driver's coarse clock): read
  /// on every claim and return for hold times, where now() would cost too
  /// much. The same clock as now(), which may be a few milliseconds ahead.
  virtual time_point coarse_now() { return now(); }
  /// Uniform in [0, 1).
  virtual double random01() = 0;
};

/// `d * factor`, for the random spreads.
inline duration scaled(duration d, double factor) noexcept {
  const double x = double(d.count()) * factor;
  // duration::max() as a double rounds up to 2^63, which does not convert
  // back: saturate.
  if (x >= double(duration::max().count())) return duration::max();
  return std::chrono::duration_cast<duration>(std::chrono::duration<double, duration::period>(x));
}

}  // namespace qorb::core
