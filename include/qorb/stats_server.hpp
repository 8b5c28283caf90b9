// SPDX-License-Identifier: BSL-1.0
// qorb: stats_server, an HTTP and WebSocket endpoint that shows pools at work.
#pragma once

#include <qorb/log.hpp>
#include <qorb/stats.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace qorb {

template <class Conn>
class pool;

namespace detail {
struct stats_server_state;
}

/// How a `stats_server` listens and behaves.
struct stats_server_config {
  /// Where to listen. Loopback by default: the endpoint has no
  /// authentication. Port 0 picks a free port (see `local_endpoint`).
  asio::ip::tcp::endpoint listen{asio::ip::make_address("127.0.0.1"), 0};
  /// Where the server reports client errors and dropped sessions; null
  /// means silence.
  logger_ptr logger = default_logger();
  /// Output one WebSocket client may have queued, unsent, before the server
  /// drops it: a client that stops reading never holds more memory. Also
  /// the size of each WebSocket's kernel send buffer (within 16 KiB..1 MiB).
  std::size_t max_queued_bytes = 1 << 20;
  /// How long an HTTP client may take to send a request or read a response,
  /// and a WebSocket client to answer the server's keep-alive pings.
  std::chrono::milliseconds client_timeout = std::chrono::seconds(30);
  /// Clients connected at once, at most (1..1,000,000). One more is
  /// answered `503 Service Unavailable` and closed at once, without reading
  /// its request. Each client costs one file descriptor.
  std::size_t max_connections = 256;
  /// File descriptors the server leaves to the rest of the process (its
  /// pools' connections above all), at most 1,000,000: a client is refused
  /// (as above) when accepting it took one of the last `reserved_fds`
  /// descriptors below the process's `RLIMIT_NOFILE` soft limit. When the
  /// process runs out of descriptors altogether (EMFILE), the server stops
  /// accepting for a while (10 ms, doubling up to 1 s) instead of retrying
  /// at once, and logs it at most once per `log_interval`.
  std::size_t reserved_fds = 64;
  /// How long one snapshot of the pools serves `/stats`, `/metrics` and
  /// `/qtop/stats` (0..1 hour): within it, every request gets output built
  /// from the same snapshot, so a scrape flood reads each pool once per
  /// interval. 0 reads the pools for every request.
  std::chrono::milliseconds snapshot_interval = std::chrono::milliseconds(100);
  /// The shortest time between two log lines about the same kind of trouble
  /// (accept errors, refused clients, malformed requests); the lines in
  /// between are counted and the count given in the next one (0..1 hour).
  std::chrono::milliseconds log_interval = std::chrono::seconds(10);
};

/// What a `stats_server` has seen since it started (`stats_server::counters`).
struct stats_server_counters {
  /// Clients connected right now.
  std::size_t connections = 0;
  /// Clients refused (at `max_connections` or `reserved_fds`).
  std::uint64_t refused = 0;
  /// Accepts that failed (EMFILE, ENFILE, ENOBUFS, ...).
  std::uint64_t accept_errors = 0;
  /// Requests answered 400, 413 or 431 because they did not parse.
  std::uint64_t malformed_requests = 0;
  /// Snapshots taken of the pools (see `snapshot_interval`).
  std::uint64_t snapshots = 0;
};

/// A source of one pool's statistics: a snapshot, or std::nullopt once the
/// pool is gone. Called from the server's threads; must be thread-safe
/// and quick (`pool<Conn>::stats_source()` is both).
using stats_source = std::function<std::optional<pool_stats>()>;

