// qorb internals: the pool's decisions as pure code (no I/O, no clock, no
// randomness of their own), so they are tested without sockets or sleeps.
#pragma once

#include <qorb/policy.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace qorb::detail {

using time_point = std::chrono::steady_clock::time_point;

/// Reconnect delays: after the n-th failure in a row, min * 2^(n-1) capped
/// at max, plus a random spread; success resets.
class backoff {
 public:
  /// Delay before the next attempt. `random01` is a number in [0, 1).
  duration next(const set_config& cfg, double random01) noexcept;
  void reset() noexcept { failures_ = 0; }
  unsigned failures() const noexcept { return failures_; }

 private:
  unsigned failures_ = 0;
};

/// Failures of one backend over a sliding window of `span`, kept in 10
/// buckets: the backend's badness score.
class failure_window {
 public:
  static constexpr std::size_t bucket_count = 10;
  explicit failure_window(duration span) noexcept;
  void add(time_point now) noexcept;
  std::size_t count(time_point now) const noexcept;

 private:
  std::int64_t bucket_index(time_point now) const noexcept;
  duration bucket_width_;
  std::array<std::uint32_t, bucket_count> counts_{};
  std::array<std::int64_t, bucket_count> index_{};  // which bucket-time each holds
};

/// What the rebalancer knows of one backend.
struct rebalance_input {
  bool online = false;
  std::size_t claimed = 0;
  std::size_t slots = 0;  // slots it has now
};

/// How many slots the pool wants in all: min(claimed + spares_wanted,
/// max_slots), claimed counted over online backends.
std::size_t slot_budget(const policy& p, const std::vector<rebalance_input>& inputs);

/// Wanted slot counts, one per input, in the same order. Offline backends
/// are "questionable" and get one probing slot; the rest of `budget` is
/// split evenly over online backends, each capped at
/// set_config.max_count and at least 1, so an online backend never closes
/// its last connection only to come back online as a probe. The remainder
/// of the split goes to the backends that have the most slots already (then
/// to the first in `inputs`: pass them best-first), so repeated rebalances
/// do not move a slot back and forth between backends.
std::vector<std::size_t> rebalance(const policy& p, const std::vector<rebalance_input>& inputs,
                                   std::size_t budget);

}  // namespace qorb::detail
