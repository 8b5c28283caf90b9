// SPDX-License-Identifier: BSL-1.0
// qorb: the PostgreSQL connector, on libpq, non-blocking on Asio.
#pragma once

#include <qorb/backend.hpp>
#include <qorb/connectors/tcp.hpp>
#include <qorb/log.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

// libpq's connection type, declared as <libpq-fe.h> declares it, so that
// this header needs no libpq headers. Include <libpq-fe.h> yourself to call
// libpq on connection::native_handle().
extern "C" {
struct pg_conn;
typedef struct pg_conn PGconn;
}

namespace qorb::connectors::postgres {

namespace asio = boost::asio;

// --- errors ------------------------------------------------------------------

/// What went wrong, as `std::error_code` values of `postgres::category()`.
enum class errc {
  /// The server could not be reached or refused the session (bad
  /// credentials, unknown database, too many clients...). The message is
  /// libpq's, which never contains the password. Thrown as
  /// `qorb::permanent_error` when the refusal is one no retry changes.
  connect_failed = 1,
  /// `config::connect_timeout` passed before the session was ready.
  connect_timeout,
  /// The connection is known broken, or broke during the operation.
  connection_broken,
  /// The server reported an error: see `error::sqlstate()`.
  server_error,
  /// The statement needs a protocol this API does not speak (COPY); the
  /// connection is marked broken.
  unsupported,
  /// Another command is still in progress on this connection (e.g. one
  /// started through the raw handle, or a cancelled query).
  busy,
};

const std::error_category& category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), category()};
}

/// The exception every operation of this connector throws (except
/// `boost::system::system_error` with `asio::error::operation_aborted` when
/// an operation is cancelled, and `qorb::permanent_error` from `connect`
/// when retrying will not help: see `connector::connect`). Server errors
/// carry PostgreSQL's fields.
class error : public std::system_error {
 public:
  /// Fields of an error reported by the server.
  struct server_fields {
    std::string sqlstate;  ///< five characters, e.g. "42P01"
    std::string severity;  ///< "ERROR", "FATAL", ...
    std::string message;   ///< the primary message
    std::string detail;    ///< the server's detail, or empty
    std::string hint;      ///< the server's hint, or empty
  };

  /// An error of this connector (not the server's), with `message`.
  error(errc code, const std::string& message);
  /// A server error (code `errc::server_error`), or `errc::connection_broken`
  /// when the server went away (then `sqlstate()` may be empty).
  error(errc code, server_fields fields);

  /// PostgreSQL's SQLSTATE, empty when the error did not come from the server.
  const std::string& sqlstate() const noexcept { return fields_.sqlstate; }
  /// "ERROR", "FATAL", ... or empty.
  const std::string& severity() const noexcept { return fields_.severity; }
  /// The server's primary message, or empty.
  const std::string& server_message() const noexcept { return fields_.message; }
  /// The server's detail, or empty.
  const std::string& detail() const noexcept { return fields_.detail; }
  /// The server's hint, or empty.
  const std::string& hint() const noexcept { return fields_.hint; }

 private:
  server_fields fields_;
};

// --- results and parameters --------------------------------------------------

/// A query parameter in PostgreSQL's text format; `std::nullopt` is NULL.
using param = std::optional<std::string>;

/// What a statement returned, every value in PostgreSQL's text format.
struct result {
  using row = std::vector<std::optional<std::string>>;  ///< nullopt is NULL

  std::vector<std::string> columns;  ///< column names
  std::vector<row> rows;             ///< the rows, in order
  std::string command_tag;           ///< e.g. "SELECT 3", "INSERT 0 1"
  std::uint64_t affected_rows = 0;   ///< rows returned, inserted, updated...

  /// The first column of the first row; throws `error` (`errc::unsupported`)
  /// when the result has no rows or no columns.
  const std::optional<std::string>& scalar() const;
};

/// Converts a C++ value into a query parameter: strings as they are,
/// integers and floating-point numbers in decimal, bool as true/false,
/// `std::optional` and `std::nullopt` as NULL when empty. Add overloads in
/// your own namespace (found by ADL) for your types.
inline param to_param(std::nullopt_t) { return std::nullopt; }
inline param to_param(std::string value) { return value; }
inline param to_param(std::string_view value) { return std::string(value); }
inline param to_param(const char* value) { return value ? param(value) : std::nullopt; }
inline param to_param(bool value) { return value ? "true" : "false"; }
template <std::integral T>
requires(!std::same_as<T, bool> && !std::same_as<T, char>) param to_param(T value) {
  return std::to_string(value);
}
param to_param(double value);
inline param to_param(float value) { return to_param(static_cast<double>(value)); }
template <class T>
param to_param(const std::optional<T>& value) {
  return value ? to_param(*value) : std::nullopt;
}

