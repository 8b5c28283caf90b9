// SPDX-License-Identifier: BSL-1.0
// qorb: the HTTP/1.1 connector, pooled keep-alive connections on Boost.Beast
// (plain TCP or TLS).
#pragma once

#include <qorb/backend.hpp>
#include <qorb/connectors/tcp.hpp>
#include <qorb/connectors/tls.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>

namespace qorb::connectors::http {

namespace asio = boost::asio;
namespace beast = boost::beast;

using request = beast::http::request<beast::http::string_body>;
using response = beast::http::response<beast::http::string_body>;
using verb = beast::http::verb;
using status = beast::http::status;

/// What went wrong, as `std::error_code` values of `http::category()`.
enum class errc {
  /// `config::request_timeout` (or `ping_timeout`) passed before the whole
  /// response was read. The connection is closed.
  request_timeout = 1,
  /// The server closed the connection before the response was complete
  /// (e.g. an idle connection it had just timed out).
  connection_closed,
  /// The response did not parse as HTTP/1.1, or passed a limit: its body
  /// larger than `config::body_limit`, its header over 8 KiB, a chunk's
  /// extensions over 1 KiB, a chunk header or the trailer over 16 KiB,
  /// more than 16 interim (1xx) responses; or it was `101 Switching
  /// Protocols`. The message names the limit; the connection is closed.
  bad_response,
  /// The health check (`config::ping_target`) got a status other than 2xx.
  ping_failed,
  /// The last response on the connection had a 5xx status, the response
  /// also closed the connection, and `config::server_errors_fail_backend`
  /// is on: the connection's return fails, which counts against its
  /// backend and replaces the connection. (A 5xx on a connection that stays
  /// open is reported with `qorb::errc::request_failed` instead, and the
  /// connection is kept.)
  server_error,
  /// A request on a connection that is closed, broken by an earlier error,
  /// or still busy with another request.
  not_usable,
};

const std::error_category& category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), category()};
}

/// How connections are made and kept. Every field has a default.
struct config {
  /// Speak TLS (with these settings: CA file, server name, client
  /// certificate...) when set; plain TCP otherwise.
  std::optional<tls_connector_config> tls = std::nullopt;
  /// Socket options of the plain TCP connection (with TLS, `tls->tcp`).
  tcp_connector_config tcp{};
  /// The `Host` header set on every request that has none. Empty: the
  /// backend's host (`qorb::backend_host`: its SRV target, or its IP
  /// address), with ":port" unless the port is the scheme's default.
  std::string host{};
  /// What `is_valid` asks: `ping_method ping_target`, success = a 2xx
  /// status read whole on a connection both sides keep open. Empty target:
  /// no request, `is_valid` only checks that the server has not closed the
  /// connection.
  std::string ping_target = "/health";
  /// The method of the health-check request (`ping_target`).
  verb ping_method = verb::get;
  /// Bound on one request, from writing it to reading the whole response;
  /// zero means none. When it passes, the connection is closed (its state
  /// is unknown) and `request` throws `errc::request_timeout`.
  std::chrono::milliseconds request_timeout{std::chrono::seconds(30)};
  /// Bound on the health-check request; zero means none (the pool's
  /// `health_check_timeout` still bounds it).
  std::chrono::milliseconds ping_timeout{std::chrono::seconds(5)};
  /// Largest response body accepted (the header is bounded apart, at
  /// 8 KiB; see docs/limits.md).
  std::size_t body_limit = std::size_t(8) << 20;
  /// `on_acquire` checks, without a round trip, that the server has not
  /// closed the connection while it sat idle (one non-blocking read), so a
  /// claim does not get a connection the server timed out
  /// (`keepalive_timeout`): the pool replaces it and the claim takes
  /// another. Off: a claim may get such a connection, and its request then
  /// fails with `errc::connection_closed`.
  bool check_on_acquire = true;
  /// When the last response on a connection had a 5xx status, its return
  /// to the pool reports a failed request against the backend, which ranks
  /// it lower (counted as `handle::report_failure` is: the backend's
  /// `failures_reported`, last error operation "report"). The connection
  /// itself is fine and is kept (`on_recycle` throws
  /// `qorb::errc::request_failed`); only when the response also closed it
  /// (`Connection: close`) does the return fail with `errc::server_error`
  /// and the pool replace it (counted once, as a failed check). Off (the
  /// default): a 5xx is the caller's business; report it with
  /// `handle::report_failure(reason)` (see docs/http.md).
  bool server_errors_fail_backend = false;
  /// Sent as `User-Agent` on requests that have none; empty: not sent.
  std::string user_agent = "qorb";
};

