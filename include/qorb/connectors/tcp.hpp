// SPDX-License-Identifier: BSL-1.0
// qorb: a connector for plain TCP connections.
#pragma once

#include <qorb/backend.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <functional>
#include <optional>

namespace qorb {

/// How `tcp_connector` sets up and checks its sockets.
///
/// Keep-alive and `user_timeout` bound how long a connection to a host that
/// vanished without a FIN or RST (powered off, cut off by a firewall) looks
/// alive: idle, the keep-alive probes find it dead after about
/// `keepalive_idle` plus `keepalive_interval` times `keepalive_count`;
/// claimed, with data unacknowledged, only `user_timeout` bounds a write or
/// a read that waits for an answer (without it the kernel retransmits for
/// up to about 15 minutes). The
/// constructor of `tcp_connector` (and of the connectors that take these
/// settings) throws `std::invalid_argument` naming the field for a value out
/// of range.
struct tcp_connector_config {
  /// SO_KEEPALIVE on every connection: the kernel probes a connection idle
  /// for `keepalive_idle`, every `keepalive_interval`, and drops it after
  /// `keepalive_count` unanswered probes (a read or write then fails).
  bool keepalive = true;
  /// TCP_KEEPIDLE (1 s to 32767 s): idle time before the first probe; the
  /// system's default when unset (Linux: 7200 s).
  std::optional<std::chrono::seconds> keepalive_idle = std::nullopt;
  /// TCP_KEEPINTVL (1 s to 32767 s): time between probes; the system's
  /// default when unset (Linux: 75 s).
  std::optional<std::chrono::seconds> keepalive_interval = std::nullopt;
  /// TCP_KEEPCNT (1 to 127): unanswered probes before the connection is
  /// dropped; the system's default when unset (Linux: 9).
  std::optional<int> keepalive_count = std::nullopt;
  /// TCP_USER_TIMEOUT (1 ms to INT_MAX ms): how long sent data may stay
  /// unacknowledged before the connection is dropped (the pending write or
  /// read fails with `ETIMEDOUT`); with keep-alive on, it also bounds the
  /// probing. Unset (the default): the kernel's retransmission limit, up to
  /// about 15 minutes. Applies whether or not `keepalive` is on.
  std::optional<std::chrono::milliseconds> user_timeout = std::nullopt;
  /// TCP_NODELAY on every connection.
  bool no_delay = true;
  /// Health check run for `is_valid` (and so on every return of a claim):
  /// throw to fail. Without one, the check is that the peer has not closed
  /// the connection (a non-blocking peek).
  std::function<asio::awaitable<void>(asio::ip::tcp::socket&)> health_check = nullptr;
};

/// Checks `config`'s keep-alive and `user_timeout` fields against the
/// kernel's limits (see each field).
///
/// Errors: throws `std::invalid_argument` whose message names the field
/// and its allowed range, e.g. "tcp_connector_config::keepalive_count must
/// be between 1 and 127 (got 0)". `where` prefixes the field's name (e.g.
/// "tls_connector_config::tcp."; empty: "tcp_connector_config::").
///
/// Thread safety: a pure function.
///
/// Exceptions: `std::invalid_argument`, `std::bad_alloc`.
void validate(const tcp_connector_config& config, const char* where = "");

/// Connects an `asio::ip::tcp::socket` to each backend.
///
/// Example: a pool of plain sockets; idle ones are watched (a close or a
/// reset by the peer is seen at once) and checked every `health_interval`.
/// @code
/// qorb::pool<asio::ip::tcp::socket> pool(io.get_executor(), "echo", resolver,
///                                        qorb::tcp_connector{});
/// auto socket = co_await pool.co_claim();
/// co_await asio::async_write(*socket, asio::buffer("hello\n", 6), asio::use_awaitable);
/// @endcode
class tcp_connector {
 public:
  /// The pool's connections are plain sockets.
  using connection_type = asio::ip::tcp::socket;

  /// A connector that sets up every socket as `config` says. Throws
  /// `std::invalid_argument` naming the field for a keep-alive or
  /// `user_timeout` value out of range (see `validate`).
  explicit tcp_connector(tcp_connector_config config = {}) : config_(std::move(config)) {
    validate(config_);
  }

