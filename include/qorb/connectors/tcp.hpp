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
struct tcp_connector_config {
  /// SO_KEEPALIVE on every connection; with `keepalive_idle`, the idle time
  /// before the first probe (TCP_KEEPIDLE).
  bool keepalive = true;
  /// TCP_KEEPIDLE when set; the system's default otherwise.
  std::optional<std::chrono::seconds> keepalive_idle = std::nullopt;
  /// TCP_NODELAY on every connection.
  bool no_delay = true;
  /// Health check run for `is_valid` (and so on every return of a claim):
  /// throw to fail. Without one, the check is that the peer has not closed
  /// the connection (a non-blocking peek).
  std::function<asio::awaitable<void>(asio::ip::tcp::socket&)> health_check = nullptr;
};

/// Connects an `asio::ip::tcp::socket` to each backend.
///
/// Example: a pool of plain sockets; idle ones are checked every
/// `health_interval` (the peer has not closed them).
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

  /// A connector that sets up every socket as `config` says.
  explicit tcp_connector(tcp_connector_config config = {}) : config_(std::move(config)) {}

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

 private:
  tcp_connector_config config_;
};

}  // namespace qorb
