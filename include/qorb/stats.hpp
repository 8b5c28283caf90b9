// qorb: point-in-time statistics of a pool.
#pragma once

#include <qorb/backend.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace qorb {

/// The slots of one backend, by state, and its counters.
struct backend_stats {
  asio::ip::tcp::endpoint address;
  std::size_t connecting = 0;  ///< connecting or waiting to reconnect
  std::size_t unclaimed = 0;   ///< connected and idle: claimable now
  std::size_t checking = 0;    ///< health check or recycle running
  std::size_t claimed = 0;     ///< handed out (includes on_acquire running)
  std::uint64_t total_claims = 0;
  std::uint64_t connect_failures = 0;
  std::uint64_t check_failures = 0;  ///< is_valid, on_acquire, on_recycle
  std::size_t recent_failures = 0;   ///< in the sliding failure window
  bool online = false;               ///< some slot is connected
  bool removed = false;              ///< no longer published; draining claimed slots
};

/// Why claims failed, counted since the pool started.
struct claim_failure_stats {
  std::uint64_t no_backends = 0;
  std::uint64_t no_backends_online = 0;
  std::uint64_t all_claims_used = 0;
  std::uint64_t terminated = 0;
  std::uint64_t cancelled = 0;
};

struct pool_stats {
  std::string name;
  std::map<std::string, backend_stats, std::less<>> backends;
  std::uint64_t total_claims = 0;  ///< claims served since the start
  std::size_t claims_waiting = 0;  ///< claims queued right now
  claim_failure_stats claim_failures;
  bool terminated = false;
};

}  // namespace qorb