// --- the connection ----------------------------------------------------------

/// One PostgreSQL session: owns a `PGconn` in non-blocking mode and closes
/// it (`PQfinish`) when destroyed. Movable, not copyable.
///
/// Thread safety: one operation at a time (a claimed connection belongs to
/// its claimer). Operations run on the executor of the coroutine that
/// awaits them and never block a thread on the network.
class connection {
 public:
  connection() noexcept = default;
  /// Takes ownership of `native` (which may be null). `description` names
  /// the session in errors and logs; it must not contain a password.
  explicit connection(PGconn* native, std::string description = {}) noexcept;
  /// Takes `other`'s session; `other` becomes closed.
  connection(connection&& other) noexcept;
  /// Closes this session, then takes `other`'s.
  connection& operator=(connection&& other) noexcept;
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  ~connection();

  /// The libpq handle, for everything this class does not wrap. Leave it in
  /// non-blocking mode; a session you leave with results pending or inside
  /// a transaction is cleaned when the claim returns (see
  /// `connector::on_recycle`).
  PGconn* native_handle() const noexcept { return native_; }
  /// Whether it holds a libpq handle.
  bool is_open() const noexcept { return native_ != nullptr; }
  /// True when closed, when libpq reports the connection bad, or after
  /// `mark_broken()`. A broken connection fails every check, so the pool
  /// drops it when the claim returns.
  bool is_broken() const noexcept;
  /// Makes the pool drop this connection when the claim returns.
  void mark_broken() noexcept { broken_ = true; }
  /// "postgres://user@address/database", never with the password.
  const std::string& description() const noexcept { return description_; }

  /// Runs one SQL statement with `$1`, `$2`... bound to `params` (converted
  /// with `to_param`), and returns its rows.
  ///
  /// Usage: `result r = co_await conn.query("SELECT $1::int + 1", 41);`
  ///
  /// Executor: the awaiting coroutine's; never blocks a thread.
  /// Cancellation: asio per-operation cancellation (terminal, partial,
  /// total) through the awaiting coroutine; the operation then throws
  /// `operation_aborted` and the statement may still run on the server:
  /// the session is busy until `connector::on_recycle` drains it.
  /// Exceptions: `error` (`server_error` with SQLSTATE, `connection_broken`,
  /// `busy`, `unsupported`), `boost::system::system_error` when cancelled.
  /// Lifetimes: the connection must outlive the operation; the arguments are
  /// copied before the first suspension.
  template <class... Params>
  asio::awaitable<result> query(std::string_view sql, const Params&... params) {
    std::vector<param> values;
    values.reserve(sizeof...(Params));
    (values.push_back(to_param(params)), ...);
    return query_params(std::string(sql), std::move(values));
  }

  /// `query` with the parameters already converted.
  ///
  /// Handler, errors, executor, cancellation, lifetimes, thread safety and
  /// exceptions: as `query` (the coroutine completes with the rows).
  asio::awaitable<result> query_params(std::string sql, std::vector<param> params);

  /// Runs one or more `;`-separated statements with the simple query
  /// protocol (no parameters), discarding their rows.
  ///
  /// Handler, errors, executor, cancellation, lifetimes, thread safety and
  /// exceptions: as `query` (the coroutine completes when every statement
  /// ran; it throws the first error).
  asio::awaitable<void> execute(std::string sql);

 private:
  friend class connector;
  struct notice_sink;
  struct notice_sink_deleter {
    void operator()(notice_sink* sink) const noexcept;
  };

  PGconn* native_ = nullptr;
  bool broken_ = false;
  std::string description_;
  // Where the server's notices and warnings go (the config's logger), at a
  // stable address for libpq's callback.
  std::unique_ptr<notice_sink, notice_sink_deleter> notices_;
};

// --- the connector -----------------------------------------------------------

