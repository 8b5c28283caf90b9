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
};

/// Wanted slot counts, one per input, in the same order. Offline backends
/// are "questionable" and get one probing slot; the rest of
/// min(claimed + spares_wanted, max_slots) is split evenly over online
/// backends (the first ones in `inputs` get the remainder, so pass them
/// best-first), each capped at set_config.max_count and at least 1, so an
/// online backend never closes its last connection only to come back
/// online as a probe.
std::vector<std::size_t> rebalance(const policy& p, const std::vector<rebalance_input>& inputs);

}  // namespace qorb::detail