  /// Connects a socket to `b.address` and applies the options.
  ///
  /// Handler: a coroutine; `co_await` gives the connected socket.
  ///
  /// Errors: thrown: `boost::system::system_error` with the connect's error
  /// (e.g. `connection_refused`); `std::system_error` with
  /// `connection_refused` when the socket connected to itself (nothing
  /// listens on a local port in the ephemeral range) or with the errno of
  /// a failed `setsockopt`.
  ///
  /// Executor: the socket is made on the coroutine's executor (the pool
  /// runs it on a strand of the pool's executor).
  ///
  /// Cancellation: per-operation cancellation (the pool's connect timeout,
  /// termination) cancels the connect; it then throws `operation_aborted`.
  ///
  /// Lifetimes: `b` is copied before the first suspension; the connector
  /// must outlive the call (the pool sees to it).
  ///
  /// Thread safety: concurrent calls are fine (the connector is not
  /// modified).
  ///
  /// Exceptions: the errors above; `std::bad_alloc`.
  asio::awaitable<asio::ip::tcp::socket> connect(const backend& b);

  /// Checks an idle socket: `config.health_check` when set, otherwise that
  /// the peer has not closed it (a non-blocking peek; unread data is kept).
  ///
  /// Handler: a coroutine that completes when the check passed.
  ///
  /// Errors: thrown `std::system_error`: `qorb::errc::connection_ended`
  /// when the peer closed the connection (a normal end: the pool replaces
  /// it without counting a failure, unless it was young), `not_connected`
  /// for a closed socket, the
  /// socket's errno when it broke; or whatever `health_check` throws.
  ///
  /// Executor: the coroutine's (a strand of the pool's executor).
  ///
  /// Cancellation: as `connect`; `health_check` should honour it.
  ///
  /// Lifetimes: `socket` stays valid until the call ends (the pool owns
  /// it).
  ///
  /// Thread safety: concurrent calls on different sockets are fine.
  ///
  /// Exceptions: the errors above.
  asio::awaitable<void> is_valid(asio::ip::tcp::socket& socket);

  /// Checks a socket a claim returned, as `is_valid` does an idle one.
  ///
  /// Errors: as `is_valid`, but a peer that closed the socket right after
  /// its use is a failure, `std::errc::connection_reset`, not a normal end:
  /// plain TCP cannot say that was meant, and a server that drops each
  /// connection after a few requests is failing (the pool backs off).
  ///
  /// Handler, executor, cancellation, lifetimes, thread safety and
  /// exceptions: as `is_valid`.
  asio::awaitable<void> on_recycle(asio::ip::tcp::socket& socket);

  /// Watches an idle socket (the pool runs it while the connection sits
  /// idle) and completes when the connection is no longer usable. It only
  /// waits for readiness and peeks (`recv` with `MSG_PEEK`): it never reads
  /// or writes a byte of the stream, so a claimer may use the socket while a
  /// cancelled watch winds down.
  ///
  /// It assumes the protocol sends nothing unsolicited to an idle
  /// connection: any byte that arrives while the connection is idle means it
  /// is lost. A protocol whose server does send (a greeting on connect, an
  /// idle-timeout notice, server pushes) needs its own connector, with a
  /// `watch` that knows those messages (or none).
  ///
  /// Handler: a coroutine; it completes only when the connection is lost,
  /// by throwing, or when it is cancelled. First a non-blocking look (a peer
  /// that closed before the watch started is seen at once), then a wait for
  /// the socket's next event; no timer, no polling.
  ///
  /// Errors: thrown `std::system_error`: "peer closed the idle connection"
  /// (end of file: the peer's FIN); "idle connection broken" with the
  /// socket's error (e.g. `connection_reset` for an RST); `protocol_error`,
  /// "unexpected data on an idle connection". All are losses (the pool
  /// counts a failure and reconnects).
  ///
  /// Executor: the coroutine's (a strand of the pool's executor).
  ///
  /// Cancellation: asio per-operation cancellation (a claim, a health check,
  /// a close, termination); it then throws `boost::system::system_error`
  /// with `operation_aborted` without touching the socket again.
  ///
  /// Lifetimes: `socket` must stay valid until the call ends or is cancelled
  /// (the pool owns it).
  ///
  /// Thread safety: runs on the connection's strand, so never at the same
  /// time as another hook on the same socket; concurrent calls on different
  /// sockets are fine.
  ///
  /// Exceptions: the errors above; `boost::system::system_error`
  /// (cancelled); `std::bad_alloc`.
  asio::awaitable<void> watch(asio::ip::tcp::socket& socket);

 private:
  tcp_connector_config config_;
};

}  // namespace qorb
