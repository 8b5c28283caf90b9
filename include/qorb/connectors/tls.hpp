// SPDX-License-Identifier: BSL-1.0
// qorb: a connector for TLS connections (Asio SSL over OpenSSL).
#pragma once

#include <qorb/backend.hpp>
#include <qorb/connectors/tcp.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <type_traits>

namespace qorb {

/// Why a TLS connection could not be made, as `std::error_code` values of
/// `tls_category()`. Every failure of `tls_connector::connect` after the TCP
/// connect is a `std::system_error` with one of these codes, and a message
/// that names the backend and says what the server sent.
enum class tls_errc {
  /// The server's certificate chain did not verify against the configured
  /// CA file (or the system store): unknown issuer, expired, self-signed...
  certificate_untrusted = 1,
  /// The certificate is trusted but is not for the name (or IP address)
  /// being verified.
  host_name_mismatch,
  /// The server did not answer in TLS: most likely it speaks plain TCP
  /// (e.g. an HTTP server answering "400 Bad Request" in clear text).
  not_tls,
  /// The server closed the connection during the handshake.
  handshake_closed,
  /// Any other handshake failure (no common protocol version or cipher, the
  /// server wanted a client certificate, ...); the message has OpenSSL's
  /// reason.
  handshake_failed,
};

/// The error category of `tls_errc` (named "qorb.tls"); one instance for
/// the program.
const std::error_category& tls_category() noexcept;

/// `e` as a `std::error_code` of `tls_category()` (so `tls_errc` values
/// compare with the codes of thrown `std::system_error`s).
inline std::error_code make_error_code(tls_errc e) noexcept {
  return {static_cast<int>(e), tls_category()};
}

/// How `tls_connector` connects, verifies and resumes its TLS sessions.
/// Every field has a default.
struct tls_connector_config {
  /// How the TCP connection under TLS is made and its socket options
  /// (keep-alive, no-delay). Its `health_check` is not used: set the one
  /// below.
  tcp_connector_config tcp{};
  /// The name sent as SNI and verified against the certificate. Empty: the
  /// backend's host (`backend_host`): the SRV target of a DNS backend, the
  /// IP address of a fixed one (then no SNI is sent, and the certificate
  /// must name the address in its subjectAltName).
  std::string server_name{};
  /// Verify the server's certificate chain and name. On by default; turn
  /// off only for tests against servers nobody should trust.
  bool verify = true;
  /// PEM file of the CA certificates to trust. Empty: the system's store
  /// (OpenSSL's default paths, /etc/ssl/certs on Debian).
  std::string ca_file{};
  /// A client certificate (PEM, may hold the chain) and its private key
  /// (PEM, unencrypted), for servers that ask for one. Both or neither.
  std::string certificate_file{};
  /// The private key of `certificate_file` (PEM, unencrypted). Both or
  /// neither.
  std::string private_key_file{};
  /// Resume TLS sessions: the latest session (TLS 1.3 ticket or TLS 1.2
  /// session) a backend gave is offered again on the next connection to
  /// it, which saves the server a full handshake.
  bool session_resumption = true;
  /// Health check run for `is_valid` (and so on every return of a claim
  /// when the connector is used as is): throw to fail. Without one, the
  /// check is that the peer has not closed the connection.
  std::function<asio::awaitable<void>(class tls_stream&)> health_check = nullptr;
};

/// A TLS connection over TCP: an `asio::ssl::stream<asio::ip::tcp::socket>`
/// (use it as one, e.g. with Beast or `asio::async_read`) that, when it is
/// destroyed after a completed handshake, sends the peer TLS's close_notify
/// without waiting (a non-blocking write of one record, never a read): a
/// clean close whose cost is bounded. For a two-way shutdown that waits for
/// the peer's close_notify, call `async_shutdown` before destruction.
class tls_stream : public asio::ssl::stream<asio::ip::tcp::socket> {
 public:
  /// The Asio SSL stream this is (its constructors are inherited).
  using base = asio::ssl::stream<asio::ip::tcp::socket>;
  using base::base;
  /// Takes over `other`'s connection and TLS state.
  tls_stream(tls_stream&&) noexcept = default;
  /// Sends close_notify on this stream's own connection first (as the
  /// destructor does), then takes over `other`'s.
  tls_stream& operator=(tls_stream&& other) noexcept;
  /// Sends close_notify without waiting when the handshake had completed
  /// and none was sent yet; then closes the socket.
  ~tls_stream();