/// One pooled HTTP/1.1 connection, plain or TLS. Movable, not copyable;
/// closed (TLS: close_notify) when destroyed.
///
/// Thread safety: one request at a time (a claimed connection belongs to
/// its claimer); requests run on the awaiting coroutine's executor.
class connection {
 public:
  /// Takes over the other connection; the moved-from one is not usable
  /// (its requests throw `errc::not_usable`).
  connection(connection&&) noexcept;
  /// Closes this connection's own socket (TLS: close_notify, as the
  /// destructor), then takes over the other one.
  connection& operator=(connection&&) noexcept;
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  ~connection();

  /// Sends `req` and reads its final response whole: interim responses
  /// (1xx but 101) are skipped, at most 16 of them.
  ///
  /// `req` gets, where it has none: the `Host` header, `User-Agent`,
  /// `Content-Length` (from its body), HTTP/1.1 and keep-alive. The
  /// response's status is not judged: a 404 or 503 is returned like a 200
  /// (see `config::server_errors_fail_backend` and docs/http.md for how to
  /// report a 5xx to the pool).
  ///
  /// Usage: `auto res = co_await h->request({http::verb::get, "/users/1", 11});`
  ///
  /// Handler: a coroutine that completes with the response.
  /// Errors: thrown (below); `config::request_timeout` bounds the whole
  /// exchange.
  /// Executor: the awaiting coroutine's; never blocks a thread.
  /// Thread safety: one request at a time on a connection (a second one
  /// while the first runs fails with `not_usable`); a claimed connection
  /// belongs to its claimer.
  /// Cancellation: asio per-operation cancellation of the awaiting
  /// coroutine; the connection is then closed.
  /// Exceptions: `std::system_error` with an `errc` (`request_timeout`,
  /// `connection_closed`, `bad_response`, `not_usable`) or the socket's
  /// error; `boost::system::system_error` with `operation_aborted` when
  /// cancelled. After any exception the connection is not reusable: its
  /// return closes it and the pool replaces it.
  /// Lifetimes: the connection must outlive the operation; `req` is moved in.
  asio::awaitable<response> request(http::request req);

  /// Whether the connection can serve another request: open, the last
  /// response read whole, and neither side asked to close (`Connection:
  /// close`, HTTP/1.0 without keep-alive). `on_recycle` keeps a connection
  /// only when this holds.
  bool reusable() const noexcept;
  /// The status of the last response read, or 0 (also 0 once `on_recycle`
  /// has reported a 5xx with `config::server_errors_fail_backend`).
  unsigned last_status() const noexcept;
  /// Requests completed on this connection.
  std::uint64_t requests() const noexcept;
  /// Whether the connection speaks TLS (`config::tls` was set).
  bool is_tls() const noexcept;
  /// With TLS: whether the handshake resumed an earlier session.
  bool session_reused() const noexcept;
  /// The `Host` header this connection sends.
  const std::string& host() const noexcept;
  /// The backend's address.
  asio::ip::tcp::endpoint remote_endpoint() const;
  /// Makes the pool close this connection when the claim returns.
  void mark_broken() noexcept;

  struct impl;

 private:
  friend class connector;
  explicit connection(std::unique_ptr<impl> p) noexcept;
  std::unique_ptr<impl> impl_;
};

/// The `qorb::connector` for HTTP/1.1.
///
/// - `connect`: TCP (and with `config::tls`, the TLS handshake, verified),
///   bounded by the pool's `connect_timeout`.
/// - `is_valid` (idle connections, every `health_interval`): the ping
///   request; fails unless it gets a 2xx and the connection stays reusable.
/// - `on_acquire`: with `check_on_acquire`, that the server has not closed
///   the connection.
/// - `on_recycle` (every return): keeps the connection only if it is
///   `reusable()`; fails otherwise, so the pool closes and replaces it.
///   With `server_errors_fail_backend`, a 5xx reports a failed request
///   (`qorb::errc::request_failed`: counted, the connection kept).
/// - `watch` (while idle): ends when the server closes the connection (its
///   keep-alive timeout: replaced without a failure) or it breaks.
///
/// All throw `std::system_error` on failure. Copies share one immutable
/// config (and TLS context); concurrent calls are safe.
///
/// Example:
/// @code
/// namespace http = qorb::connectors::http;
/// http::config cfg;  // cfg.tls.emplace() for HTTPS
/// qorb::pool<http::connection> pool(io, "api", resolver, http::connector(cfg));
/// auto h = co_await pool.co_claim();
/// http::response res = co_await h->request({http::verb::get, "/users/42", 11});
/// if (res.result_int() >= 500) h.discard();  // counts against the backend
/// @endcode
class connector {
 public:
  /// The pool's connections are `http::connection`s.
  using connection_type = connection;

