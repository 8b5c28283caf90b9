// SPDX-License-Identifier: BSL-1.0
// qorb: registering a backend in etcd (a key under a lease, kept alive),
// the other half of the etcd resolver.
#pragma once

#include <qorb/backend.hpp>
#include <qorb/log.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace qorb {

/// Settings of an `etcd_registration`.
struct etcd_registration_config {
  /// The cluster's members; at least one, tried in turn.
  std::vector<asio::ip::tcp::endpoint> endpoints;

  /// The backend's key, e.g. "/services/echo/127.0.0.1:6001" (the
  /// resolver's prefix, then a name unique to this backend); not empty.
  std::string key;

  /// The value: where to connect, e.g. "127.0.0.1:6001"; not empty.
  std::string value;

  /// The lease's time to live (1 s to 1 day): a process that dies without
  /// revoking its lease disappears this long after its last keep-alive
  /// (etcd may raise a very short TTL to its own minimum).
  std::chrono::seconds ttl = std::chrono::seconds(10);

  /// How long one request (connect, grant, put, keep-alive, revoke) may take
  /// (1 ms to 1 h).
  std::chrono::milliseconds request_timeout = std::chrono::seconds(2);

  /// After every member failed in turn, wait `retry_min`, doubling each
  /// sweep up to `retry_max` (1 ms <= retry_min <= retry_max <= 10 min).
  std::chrono::milliseconds retry_min = std::chrono::milliseconds(100);
  std::chrono::milliseconds retry_max = std::chrono::seconds(2);  ///< see `retry_min`

  /// Called on the registration's strand each time the key is put under a
  /// new lease (true) or the lease is found lost (false). Optional; must
  /// not block.
  std::function<void(bool registered)> on_change;

  /// Where it logs registrations, lost leases, member failures and stop.
  logger_ptr logger = default_logger();
};

/// A snapshot of an `etcd_registration`'s state and counters.
struct etcd_registration_stats {
  bool registered = false;  ///< the key is up under a live lease.
  std::string lease;        ///< the lease's ID (decimal), or "".
  std::int64_t granted_ttl =
      0;  ///< the TTL etcd granted, in seconds (at most 1 day: a longer one is acted on as 1 day).
  std::uint64_t registrations = 0;  ///< times the key was put under a new lease.
  std::uint64_t keepalives = 0;     ///< keep-alives answered.
  std::uint64_t lost_leases = 0;    ///< leases found expired or revoked.
  std::uint64_t failures = 0;       ///< requests that failed.
  std::string last_error;           ///< why the last request failed, or empty.
};

/// Keeps one key in etcd while the process runs: grants a lease with
/// `ttl`, puts the key under it, sends a keep-alive every third of the
/// granted TTL and, when the lease is lost (expired while no member
/// answered, or revoked by someone), grants a new one and puts the key
/// again. `stop` revokes the lease, so the key disappears at once; a
/// process killed without `stop` disappears when its lease expires.
///
/// All work runs on a strand of the executor given to `start`.
/// Thread safety: `start`, `stop` and `stats` may be called from any thread.
/// Lifetime: destroying it stops it (the revoke still runs while the
/// executor does).
///
/// Example: a server on 10.0.0.7:6001 registers itself where an
/// `etcd_resolver` with the prefix `/services/echo/` finds it:
/// @code
/// qorb::etcd_registration_config config;
/// config.endpoints = etcd->endpoints;  // from qorb::parse_etcd_url
/// config.key = "/services/echo/10.0.0.7:6001";
/// config.value = "10.0.0.7:6001";
/// qorb::etcd_registration registration(config);
/// registration.start(io.get_executor());  // kept alive until stop()
/// // ... serve ...
/// registration.stop();                    // revokes the lease: the key goes at once
/// @endcode
class etcd_registration {
 public:
  /// Throws std::invalid_argument when a setting is out of its bounds.
  explicit etcd_registration(etcd_registration_config config);
  etcd_registration(const etcd_registration&) = delete;
  etcd_registration& operator=(const etcd_registration&) = delete;
  ~etcd_registration();

  /// Registers on a strand of `executor`, and keeps the key up. Call once.
  ///
  /// Handler: none (the config's `on_change`, if set, reports each
  /// registration and lost lease). Errors: none reported to the caller: failures are
  /// counted in `stats()`, logged and retried with backoff. Executor: all
  /// work on a strand of `executor`, none inside this call. Cancellation:
  /// `stop()`. Lifetimes: as the class comment. Thread safety: any thread.
  /// Exceptions: `std::bad_alloc` only.
  void start(asio::any_io_executor executor);

  /// Stops keeping the key up and revokes the lease (trying each member
  /// once, each bounded by `request_timeout`); then `done(revoked)` runs on
  /// the strand (at once when it never started). Idempotent: a second call's
  /// `done` is not called.
  ///
  /// Handler: `done`, `void(bool revoked)`: whether a member revoked the
  /// lease. Errors: a failed revoke only makes `revoked` false (the key then
  /// goes when the lease expires). Executor: `done` runs on the strand,
  /// never inside this call. Cancellation: none; each revoke attempt is
  /// bounded by `request_timeout`. Lifetimes: the revoke still runs after
  /// the object is destroyed, while the executor runs. Thread safety: any
  /// thread. Exceptions: `std::bad_alloc` only.
  void stop(std::function<void(bool revoked)> done = {});

  /// A snapshot of the registration's counters. Any thread.
  etcd_registration_stats stats() const;

 private:
  class impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace qorb
