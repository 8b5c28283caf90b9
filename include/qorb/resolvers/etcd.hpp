// SPDX-License-Identifier: BSL-1.0
// qorb: the etcd resolver (a key prefix in etcd, watched through etcd's v3
// JSON gateway over HTTP).
#pragma once

#include <qorb/backend.hpp>
#include <qorb/log.hpp>
#include <qorb/resolver.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qorb {

/// Where a service lives in etcd: the cluster's members (client URLs) and
/// the key prefix under which each backend has one key.
struct etcd_location {
  std::vector<asio::ip::tcp::endpoint> endpoints;  ///< the members' client addresses
  std::string prefix;                              ///< the key prefix
};

/// Parses a comma-separated list of client URLs, "http://127.0.0.1:2379"
/// or "http://[::1]:2379" ("localhost" stands for 127.0.0.1; no other host
/// names, no https). A path after the address, e.g.
/// "http://127.0.0.1:2379/services/echo/", becomes the prefix (when several
/// URLs have one, they must agree). Empty, with `error` saying why, when
/// `text` is not such a list.
std::optional<etcd_location> parse_etcd_url(std::string_view text, std::string& error);

/// Settings of an `etcd_resolver`.
struct etcd_resolver_config {
  /// The cluster's members; at least one. Tried in turn: the resolver talks
  /// to one member at a time and moves to the next when it fails.
  std::vector<asio::ip::tcp::endpoint> endpoints;

  /// The key prefix, e.g. "/services/echo/"; not empty. Every key under it
  /// is one backend; its value is "ip:port", "[v6]:port" or
  /// {"address": "ip", "port": N}.
  std::string prefix;

  /// How long connecting, a range read or opening the watch may take
  /// before the member counts as failed (1 ms to 1 h).
  std::chrono::milliseconds request_timeout = std::chrono::seconds(5);

  /// After every member failed in turn, the resolver waits `retry_min`
  /// before the next sweep, doubling each sweep up to `retry_max`
  /// (1 ms <= retry_min <= retry_max <= 10 min).
  std::chrono::milliseconds retry_min = std::chrono::milliseconds(100);
  std::chrono::milliseconds retry_max = std::chrono::seconds(5);  ///< see `retry_min`

  /// Where the resolver logs reads, watches, changes of the backend set,
  /// bad values, member failures and stop. Null: silent.
  logger_ptr logger = default_logger();
};

/// A snapshot of an `etcd_resolver`'s counters.
struct etcd_resolver_stats {
  std::int64_t revision = 0;         ///< the last revision seen (read or event).
  std::uint64_t reads = 0;           ///< complete range reads of the prefix.
  std::uint64_t watches = 0;         ///< watches created.
  std::uint64_t events = 0;          ///< watch events applied.
  std::uint64_t bad_values = 0;      ///< values skipped (not an address).
  std::uint64_t outside_prefix = 0;  ///< keys skipped: not under the prefix.
  std::uint64_t compactions = 0;     ///< watches that found their revision compacted.
  std::uint64_t failures = 0;        ///< attempts on a member that failed.
  bool watching = false;             ///< a watch is established now.
  asio::ip::tcp::endpoint member;    ///< the member in use (or tried last).
  std::string last_error;            ///< why the last attempt failed.
};

/// A resolver that finds backends under a key prefix in etcd.
///
/// @details It reads the whole prefix (one range request), publishes the
/// set, then watches the prefix from the next revision and publishes what
/// each batch of events changed: as a change (`start_incremental`, which
/// the pool uses; one event costs the size of the change, not of the set)
/// or as the whole set again (`start`). Each backend is named
/// "<key without the prefix>@<ip>:<port>", so a key whose address changes
/// is one backend removed and one added. A key a member sends that is not
/// under the prefix, or is the prefix itself, names no backend: it is
/// skipped, counted in `outside_prefix` and logged once (warn).
///
/// When the watch breaks (the member died or closed it) it resumes on the
/// next member from the revision after the last event it saw, so no change
/// is missed or applied twice; after every member failed in turn it waits
/// the retry delay. Only a watch that delivered an event, or stayed up for
/// `retry_max`, resets that delay: a member that accepts watches and ends
/// them at once (or cancels them as compacted right after a read) is
/// retried at the delay's pace, and its repeated warning lines are logged
/// once per 10 s (the rest at debug level). When that revision is compacted away it
/// reads the prefix again, then watches from there. A value that is not an
/// address is skipped: logged (warn), counted in `bad_values`, and the key
/// has no backend until it gets a good value. While no member answers it
/// keeps publishing nothing new: the last known set stays.
///
/// All work runs on a strand of the executor given to `start`: no thread of
/// its own, no blocking call.
///
/// Thread safety: `start`, `stop` and `stats` may be called from any
/// thread. The listener runs on the strand, one call at a time; after
/// `stop()` returns, no new call starts (unless `stop` is called from
/// inside the listener, when that call finishes).
///
/// Lifetime: destroying the resolver stops it; its state lives until the
/// executor has run the cancelled work.
///
/// Example: the backends registered under `/services/echo/` in a cluster of
/// two members:
/// @code
/// std::string error;
/// auto etcd = qorb::parse_etcd_url("http://10.0.0.2:2379,http://10.0.0.3:2379", error);
/// qorb::etcd_resolver_config config;
/// config.endpoints = etcd->endpoints;
/// config.prefix = "/services/echo/";
/// qorb::pool<asio::ip::tcp::socket> pool(io.get_executor(), "echo",
///                                        std::make_shared<qorb::etcd_resolver>(config),
///                                        qorb::tcp_connector{});
/// @endcode
class etcd_resolver final : public resolver {
 public:
  /// Throws std::invalid_argument when a setting is out of its bounds.
  explicit etcd_resolver(etcd_resolver_config config);
  etcd_resolver(const etcd_resolver&) = delete;
  etcd_resolver& operator=(const etcd_resolver&) = delete;
  ~etcd_resolver() override;

  /// Starts reading on a strand of `executor`. Call once.
  ///
  /// Handler: `on_change`, with the whole set each time it changes.
  /// Errors: none reported to the caller: member failures are counted in
  /// `stats()` and logged, and the last known set is kept. Executor:
  /// `on_change` runs on the resolver's strand, never inside this call.
  /// Cancellation: `stop()`. Lifetimes, thread safety and exceptions: as
  /// `resolver::start` and the class comment; throws only `std::bad_alloc`.
  void start(asio::any_io_executor executor, listener on_change) override;

  /// As `start`, publishing the whole set after each read of the prefix and
  /// then, for each batch of watch events that changed it, only the change.
  ///
  /// Handler, errors, executor, cancellation, lifetimes, thread safety and
  /// exceptions: as `start` (`on_set` and `on_change` run on the resolver's
  /// strand, one at a time, in order).
  void start_incremental(asio::any_io_executor executor, listener on_set,
                         change_listener on_change) override;

  /// Stops: closes the connection, cancels timers; no listener call starts
  /// afterwards. Returns without waiting for the executor. Idempotent.
  ///
  /// Handler, errors, executor, cancellation, lifetimes, thread safety and
  /// exceptions: as `resolver::stop`; it does not throw.
  void stop() override;

  /// A snapshot of the resolver's counters. Any thread.
  etcd_resolver_stats stats() const;

 private:
  class impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace qorb