  /// Throws as `tls_connector`'s constructor does for a bad TLS config, and
  /// `std::invalid_argument` for a ping target that does not start with '/'
  /// or a body limit of 0.
  explicit connector(config settings = {});

  /// Connects to `b.address`: TCP with `config::tcp`, or with
  /// `config::tls` TCP and the verified TLS handshake (as
  /// `tls_connector::connect`). No request is sent.
  ///
  /// Handler: a coroutine; `co_await` gives the connection, ready for a
  /// request, its `Host` header chosen.
  ///
  /// Errors: thrown: those of `tcp_connector::connect`, and with TLS those
  /// of `tls_connector::connect` (`std::system_error` with a `tls_errc`).
  ///
  /// Executor: the connection's socket is made on the coroutine's executor
  /// (the pool runs it on a strand of the pool's executor).
  ///
  /// Cancellation: per-operation cancellation (the pool's connect timeout,
  /// termination) cancels the connect or the handshake; it then throws
  /// `boost::system::system_error` with `operation_aborted`.
  ///
  /// Lifetimes: `b` is copied before the call returns and the coroutine
  /// holds the connector's shared state, so the awaitable may outlive both.
  ///
  /// Thread safety: concurrent calls are fine (the shared config is not
  /// modified).
  ///
  /// Exceptions: the errors above; `std::bad_alloc`.
  asio::awaitable<connection> connect(const backend& b);

  /// Checks an idle connection: the health-check request `ping_method
  /// ping_target` bounded by `ping_timeout`; with an empty `ping_target`
  /// only that the server has not closed the connection (as `on_acquire`).
  ///
  /// Handler: a coroutine that completes when the check passed (a 2xx read
  /// whole, the connection still reusable).
  ///
  /// Errors: thrown `std::system_error`: `qorb::errc::connection_ended`
  /// (not a failure: the pool replaces the connection) for a connection
  /// that is done after a whole response (`Connection: close` either way,
  /// or a body that ran to the connection's end); `errc::not_usable` for
  /// another connection that is not `reusable()`; `errc::ping_failed` when the
  /// request failed or timed out, the status was not 2xx, or the response
  /// left the connection not reusable; with an empty target, those of
  /// `on_acquire`.
  ///
  /// Executor: the coroutine's (a strand of the pool's executor).
  ///
  /// Cancellation: per-operation cancellation (the pool's
  /// `health_check_timeout`, termination) cancels the request and closes
  /// the connection; it then throws `boost::system::system_error` with
  /// `operation_aborted`.
  ///
  /// Lifetimes: `c` must stay valid until the call ends (the pool owns
  /// it); the coroutine holds the connector's shared state.
  ///
  /// Thread safety: concurrent calls on different connections are fine;
  /// one call at a time per connection.
  ///
  /// Exceptions: the errors above; `std::bad_alloc`.
  asio::awaitable<void> is_valid(connection& c);

  /// Before a claim gets `c`: with `config::check_on_acquire`, checks
  /// without a round trip that the server has not closed it while idle
  /// (TLS: a non-blocking look at the socket, as
  /// `tls_connector::check_open`; plain TCP: `tcp_connector::is_valid`, so
  /// `config::tcp`'s `health_check` when set). Off: completes at once.
  ///
  /// Handler: a coroutine that completes when `c` may be handed out.
  ///
  /// Errors: thrown `std::system_error`: `errc::not_usable` for a closed
  /// connection; `qorb::errc::connection_ended` when the server closed it
  /// while idle (its keep-alive timeout: a normal end, which the pool
  /// replaces without counting a failure; it is closed here too);
  /// `errc::connection_closed` when the check found it broken.
  ///
  /// Executor, cancellation, lifetimes, thread safety and exceptions: as
  /// `is_valid` (the TLS check does not suspend; a plain TCP
  /// `health_check` should honour cancellation).
  asio::awaitable<void> on_acquire(connection& c);