/// Serves the statistics of the pools attached to it over HTTP:
///
/// - `GET /stats`: a JSON snapshot of every pool: `{"pools": {NAME: {...}}}`
///   with per-backend stats, totals, waiting claims, claim failures by
///   reason and the claim wait-time histogram.
/// - `GET /metrics`: the same in the Prometheus text exposition format
///   (metrics `qorb_*`, labelled by `pool` and `backend`).
/// - `GET /qtop/stats` (WebSocket): pushes
///   `{"claims": N, "sets": {BACKEND: {connecting, unclaimed, checking,
///   claimed, total_claims, online}}}` for one pool every `update_secs`
///   seconds (query parameter, default 1, fractional allowed) and as soon as
///   its stats change (checked every 100 ms, never pushed more often).
///   `claims` counts the claims served since the previous push. `?pool=NAME`
///   picks the pool (default: the first attached).
///
/// Every path also accepts `?pool=NAME` to show one pool only. An unknown
/// path gets 404, a method other than GET 405, a bad or unknown query
/// parameter 400, a plain GET of `/qtop/stats` 426.
///
/// The server reads pools only through their stats sources, holding nothing
/// of a pool across I/O, so a slow or vanished client never delays a pool;
/// each client has its own queue of output, bounded by `max_queued_bytes`,
/// so a slow client never delays the others either.
///
/// Executor: the server's network I/O (accepting, reading requests, writing
/// responses) runs on the executor given at construction, which may be
/// multi-threaded; some thread must run it. Reading the pools' stats and
/// building the output (JSON, Prometheus text, WebSocket pushes) runs on the
/// server's own thread, off the pools' executors, from a snapshot cached for
/// `snapshot_interval`: a scrape flood costs the pools one stats read per
/// interval.
///
/// Limits: at most `max_connections` clients, never one of the last
/// `reserved_fds` descriptors; a request that does not parse gets 400, a
/// body over 16 KiB 413, a request line and headers over 8 KiB 431, each
/// followed by a close. See docs/limits.md.
///
/// Example: serve one pool on 127.0.0.1:9464 (`curl localhost:9464/stats`,
/// `qtop ws://127.0.0.1:9464/qtop/stats`):
/// @code
/// qorb::stats_server_config cfg;
/// cfg.listen = {asio::ip::make_address("127.0.0.1"), 9464};  // port 0: any free port
/// qorb::stats_server stats(io.get_executor(), cfg);
/// stats.attach(pool);  // as many pools as you like; a destroyed one disappears
/// stats.start();       // stats.local_endpoint() tells the port
/// @endcode
///
/// Thread safety: every member function may be called from any thread at
/// once, except that construction and destruction must not race with other
/// calls.
class stats_server {
 public:
  /// Builds a server; nothing listens until `start`. Throws
  /// `std::invalid_argument` naming the field for a configuration value out
  /// of its bounds.
  explicit stats_server(asio::any_io_executor executor, stats_server_config config = {});
  /// Stops the server (see `stop`).
  ~stats_server();
  stats_server(const stats_server&) = delete;
  stats_server& operator=(const stats_server&) = delete;

  /// Shows a pool under `pool_name`, replacing one attached under the same
  /// name. `source` returning std::nullopt means the pool is gone: the
  /// server then detaches it. Throws `std::invalid_argument` for an empty
  /// name or source.
  ///
  /// Errors: by exceptions (above). Executor:
  /// runs in the caller; `source` is called later, on the server's thread.
  /// Cancellation: `detach`. Lifetimes: `source` is kept until detached or
  /// until it returns std::nullopt. Thread safety: as the class comment.
  /// Exceptions: `std::invalid_argument`, `std::bad_alloc`.
  void attach(std::string pool_name, stats_source source);

  /// Shows `p` under its name, for as long as it exists (`p` may be
  /// destroyed before the server: it then disappears from the output).
  ///
  /// Handler, errors, executor, cancellation, thread safety and
  /// exceptions: as the `attach` above; `std::logic_error` for a moved-from
  /// pool. Lifetimes: holds no reference to `p` itself, only a weak one to
  /// its internals.
  template <class Conn>
  void attach(const pool<Conn>& p) {
    attach(p.name(), p.stats_source());
  }

  /// Stops showing the pool attached under `pool_name`; WebSocket clients
  /// watching it are closed. Does nothing if there is none.
  void detach(const std::string& pool_name);

  /// Opens the listener and starts accepting clients. Throws
  /// `boost::system::system_error` if the address cannot be bound, and
  /// `std::logic_error` if the server was started already.
  ///
  /// Errors: by exceptions (above). Executor:
  /// binds in the caller; accepting runs on the server's executor.
  /// Cancellation: `stop`. Lifetimes: the executor must outlive the
  /// server's I/O, which ends after `stop` or destruction. Thread safety: as the class
  /// comment. Exceptions: as above, and `std::bad_alloc`.
  void start();

  /// Closes the listener and every client's connection at once, without
  /// waiting for the peers (sessions finish on the executor right after).
  /// Idempotent; the server cannot be started again.
  ///
  /// Errors: none. Executor: runs in the
  /// caller; the sessions end on the server's executor. Cancellation: it is
  /// the cancellation of everything the server does. Lifetimes: no client
  /// is served afterwards. Thread safety: as the class comment. Exceptions:
  /// none.
  void stop();

  /// The address the server listens on (with the real port when the
  /// configured port was 0). Throws `std::logic_error` before `start`.
  asio::ip::tcp::endpoint local_endpoint() const;

  /// Counts of clients and of trouble so far.
  stats_server_counters counters() const;

 private:
  std::shared_ptr<detail::stats_server_state> state_;
};

}  // namespace qorb
