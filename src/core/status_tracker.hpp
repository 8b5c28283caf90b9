// SPDX-License-Identifier: BSL-1.0
// Where the pool is in its life (cueball's states), decided from what the
// pool knows after an event:
//
//   starting --a backend online--> running --terminate, claims out--> stopping
//      |                            ^   |                                |
//      |    none online for failed_after, every known backend's          v
//      +----connects failing (or none known); or every known one's --> failed ... stopped
//           last connect refused permanently (at once)                (no claim out)
//   failed --a backend online--> running;  async_drain: stopping until its end.
#pragma once

#include <qorb/policy.hpp>
#include <qorb/stats.hpp>

#include <qorb/detail/core_port.hpp>

#include <cstddef>
#include <optional>

namespace qorb::core {

/// What the status is decided from.
struct status_inputs {
  std::size_t online = 0;   // live backends online
  std::size_t known = 0;    // live backends
  std::size_t failing = 0;  // ... whose last connect failed
  std::size_t refused = 0;  // ... whose last connect failed permanently
  bool draining = false;    // async_drain waits for claims
  bool terminated = false;
  bool claims_out = false;  // some slot is still claimed (or acquiring)
};

class status_tracker {
 public:
  explicit status_tracker(time_point start) noexcept : offline_since_(start) {}

  pool_status status() const noexcept { return status_; }
  /// Decides the status now; the one before, if it changed.
  std::optional<pool_status> update(const policy& p, const status_inputs& in,
                                    time_point now) noexcept;
  /// When the pool may become failed with no other event (failed_after
  /// since no backend was online); none when that cannot happen.
  std::optional<time_point> deadline(const policy& p) const noexcept;

 private:
  pool_status status_ = pool_status::starting;
  std::optional<time_point> offline_since_;  // no backend online since
};

}  // namespace qorb::core