/// How to open and keep sessions. Each backend's address and port are put
/// into this template (as libpq's `hostaddr` and `port`, so libpq never
/// resolves names); everything else is the same for every backend. Every
/// field has a default, so designated initializers may name any subset:
/// `pg::config{.user = "app", .password = secret, .database = "app"}`.
struct config {
  std::string user = "postgres";  ///< libpq `user`
  /// Never logged, never put into an error message.
  std::string password{};
  std::string database = "postgres";  ///< libpq `dbname`
  /// libpq `options`: command-line options for the server, e.g.
  /// "-c search_path=app".
  std::string options{};
  /// libpq `sslmode`: disable, allow, prefer, require, verify-ca, verify-full.
  std::string sslmode = "prefer";
  std::string application_name = "qorb";  ///< libpq `application_name`
  /// Bound on the whole of `connect` (TCP, TLS, authentication,
  /// `on_connect`); zero means none.
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
  /// The TCP settings, passed as libpq's keywords: `keepalive` (false:
  /// `keepalives=0`), `keepalive_idle`, `keepalive_interval`,
  /// `keepalive_count` (`keepalives_idle`, `keepalives_interval`,
  /// `keepalives_count`) and `user_timeout` (`tcp_user_timeout`); unset ones
  /// keep libpq's defaults. `no_delay` and `health_check` are not used
  /// (libpq sets TCP_NODELAY itself). Out-of-range values: the connector's
  /// constructor throws `std::invalid_argument` naming the field. The same
  /// keywords in `parameters` win.
  tcp_connector_config tcp{};
  /// Any other libpq connection keyword, e.g. {"sslrootcert", "/ca.pem"} or
  /// {"host", "db.example.com"} (the name TLS verifies; the address still
  /// comes from the backend). `hostaddr` and `port` here are ignored.
  /// qorb sets `gssencmode=disable` (libpq's GSSAPI probe may block on a
  /// Kerberos library call); put {"gssencmode", "prefer"} here to use it.
  std::vector<std::pair<std::string, std::string>> parameters{};
  /// SQL run once on every new session, before `connect` returns (simple
  /// protocol: several statements allowed). Empty: nothing.
  std::string on_connect{};
  /// SQL run every time a connection is claimed, e.g.
  /// "SET statement_timeout = '5s'". Empty: nothing.
  std::string on_acquire{};
  /// Run `DISCARD ALL` on every returned connection (after any rollback),
  /// so no session state (settings, prepared statements, temp tables)
  /// passes from one claimer to the next.
  bool discard_all_on_recycle = false;
  /// Connect successes and failures, and the server's notices, at debug
  /// level (its warnings at warn level); null means silent.
  logger_ptr logger = default_logger();
};

/// The `qorb::connector` for PostgreSQL.
///
/// - `connect`: `PQconnectStartParams` + `PQconnectPoll` driven by socket
///   waits on the calling coroutine's executor, bounded by
///   `config::connect_timeout`, then `config::on_connect`.
/// - `is_valid`: a `SELECT 1` round trip; fails at once when broken.
/// - `on_acquire`: `config::on_acquire`, if any.
/// - `on_recycle`: returns the session to a clean, idle state: drains
///   results still pending, rolls back an open or failed transaction, runs
///   `DISCARD ALL` if configured; fails (so the pool closes the connection)
///   when it is broken, in COPY or pipeline mode, or any step fails.
/// - `watch`: while the session is idle, reads what the server sends; ends
///   when the server ends the session (`pg_terminate_backend`, a shutdown)
///   or the connection closes.
///
/// All five throw `error` on failure and honour asio per-operation
/// cancellation; a connection whose `connect` is cancelled or fails is
/// closed before the exception leaves. Copies share one immutable config;
/// concurrent calls are safe. Each call expects the awaiting coroutine's
/// executor to be a strand (or single-threaded), as the pool guarantees.
///
/// Example:
/// @code
/// namespace pg = qorb::connectors::postgres;
/// pg::config cfg{.user = "app", .password = secret, .database = "app",
///                .on_acquire = "SET statement_timeout = '5s'"};
/// qorb::pool<pg::connection> pool(io.get_executor(), "db",
///                                 std::make_shared<qorb::fixed_resolver>(servers),
///                                 pg::connector(cfg));
/// auto db = co_await pool.co_claim();
/// pg::result r = co_await db->query("SELECT name FROM users WHERE id = $1", 42);
/// @endcode
class connector {
 public:
  using connection_type = connection;  ///< one libpq session

  /// A connector with `settings` (shared, immutable, by every copy).
  explicit connector(config settings = {});

