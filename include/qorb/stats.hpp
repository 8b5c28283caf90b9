// SPDX-License-Identifier: BSL-1.0
// qorb: point-in-time statistics of a pool.
#pragma once

#include <qorb/backend.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace qorb {

/// A connect or check that failed: what the pool logged about it, kept for
/// `backend_stats::last_error`.
struct backend_error {
  /// "connect", "health check" (is_valid), "on_acquire" or "on_recycle".
  std::string operation;
  /// Why, as logged: the connector's exception text, or "timed out".
  std::string message;
  /// When the pool saw it (wall clock, for people and dashboards).
  std::chrono::system_clock::time_point at;
};

/// The slots of one backend, by state, and its counters.
struct backend_stats {
  asio::ip::tcp::endpoint address;     ///< where its connections go
  std::size_t connecting = 0;          ///< connecting or waiting to reconnect
  std::size_t unclaimed = 0;           ///< connected and idle: claimable now
  std::size_t checking = 0;            ///< health check or recycle running
  std::size_t claimed = 0;             ///< handed out (includes on_acquire running)
  std::uint64_t total_claims = 0;      ///< claims it served since the start
  std::uint64_t connect_failures = 0;  ///< failed or timed-out connects
  std::uint64_t check_failures = 0;    ///< is_valid, on_acquire, on_recycle
  std::size_t recent_failures = 0;     ///< in the sliding failure window
  bool online = false;                 ///< some slot is connected
  bool removed = false;                ///< no longer published; draining claimed slots
  /// The backend's latest failed connect or check (kept after later
  /// successes, so a flapping backend still says why it flapped); empty
  /// while none has failed.
  std::optional<backend_error> last_error;
};

/// Why claims failed, counted since the pool started.
struct claim_failure_stats {
  std::uint64_t no_backends = 0;         ///< `errc::no_backends`
  std::uint64_t no_backends_online = 0;  ///< `errc::no_backends_online`
  std::uint64_t all_claims_used = 0;     ///< `errc::all_claims_used`
  std::uint64_t terminated = 0;          ///< `errc::terminated`
  std::uint64_t cancelled = 0;           ///< cancelled by the caller (`operation_aborted`)
  std::uint64_t acquire_failed = 0;      ///< `errc::acquire_failed`
};

/// How long claims waited (from the call to its completion, served or
/// failed), as a histogram with fixed bounds in seconds; a claim served at
/// once counts as 0.
struct claim_wait_histogram {
  /// The upper bounds of the buckets, in seconds.
  static constexpr std::array<double, 12> bounds_s{0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05,
                                                   0.1,    0.5,    1.0,   5.0,   10.0, 30.0};
  /// counts[i]: waits <= bounds_s[i] (and > the previous bound); the last
  /// one: longer than every bound.
  std::array<std::uint64_t, bounds_s.size() + 1> counts{};
  double sum_s = 0;         ///< all waits added up, in seconds
  std::uint64_t count = 0;  ///< waits recorded

  /// Counts one wait of `seconds` (the pool does; not thread-safe).
  void record(double seconds) noexcept {
    std::size_t i = 0;
    while (i < bounds_s.size() && seconds > bounds_s[i]) ++i;
    ++counts[i];
    sum_s += seconds;
    ++count;
  }
};

/// A snapshot of one pool (`pool::stats()`): every backend, and totals.
struct pool_stats {
  std::string name;  ///< the pool's name
  /// Every backend the pool knows, by name (removed ones while they drain).
  std::map<std::string, backend_stats, std::less<>> backends;
  std::uint64_t total_claims = 0;  ///< claims served since the start
  std::size_t claims_waiting = 0;  ///< claims queued right now
  /// The policy's cap on connections (policy::max_slots): with every
  /// backend's `claimed` summed, how close the pool is to saturation.
  std::size_t max_slots = 0;
  claim_failure_stats claim_failures;  ///< failed claims, by reason
  claim_wait_histogram claim_wait;     ///< how long claims waited
  bool terminated = false;             ///< the pool was terminated
};

}  // namespace qorb
