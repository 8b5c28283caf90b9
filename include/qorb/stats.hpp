// SPDX-License-Identifier: BSL-1.0
// qorb: point-in-time statistics of a pool.
#pragma once

#include <qorb/backend.hpp>
#include <qorb/policy.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace qorb {

/// A connect or check that failed, a connection lost while idle or one a
/// caller said was broken or failed: what the pool logged about it, kept
/// for `backend_stats::last_error`.
struct backend_error {
  /// "connect", "health check" (is_valid), "on_acquire", "on_recycle",
  /// "watch" (an idle connection lost), "discard" or "report" (a caller's
  /// `discard(reason)` or `report_failure(reason)`).
  std::string operation;
  /// Why, as logged: the connector's exception text, or "timed out".
  std::string message;
  /// When the pool saw it (wall clock, for people and dashboards).
  std::chrono::system_clock::time_point at;
};

/// Where a pool is in its life (cueball's states).
enum class pool_status : std::uint8_t {
  starting,  ///< no backend has been online yet
  running,   ///< some backend is (or was, since the pool last failed) online
  failed,    ///< no backend online for `policy::failed_after`, or every known
             ///< backend's last connect failed permanently
  stopping,  ///< `async_drain` waits for claims, or terminated with claims out
  stopped,   ///< terminated, and no claim is out
};
/// "starting", "running", "failed", "stopping", "stopped".
const char* to_string(pool_status s) noexcept;

/// Why the pool closed a connection (`connection_counts::closed`).
enum class close_reason : std::uint8_t {
  lifetime,        ///< older than its `set_config::max_lifetime` (replaced)
  idle,            ///< unused for `set_config::idle_timeout` while spare
  evicted,         ///< `pool::evict_all` (replaced)
  check_failed,    ///< `is_valid` or `on_acquire` failed or timed out
  recycle_failed,  ///< `on_recycle` failed or timed out
  discarded,       ///< a handle said it was broken
  lost,            ///< an idle connection was seen to die
  ended,           ///< the server ended it normally (replaced, no failure)
  removed,         ///< its backend left the resolver's set
  resized,         ///< the pool wanted fewer connections to its backend
  terminated,      ///< the pool was terminated or drained
};
/// How many close reasons there are.
inline constexpr std::size_t close_reason_count = 11;
/// "lifetime", "idle", "evicted", ... (the enumerator's name).
const char* to_string(close_reason r) noexcept;

/// Connections opened and closed since the start (Go's `DBStats`,
/// HikariCP's metrics): opened minus closed is how many are held now.
struct connection_counts {
  std::uint64_t opened = 0;  ///< connects that gave a connection the pool kept
  /// closed[std::size_t(reason)]: connections closed for that reason.
  std::array<std::uint64_t, close_reason_count> closed{};
  /// Closed for `r`.
  std::uint64_t closed_for(close_reason r) const noexcept { return closed[std::size_t(r)]; }
  /// Closed for any reason.
  std::uint64_t closed_total() const noexcept {
    std::uint64_t n = 0;
    for (auto c : closed) n += c;
    return n;
  }
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
  std::uint64_t check_failures = 0;  ///< is_valid, on_acquire, on_recycle; losses; callers' reports
  std::uint64_t discards = 0;        ///< claims whose caller said the connection was broken
  std::uint64_t failures_reported = 0;  ///< claims whose caller reported a failed request
  std::size_t recent_failures = 0;      ///< in the sliding failure window
  connection_counts connections;        ///< opened, and closed by reason
  bool online = false;                  ///< some slot is connected
  bool removed = false;                 ///< no longer published; draining claimed slots
  /// Backing off: how long until its next connect attempt (the soonest of
  /// its slots waiting to reconnect); none while no slot waits to retry.
  std::optional<duration> retry_in;
  /// Not online: for how long it has been offline (since it went offline,
  /// or since the pool learned of it if it never was online); none while
  /// online.
  std::optional<duration> offline_for;
  /// Its last connect failed permanently (the connector threw
  /// `qorb::permanent_error`): it retries only at `max_connection_backoff`.
  bool failed_permanently = false;
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
  std::uint64_t pool_failed = 0;         ///< `errc::pool_failed`
};

/// How long claims waited (from the call to its completion, served or
/// failed), as a histogram with fixed bounds in seconds; a claim served at
/// once counts as 0. (`pool_stats::connect_time` uses it for connects.)
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

/// Where claims come from: the caller of a claim function (the
/// `std::source_location` every claim function takes as a defaulted
/// argument).
struct claim_site {
  std::string file;        ///< the source file, as the compiler names it
  std::uint32_t line = 0;  ///< its line (0: not known)
  std::string function;    ///< the calling function, as the compiler names it
  /// "file:line"; "other" for the row shared by the sites beyond the first
  /// 32; "unknown" when the site was not given.
  std::string label() const {
    if (line == 0) return file.empty() ? std::string("unknown") : file;
    std::string out = file;
    out += ':';
    out += std::to_string(line);
    return out;
  }
};

/// Claims made from one site: how long they waited and how long they held
/// their connection (`pool_stats::sites`).
struct claim_site_stats {
  claim_site site;     ///< where
  bool other = false;  ///< the row shared by the sites beyond the first 32
  /// From the call to the claim's completion, served or failed (a claim
  /// served at once counts as 0); `wait.count` is the claims made from here.
  claim_wait_histogram wait;
  /// From the claim's completion to the handle's return, for claims back.
  claim_wait_histogram hold;
};

/// A claimed connection and who holds it (`pool::holders()`).
struct claim_holder {
  std::uint64_t slot = 0;           ///< the slot's id (as the probes name it)
  std::uint64_t claim = 0;          ///< the claim's id (as the probes name it)
  std::string backend;              ///< its backend's name
  asio::ip::tcp::endpoint address;  ///< its backend's address
  /// How long it has been held (0 unless `timed`), to a few milliseconds.
  duration age{};
  /// Holds are timed (`policy::time_holds` or `policy::hold_warning`): `age`
  /// is known.
  bool timed = false;
  claim_site site;      ///< where it was claimed
  bool warned = false;  ///< held past `policy::hold_warning` (warned once)
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
  /// Every backend's connections opened and closed, removed backends' too.
  connection_counts connections;
  /// How long connects that gave a connection took (same buckets as
  /// `claim_wait`).
  claim_wait_histogram connect_time;
  pool_status status = pool_status::starting;  ///< where the pool is in its life
  std::size_t min_idle = 0;                    ///< `policy::min_idle`
  std::size_t spares_wanted = 0;               ///< `policy::spares_wanted`
  std::size_t max_connecting = 0;      ///< `policy::max_connecting` (connects in flight at most)
  std::size_t connects_in_flight = 0;  ///< connects running now
  std::size_t connects_waiting = 0;    ///< connects waiting for a turn under max_connecting
  /// The claimed connections held longest (at most `max_holders`), oldest
  /// first; `pool::holders()` has them all.
  std::vector<claim_holder> holders;
  /// How many rows `holders` has at most.
  static constexpr std::size_t max_holders = 20;
  /// `policy::hold_warning`: a hold longer is warned about once.
  std::optional<duration> hold_warning;
  /// Holds that outlived `policy::hold_warning` (each counted once).
  std::uint64_t hold_warnings = 0;
  /// Claims by claim site, busiest first: the first 32 sites seen have
  /// rows of their own, later ones share the last row (`other`).
  std::vector<claim_site_stats> sites;
  bool terminated = false;  ///< the pool was terminated
};

}  // namespace qorb