  /// Opens a session to `b.address` (see the class comment).
  ///
  /// Handler: a coroutine; completes when done, throws on failure.
  /// Errors: `error` (see the class comment). Executor: the awaiting
  /// coroutine's, a strand (the pool's for the slot). Cancellation: asio
  /// per-operation cancellation (`operation_aborted`) bounded by `connect_timeout`; a cancelled or
  /// failed connect closes its session before the exception leaves. Lifetimes: the connector's
  /// config is shared by its copies; `b` is copied before the first suspension. Thread safety:
  /// concurrent calls on different connections are safe. Exceptions: `error`,
  /// `qorb::permanent_error` (code `errc::connect_failed`, the same message:
  /// the server refused the user or password (SQLSTATE class 28), the
  /// database does not exist (3D000), or it wants a password and none is
  /// configured; the pool stops retrying), `boost::system::system_error`
  /// (cancelled), `std::bad_alloc`.
  asio::awaitable<connection> connect(const backend& b);

  /// `SELECT 1` on an idle session; fails at once when it is broken.
  ///
  /// Handler: a coroutine; completes when done, throws on failure.
  /// Errors: `error` (see the class comment). Executor: the awaiting
  /// coroutine's, a strand (the pool's for the slot). Cancellation: asio
  /// per-operation cancellation (`operation_aborted`). Lifetimes: the
  /// connector's config is shared by its copies; `c` must stay valid until the call ends (the pool
  /// owns it). Thread safety: concurrent calls on different connections are safe. Exceptions:
  /// `error`, `boost::system::system_error` (cancelled), `std::bad_alloc`.
  asio::awaitable<void> is_valid(connection& c);

  /// Runs `config::on_acquire` (nothing when empty) on a claimed session.
  ///
  /// Handler: a coroutine; completes when done, throws on failure.
  /// Errors: `error` (see the class comment). Executor: the awaiting
  /// coroutine's, a strand (the pool's for the slot). Cancellation: asio
  /// per-operation cancellation (`operation_aborted`). Lifetimes: the
  /// connector's config is shared by its copies; `c` as for `is_valid`. Thread safety: concurrent
  /// calls on different connections are safe. Exceptions: `error`,
  /// `boost::system::system_error` (cancelled), `std::bad_alloc`.
  asio::awaitable<void> on_acquire(connection& c);

  /// Returns a session to a clean, idle state (see the class comment).
  ///
  /// Handler: a coroutine; completes when done, throws on failure.
  /// Errors: `error` (see the class comment). Executor: the awaiting
  /// coroutine's, a strand (the pool's for the slot). Cancellation: asio
  /// per-operation cancellation (`operation_aborted`). Lifetimes: the
  /// connector's config is shared by its copies; `c` as for `is_valid`. Thread safety: concurrent
  /// calls on different connections are safe. Exceptions: `error`,
  /// `boost::system::system_error` (cancelled), `std::bad_alloc`.
  asio::awaitable<void> on_recycle(connection& c);

  /// Watches an idle session (the pool runs it while the connection sits
  /// idle): waits until libpq's socket is readable, then reads and parses
  /// what arrived (`PQconsumeInput`) in a step that does not suspend. It
  /// completes, by throwing, when the session ended: the server's FATAL
  /// message (a terminated backend, a server shutdown) or the connection
  /// closing. Notices, ParameterStatus and notifications are consumed and
  /// the watch goes on (notifications stay queued for `PQnotifies`). It never
  /// returns normally.
  ///
  /// Handler: a coroutine; completes only when the session ended or it is
  /// cancelled. Errors: `error` with `errc::connection_broken`: the server's
  /// fields (e.g. SQLSTATE 57P01, "terminating connection due to
  /// administrator command") when it said why, else libpq's message;
  /// `errc::busy` when a command is in progress (the watch needs an idle
  /// session); `std::system_error` with `qorb::errc::connection_ended` when
  /// the server closed the session for `idle_session_timeout` (57P05), which
  /// is no failure. Executor: the awaiting coroutine's, a strand (the pool's
  /// for the slot); it waits on its own duplicate of libpq's socket, so the
  /// session's later waits never meet its registration. Cancellation: asio
  /// per-operation cancellation; once cancelled it throws
  /// `operation_aborted` without touching the session again (it may be
  /// claimed and in use on another thread by then). Lifetimes: `c` must stay
  /// valid until the call ends or is cancelled (the pool owns it); the
  /// connector's config is shared by its copies. Thread safety: serialised with `on_acquire` on the
  /// strand, as the pool does; concurrent calls on different connections are safe. Exceptions:
  /// `error`, `std::system_error`, `boost::system::system_error` (cancelled), `std::bad_alloc`.
  asio::awaitable<void> watch(connection& c);

  /// The configuration every session is made with.
  const config& settings() const noexcept { return *config_; }

 private:
  std::shared_ptr<const config> config_;
};

}  // namespace qorb::connectors::postgres

template <>
struct std::is_error_code_enum<qorb::connectors::postgres::errc> : std::true_type {};