  /// When a claim returns `c`: keeps it only when it is `reusable()`. With
  /// `config::server_errors_fail_backend` and a last status of 500 or more,
  /// reports the failed request once (the status then reads 0). Does not
  /// suspend and sends nothing.
  ///
  /// Handler: a coroutine that completes when `c` goes back to the idle
  /// set.
  ///
  /// Errors: thrown `std::system_error` (message "not kept: " and why):
  /// `qorb::errc::connection_ended` for a connection that is done after a
  /// whole response (`Connection: close` either way, or a body that ran to
  /// the connection's end: a normal end, not counted as a failure);
  /// `errc::not_usable` for another connection that is not reusable;
  /// `errc::server_error` after a 5xx with `server_errors_fail_backend`
  /// whose response also closed the connection (marked broken). The pool
  /// closes and replaces it. After a 5xx on a connection that is still
  /// reusable: `qorb::errc::request_failed` ("the server answered 503
  /// (the connection is kept)"), which the pool counts as
  /// `handle::report_failure` and keeps the connection.
  ///
  /// Executor, cancellation, lifetimes, thread safety and exceptions: as
  /// `is_valid` (nothing to cancel: it completes without waiting).
  asio::awaitable<void> on_recycle(connection& c);

  /// Watches an idle connection (the pool runs it while the connection
  /// sits idle) and completes when it is no longer usable: the server
  /// closed the keep-alive connection (its `keepalive_timeout`, a restart),
  /// or it broke.
  ///
  /// What it sees: the server's FIN and an RST, at once, also behind bytes
  /// not read yet. Plain HTTP: bytes on an idle connection answer no
  /// request (a 408 before a close, or no HTTP server at all); with a FIN
  /// after them the close is normal, without one within a second the
  /// connection is lost. TLS with `config::check_on_acquire` (the watch is
  /// then serialised with `on_acquire` on the strand, so it may read): the
  /// records that arrive are processed at once without blocking, as
  /// `tls_connector::check_open` does: session tickets are taken, a
  /// close_notify is the server's close, application data a loss. TLS
  /// without it: as `tls_connector::watch` (the TLS state is not touched;
  /// records wait unread until a claim reads them, and the FIN is awaited
  /// behind them on a private epoll instance).
  ///
  /// Handler: a coroutine; it completes only when the connection is lost
  /// or ended, by throwing, or when it is cancelled. First a non-blocking
  /// look (a server that closed before the watch started is seen at once),
  /// then a wait for the socket's next event.
  ///
  /// Errors: thrown `std::system_error`: `qorb::errc::connection_ended`
  /// when the server closed the idle connection (the pool replaces it at
  /// once without counting a failure); `errc::not_usable` for a closed
  /// connection; "idle connection broken" with the socket's error (e.g.
  /// `connection_reset`), `std::errc::protocol_error` for data nobody asked
  /// for: losses (the pool counts a failure and reconnects).
  ///
  /// Executor: the coroutine's (a strand of the pool's executor).
  ///
  /// Cancellation: asio per-operation cancellation (a claim, a health check,
  /// a close, termination); it then throws `boost::system::system_error`
  /// with `operation_aborted` without touching the connection again.
  ///
  /// Lifetimes: `c` must stay valid until the call ends or is cancelled
  /// (the pool owns it); the coroutine holds the connector's shared state.
  ///
  /// Thread safety: runs on the connection's strand, never at the same time
  /// as another hook on the same connection; concurrent calls on different
  /// connections are fine.
  ///
  /// Exceptions: the errors above; `boost::system::system_error`
  /// (cancelled); `std::bad_alloc`.
  asio::awaitable<void> watch(connection& c);

  /// The configuration this connector (and its copies) was made with.
  const config& settings() const noexcept;

  struct state;

 private:
  asio::awaitable<void> check_idle(connection& c);
  static asio::awaitable<connection> open(std::shared_ptr<state> s, backend target);
  std::shared_ptr<state> state_;
};

}  // namespace qorb::connectors::http

template <>
struct std::is_error_code_enum<qorb::connectors::http::errc> : std::true_type {};