  /// Whether the handshake resumed an earlier session (no full handshake).
  bool session_reused() const noexcept;
  /// The negotiated protocol, e.g. "TLSv1.3", or "" before the handshake.
  std::string protocol() const;

 private:
  void close_notify() noexcept;
};

/// The host part of a backend's name: "db1.example.com" for a DNS backend
/// named "db1.example.com.@10.0.0.1:5432", the IP address ("127.0.0.1",
/// "::1") otherwise.
std::string backend_host(const backend& b);

/// Connects a `tls_stream` to each backend: TCP connect (as
/// `tcp_connector`), then the TLS handshake with SNI and certificate
/// verification, both inside `connect`, so the pool's `connect_timeout`
/// bounds them together (and the pool's cancellation stops either).
///
/// The TLS context (trust store, client certificate) is loaded once, by the
/// constructor, which throws `std::system_error` when a file cannot be
/// loaded (naming it) and `std::invalid_argument` for a certificate without
/// a key or the other way round. Copies share it. Concurrent calls are safe.
///
/// Example: a pool of TLS streams, verified against a private CA (the
/// backend's SRV target or IP address is the name checked and sent as SNI):
/// @code
/// qorb::tls_connector_config tls{.ca_file = "/etc/api/ca.pem"};
/// qorb::pool<qorb::tls_stream> pool(io, "api", resolver, qorb::tls_connector(tls));
/// auto stream = co_await pool.co_claim();  // handshake done, verified
/// co_await asio::async_write(*stream, asio::buffer(request), asio::use_awaitable);
/// @endcode
class tls_connector {
 public:
  /// The pool's connections are TLS streams.
  using connection_type = tls_stream;

  /// A connector that connects as `config` says. Loads the TLS context
  /// (CA file or the system's store, client certificate and key) now:
  /// throws `std::system_error` naming the file that cannot be loaded, and
  /// `std::invalid_argument` when only one of `certificate_file` and
  /// `private_key_file` is set.
  explicit tls_connector(tls_connector_config config = {});

  /// Connects a socket to `b.address` (as `tcp_connector`, with
  /// `config.tcp`), then does the TLS handshake: SNI and verification
  /// against `config.server_name`, or else `backend_host(b)`; an earlier
  /// session of the same name and address is offered when
  /// `session_resumption` is on.
  ///
  /// Handler: a coroutine; `co_await` gives the stream, its handshake
  /// done.
  ///
  /// Errors: thrown: the TCP connect's errors, as `tcp_connector::connect`;
  /// then `std::system_error` with a `tls_errc` (`certificate_untrusted`,
  /// `host_name_mismatch`, `not_tls`, `handshake_closed`,
  /// `handshake_failed`) and a message naming the backend.
  ///
  /// Executor: the socket is made on the coroutine's executor (the pool
  /// runs it on a strand of the pool's executor).
  ///
  /// Cancellation: per-operation cancellation (the pool's connect timeout,
  /// termination) cancels the TCP connect or the handshake, whichever is
  /// running; it then throws `boost::system::system_error` with
  /// `operation_aborted`.
  ///
  /// Lifetimes: `b` is copied before the first suspension, and the
  /// coroutine holds the connector's shared state (context, session
  /// cache), so the awaitable may outlive both.
  ///
  /// Thread safety: concurrent calls are fine (copies share the context;
  /// the session cache is locked).
  ///
  /// Exceptions: the errors above; `std::bad_alloc`.
  asio::awaitable<tls_stream> connect(const backend& b);

  /// Checks an idle stream: `config.health_check` when set, otherwise
  /// `check_open` (that the peer has not closed it).
  ///
  /// Handler: a coroutine that completes when the check passed.
  ///
  /// Errors: thrown `std::system_error`: `not_connected` for a closed
  /// socket, `qorb::errc::connection_ended` when the peer closed the
  /// connection (or sent close_notify: a server's idle timeout, replaced
  /// without counting a failure), `connection_reset` when it broke,
  /// `protocol_error` for application data on the idle connection, the
  /// socket's errno; or whatever `health_check` throws.
  ///
  /// Executor: the coroutine's (a strand of the pool's executor).
  ///
  /// Cancellation: the built-in check does not suspend; `health_check`
  /// should honour per-operation cancellation.
  ///
  /// Lifetimes: `stream` must stay valid until the call ends (the pool
  /// owns it).
  ///
  /// Thread safety: concurrent calls on different streams are fine.
  ///
  /// Exceptions: the errors above.
  asio::awaitable<void> is_valid(tls_stream& stream);

  /// Checks a returned stream as `is_valid` does, but a peer that closed it
  /// right after its use is a failure (`connection_reset`), not a normal
  /// end: nothing says that was meant, and a server that drops each
  /// connection after a request is failing.
  ///
  /// Errors: as `is_valid`, with that difference.
  ///
  /// Handler, executor, cancellation, lifetimes, thread safety and
  /// exceptions: as `is_valid`.
  asio::awaitable<void> on_recycle(tls_stream& stream);

  /// Watches an idle stream (the pool runs it while the connection sits
  /// idle) and completes when the connection is no longer usable. It looks
  /// only at the TCP socket under the stream and never touches the TLS
  /// state (the connector has no `on_acquire`, so a claimer may use the
  /// stream while a cancelled watch winds down): readiness waits, `recv`
  /// with `MSG_PEEK`, and `poll` with `POLLRDHUP`.
  ///
  /// What it sees: the peer's FIN (with or without a close_notify before
  /// it: servers send close_notify, then close) and an RST, at once, also
  /// when records wait unread before them. What it cannot see: a
  /// close_notify without a FIN, or application data, because records can
  /// only be told apart by decrypting them (TLS 1.3 session tickets, which
  /// servers send to every new connection, look the same and are not a
  /// loss); `is_valid` finds those at the next health check.
  ///
  /// Handler: a coroutine; it completes only when the connection is lost,
  /// by throwing, or when it is cancelled. First a non-blocking look (a peer
  /// that closed before the watch started is seen at once). While nothing
  /// waits unread it waits for the socket to become readable (no timer, no
  /// system call beyond two peeks). While records wait unread (tickets no
  /// claimer has read yet), a readiness wait would complete at once, so it
  /// waits on a private epoll instance that asks only for EPOLLRDHUP
  /// (level-triggered): it is readable exactly when the FIN or an error
  /// came. Its cost: one descriptor while it waits and eight system calls
  /// per watch (a peek, a `poll`, `epoll_create1`, three `epoll_ctl`,
  /// `close` and the closing `epoll_ctl`; counted with strace); no timer,
  /// no CPU while waiting.
  ///
  /// Errors: thrown `std::system_error`: "peer closed the idle connection"
  /// (end of file: the FIN); "idle connection broken" with the socket's
  /// error (e.g. `connection_reset`). Both are losses (the pool counts a
  /// failure and reconnects).
  ///
  /// Executor: the coroutine's (a strand of the pool's executor).
  ///
  /// Cancellation: asio per-operation cancellation (a claim, a health check,
  /// a close, termination); it then throws `boost::system::system_error`
  /// with `operation_aborted` without touching the stream again.
  ///
  /// Lifetimes: `stream` must stay valid until the call ends or is
  /// cancelled (the pool owns it).
  ///
  /// Thread safety: runs on the connection's strand, so never at the same
  /// time as another hook on the same stream; concurrent calls on different
  /// streams are fine.
  ///
  /// Exceptions: the errors above; `boost::system::system_error`
  /// (cancelled); `std::bad_alloc`.
  asio::awaitable<void> watch(tls_stream& stream);

  /// Connects a stream to `b` with `server_name` (empty: as `connect`
  /// chooses): for connectors that put a protocol on top of TLS. Both are
  /// copied, so the awaitable may outlive the arguments (as with `connect`).
  ///
  /// Handler, errors, executor, cancellation, lifetimes, thread safety and
  /// exceptions: as the other `connect`.
  asio::awaitable<tls_stream> connect(backend b, std::string server_name);

  /// Whether `stream`'s peer has closed the connection (a non-blocking look
  /// at the socket that processes TLS records already there, e.g. session
  /// tickets, but no application data). Throws `std::system_error` when the
  /// peer closed it (`qorb::errc::connection_ended`: the normal end of an
  /// idle connection, which the pool replaces without counting a failure)
  /// or it broke (another code); used by `is_valid` and by protocols on top.
  static void check_open(tls_stream& stream);

  /// The configuration this connector (and its copies) was made with.
  const tls_connector_config& config() const noexcept;

  /// The state copies share (context, config, session cache); defined in
  /// the implementation.
  struct state;

 private:
  std::shared_ptr<state> state_;
};

}  // namespace qorb

template <>
struct std::is_error_code_enum<qorb::tls_errc> : std::true_type {};
