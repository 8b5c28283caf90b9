// SPDX-License-Identifier: BSL-1.0
// The PostgreSQL connector's I/O: libpq in non-blocking mode, every wait for
// the network an asio wait on libpq's socket. Longer than 500 lines: the
// connect, the queries, the recycle and the idle watch share this file's
// socket-wait and error helpers, which would otherwise need a header.
#include <qorb/connectors/postgres.hpp>
#include "connectors/postgres_connect_failure.hpp"
#include "connectors/postgres_protocol.hpp"

#include <qorb/error.hpp>

#include <fcntl.h>
#include <libpq-fe.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string_view>

namespace qorb::connectors::postgres {

namespace {

using clock = std::chrono::steady_clock;
using deadline = std::optional<clock::time_point>;
using wait_type = asio::posix::descriptor_base::wait_type;

struct result_deleter {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using result_ptr = std::unique_ptr<PGresult, result_deleter>;

std::string libpq_message(PGconn* conn) {
  return detail::sanitize_message(conn ? PQerrorMessage(conn) : "no connection", {});
}

// One wait for libpq's socket. The descriptor is registered for this wait
// only: libpq may replace its socket while connecting, and a claimed
// connection is used from whatever executor the claimer runs on.
struct socket_wait {
  explicit socket_wait(const asio::any_io_executor& executor) : descriptor(executor) {}
  asio::posix::stream_descriptor descriptor;
  bool timed_out = false;
};

// Hands a descriptor back to its owner (deregistered from the reactor, never
// closed) when it goes out of scope, including on cancellation.
struct descriptor_release {
  asio::posix::stream_descriptor& descriptor;
  explicit descriptor_release(asio::posix::stream_descriptor& d) noexcept : descriptor(d) {}
  descriptor_release(const descriptor_release&) = delete;
  descriptor_release& operator=(const descriptor_release&) = delete;
  ~descriptor_release() {
    if (descriptor.is_open()) descriptor.release();
  }
};

asio::awaitable<void> wait_socket(PGconn* conn, wait_type what, deadline until) {
  const int fd = PQsocket(conn);
  if (fd < 0) throw error(errc::connection_broken, "no socket: " + libpq_message(conn));
  const auto executor = co_await asio::this_coro::executor;
  auto wait = std::make_shared<socket_wait>(executor);
  wait->descriptor.assign(fd);
  // libpq owns the socket: hand it back on every way out.
  const descriptor_release release{wait->descriptor};

  std::optional<asio::steady_timer> timer;
  if (until) {
    timer.emplace(executor, *until);
    // The handler owns `wait`, so it is safe whenever it runs; once the
    // descriptor is released it does nothing.
    timer->async_wait([wait](const boost::system::error_code& ec) {
      if (ec || !wait->descriptor.is_open()) return;
      wait->timed_out = true;
      boost::system::error_code ignored;
      wait->descriptor.cancel(ignored);
    });
  }
  boost::system::error_code ec;
  co_await wait->descriptor.async_wait(what, asio::redirect_error(asio::use_awaitable, ec));
  if (timer) timer->cancel();
  if (wait->timed_out) throw error(errc::connect_timeout, "timed out");
  if (ec) throw boost::system::system_error(ec);
}

// Sends what libpq has buffered. Reading what the server already sent while
// waiting keeps both sides from blocking on full buffers.
asio::awaitable<void> flush(PGconn* conn, deadline until) {
  for (;;) {
    const int rc = PQflush(conn);
    if (rc == 0) co_return;
    if (rc < 0) throw error(errc::connection_broken, "sending: " + libpq_message(conn));
    co_await wait_socket(conn, wait_type::wait_write, until);
    if (!PQconsumeInput(conn)) {
      throw error(errc::connection_broken, "receiving: " + libpq_message(conn));
    }
  }
}

// The next result of the command in progress, or null when it is complete.
asio::awaitable<result_ptr> next_result(PGconn* conn, deadline until) {
  while (PQisBusy(conn)) {
    co_await wait_socket(conn, wait_type::wait_read, until);
    if (!PQconsumeInput(conn)) {
      throw error(errc::connection_broken, "receiving: " + libpq_message(conn));
    }
  }
  co_return result_ptr(PQgetResult(conn));
}

std::string field(const PGresult* r, int code) {
  const char* value = PQresultErrorField(r, code);
  return value ? value : "";
}

error::server_fields fields_of(const PGresult* r) {
  error::server_fields fields;
  fields.sqlstate = field(r, PG_DIAG_SQLSTATE);
  fields.severity = field(r, PG_DIAG_SEVERITY_NONLOCALIZED);
  if (fields.severity.empty()) fields.severity = field(r, PG_DIAG_SEVERITY);
  fields.message = field(r, PG_DIAG_MESSAGE_PRIMARY);
  if (fields.message.empty())
    fields.message = detail::sanitize_message(PQresultErrorMessage(r), {});
  fields.detail = field(r, PG_DIAG_MESSAGE_DETAIL);
  fields.hint = field(r, PG_DIAG_MESSAGE_HINT);
  return fields;
}

error error_from(PGconn* conn, const PGresult* r) {
  error::server_fields fields = fields_of(r);
  // libpq reports a lost connection as an error result without SQLSTATE.
  const bool lost = PQstatus(conn) != CONNECTION_OK && fields.sqlstate.empty();
  return error(lost ? errc::connection_broken : errc::server_error, std::move(fields));
}

void read_rows(const PGresult* r, result& out) {
  const int columns = PQnfields(r);
  const int rows = PQntuples(r);
  out.columns.clear();
  out.rows.clear();
  out.columns.reserve(static_cast<std::size_t>(columns));
  for (int c = 0; c < columns; ++c) out.columns.emplace_back(PQfname(r, c));
  out.rows.reserve(static_cast<std::size_t>(rows));
  for (int i = 0; i < rows; ++i) {
    result::row& row = out.rows.emplace_back();
    row.reserve(static_cast<std::size_t>(columns));
    for (int c = 0; c < columns; ++c) {
      if (PQgetisnull(r, i, c)) {
        row.emplace_back(std::nullopt);
      } else {
        row.emplace_back(
            std::string(PQgetvalue(r, i, c), static_cast<std::size_t>(PQgetlength(r, i, c))));
      }
    }
  }
  out.command_tag = PQcmdStatus(const_cast<PGresult*>(r));
  out.affected_rows = detail::parse_affected_rows(PQcmdTuples(const_cast<PGresult*>(r)));
}

// Reads every result of the command in progress; keeps the rows of the last
// successful one and throws the first error once the session is idle again.
asio::awaitable<result> collect(connection& conn, deadline until) {
  PGconn* native = conn.native_handle();
  co_await flush(native, until);
  result out;
  std::optional<error> first_error;
  for (;;) {
    result_ptr r = co_await next_result(native, until);
    if (!r) break;
    switch (PQresultStatus(r.get())) {
      case PGRES_TUPLES_OK:
      case PGRES_COMMAND_OK:
      case PGRES_EMPTY_QUERY:
        if (!first_error) read_rows(r.get(), out);
        break;
      case PGRES_COPY_IN:
      case PGRES_COPY_OUT:
      case PGRES_COPY_BOTH:
        // A COPY cannot be ended from here: the session is unusable.
        conn.mark_broken();
        throw error(errc::unsupported, "COPY is not supported by query(); use native_handle()");
      default:
        if (!first_error) first_error.emplace(error_from(native, r.get()));
        break;
    }
  }
  if (first_error) throw *first_error;
  co_return out;
}

void check_usable(const connection& conn) {
  if (!conn.is_open()) throw error(errc::connection_broken, "the connection is closed");
  if (conn.is_broken()) {
    throw error(errc::connection_broken, conn.description() + ": the connection is broken");
  }
}

void send_failed(PGconn* native) {
  const std::string message = libpq_message(native);
  throw error(PQstatus(native) == CONNECTION_OK ? errc::busy : errc::connection_broken,
              "sending: " + message);
}

asio::awaitable<void> run_simple(connection& conn, const std::string& sql, deadline until) {
  check_usable(conn);
  if (!PQsendQuery(conn.native_handle(), sql.c_str())) send_failed(conn.native_handle());
  co_await collect(conn, until);
}

// Drains a command left in progress (by a cancelled query, or through the
// raw handle): sends what is still buffered and reads its results.
asio::awaitable<void> drain(connection& conn) {
  PGconn* native = conn.native_handle();
  co_await flush(native, std::nullopt);
  for (;;) {
    result_ptr r = co_await next_result(native, std::nullopt);
    if (!r) co_return;
    const auto status = PQresultStatus(r.get());
    if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) {
      throw error(errc::unsupported, "a COPY is in progress");
    }
  }
}

detail::transaction_state transaction_of(PGconn* native) {
  switch (PQtransactionStatus(native)) {
    case PQTRANS_IDLE:
      return detail::transaction_state::idle;
    case PQTRANS_ACTIVE:
      return detail::transaction_state::active;
    case PQTRANS_INTRANS:
      return detail::transaction_state::in_transaction;
    case PQTRANS_INERROR:
      return detail::transaction_state::in_error;
    case PQTRANS_UNKNOWN:
      break;
  }
  return detail::transaction_state::unknown;
}

const char* to_string(detail::transaction_state state) {
  switch (state) {
    case detail::transaction_state::idle:
      return "idle";
    case detail::transaction_state::active:
      return "a command in progress";
    case detail::transaction_state::in_transaction:
      return "inside a transaction";
    case detail::transaction_state::in_error:
      return "inside a failed transaction";
    case detail::transaction_state::unknown:
      break;
  }
  return "unknown state";
}

// The watch's own duplicate of libpq's socket, closed by the watch (never
// libpq's socket itself). Its waits are registered apart from the session's
// own: epoll refuses a second registration of one descriptor, and a claimer
// may wait on libpq's socket before a cancelled watch has unwound.
struct duplicate_socket {
  int fd = -1;
  explicit duplicate_socket(int of) noexcept : fd(::fcntl(of, F_DUPFD_CLOEXEC, 0)) {}
  duplicate_socket(const duplicate_socket&) = delete;
  duplicate_socket& operator=(const duplicate_socket&) = delete;
  ~duplicate_socket() {
    if (fd >= 0) ::close(fd);
  }
};

bool ends_session(const std::optional<error::server_fields>& fields) {
  return fields && (fields->severity == "FATAL" || fields->severity == "PANIC");
}

// Keeps what an idle session's notice says about its end: a FATAL or PANIC
// (the backend exits after it), else a warning of SQLSTATE class 57
// (operator intervention: an immediate shutdown warns, then closes).
void remember_last_word(std::optional<error::server_fields>& last, const PGresult* r) {
  error::server_fields fields = fields_of(r);
  const bool ending = fields.severity == "FATAL" || fields.severity == "PANIC";
  if (ending || (fields.sqlstate.starts_with("57") && !ends_session(last))) {
    last = std::move(fields);
  }
}

}  // namespace

// --- connection --------------------------------------------------------------

struct connection::notice_sink {
  logger_ptr logger;
  std::string description;
  // Set by `connector::watch` during its step only: where the server's
  // last word before ending the session goes.
  std::optional<error::server_fields>* last_word = nullptr;

  // libpq calls this from within PQisBusy/PQgetResult (which parse what
  // arrived), on the thread running the operation.
  static void receive(void* arg, const PGresult* r) noexcept {
    const auto* sink = static_cast<const notice_sink*>(arg);
    try {
      if (sink->last_word) remember_last_word(*sink->last_word, r);
    } catch (...) {  // out of memory: the watch reports libpq's message instead
    }
    if (!sink->logger) return;
    const char* severity = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    const bool warning = severity && std::string_view(severity) == "WARNING";
    try {
      sink->logger->log(warning ? spdlog::level::warn : spdlog::level::debug, "postgres: {}: {}",
                        sink->description, detail::sanitize_message(PQresultErrorMessage(r), {}));
    } catch (...) {  // never let an exception into libpq
    }
  }
};

void connection::notice_sink_deleter::operator()(notice_sink* sink) const noexcept { delete sink; }

connection::connection(PGconn* native, std::string description) noexcept
    : native_(native), description_(std::move(description)) {}

connection::connection(connection&& other) noexcept
    : native_(std::exchange(other.native_, nullptr)),
      broken_(std::exchange(other.broken_, false)),
      description_(std::move(other.description_)),
      notices_(std::move(other.notices_)) {}

connection& connection::operator=(connection&& other) noexcept {
  if (this != &other) {
    if (native_) PQfinish(native_);
    native_ = std::exchange(other.native_, nullptr);
    broken_ = std::exchange(other.broken_, false);
    description_ = std::move(other.description_);
    notices_ = std::move(other.notices_);
  }
  return *this;
}

// PQfinish runs before `notices_` goes, so libpq never calls a dead sink.
connection::~connection() {
  if (native_) PQfinish(native_);
}

bool connection::is_broken() const noexcept {
  return broken_ || !native_ || PQstatus(native_) != CONNECTION_OK;
}

asio::awaitable<result> connection::query_params(std::string sql, std::vector<param> params) {
  check_usable(*this);
  if (params.size() > 65535) throw error(errc::unsupported, "more than 65535 parameters");
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  if (!PQsendQueryParams(native_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                         values.data(), nullptr, nullptr, 0)) {
    send_failed(native_);
  }
  co_return co_await collect(*this, std::nullopt);
}

asio::awaitable<void> connection::execute(std::string sql) {
  co_await run_simple(*this, sql, std::nullopt);
}

// --- connector ---------------------------------------------------------------

connector::connector(config settings)
    : config_(std::make_shared<const config>(std::move(settings))) {
  validate(config_->tcp, "postgres::config::tcp.");
}

asio::awaitable<connection> connector::connect(const backend& b) {
  // The frame keeps its own reference: the connector may be gone before a
  // cancelled connect finishes.
  const std::shared_ptr<const config> cfg = config_;
  const std::string where = detail::describe(*cfg, b);
  const auto parameters = detail::connection_parameters(*cfg, b);
  std::vector<const char*> keys;
  std::vector<const char*> values;
  for (const auto& [key, value] : parameters) {
    keys.push_back(key.c_str());
    values.push_back(value.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);

  const deadline until = cfg->connect_timeout.count() > 0
                             ? deadline(clock::now() + cfg->connect_timeout)
                             : std::nullopt;
  const auto failure_text = [&](const std::string& message) {
    std::string text = detail::sanitize_message(where + ": " + message, cfg->password);
    if (cfg->logger) cfg->logger->debug("postgres: connect failed: {}", text);
    return text;
  };
  const auto fail = [&](errc code, const std::string& message) {
    return error(code, failure_text(message));
  };

  // Owned from the start: every way out of this function closes it.
  connection conn(PQconnectStartParams(keys.data(), values.data(), 0), where);
  PGconn* native = conn.native_handle();
  if (!native) throw fail(errc::connect_failed, "out of memory");
  // Notices go to the logger (or nowhere), not to libpq's default: stderr.
  // The sink also hears what an idle session's server says (see `watch`).
  conn.notices_.reset(new connection::notice_sink{cfg->logger, where});
  PQsetNoticeReceiver(native, &connection::notice_sink::receive, conn.notices_.get());
  if (PQstatus(native) == CONNECTION_BAD) {
    throw fail(errc::connect_failed,
               detail::sanitize_message(PQerrorMessage(native), cfg->password));
  }
  // The server's SQLSTATE says whether a refusal is permanent; libpq puts
  // it into the error text only at this verbosity (see
  // postgres_connect_failure.hpp), restored once connected.
  PQsetErrorVerbosity(native, PQERRORS_VERBOSE);
  try {
    // Before the first PQconnectPoll, libpq waits for the socket to be
    // writable (the TCP connection to be established).
    for (PostgresPollingStatusType status = PGRES_POLLING_WRITING; status != PGRES_POLLING_OK;
         status = PQconnectPoll(native)) {
      if (status == PGRES_POLLING_FAILED) {
        const auto failure = detail::read_connect_failure(PQerrorMessage(native));
        // Authentication refused, an unknown database, no password for a
        // server that wants one: retrying will not help. The code and the
        // message are those of the ordinary error.
        if (detail::is_permanent(failure, PQconnectionNeedsPassword(native) == 1)) {
          throw qorb::permanent_error(make_error_code(errc::connect_failed),
                                      failure_text(failure.message));
        }
        throw fail(errc::connect_failed, failure.message);
      }
      co_await wait_socket(
          native, status == PGRES_POLLING_READING ? wait_type::wait_read : wait_type::wait_write,
          until);
    }
    PQsetErrorVerbosity(native, PQERRORS_DEFAULT);
    if (PQsetnonblocking(native, 1) != 0) {
      throw fail(errc::connect_failed, "cannot enter non-blocking mode: " + libpq_message(native));
    }
    if (!cfg->on_connect.empty()) co_await run_simple(conn, cfg->on_connect, until);
  } catch (const error& e) {
    if (e.code() == errc::connect_timeout) {
      throw fail(errc::connect_timeout,
                 "timed out after " + std::to_string(cfg->connect_timeout.count()) + " ms");
    }
    throw;
  }
  if (cfg->logger) cfg->logger->debug("postgres: connected to {}", where);
  co_return conn;
}

asio::awaitable<void> connector::is_valid(connection& c) {
  check_usable(c);
  co_await run_simple(c, "SELECT 1", std::nullopt);
}

asio::awaitable<void> connector::on_acquire(connection& c) {
  check_usable(c);
  const std::shared_ptr<const config> cfg = config_;
  if (!cfg->on_acquire.empty()) co_await run_simple(c, cfg->on_acquire, std::nullopt);
}

asio::awaitable<void> connector::on_recycle(connection& c) {
  const std::shared_ptr<const config> cfg = config_;
  detail::session_facts facts;
  try {
    for (;;) {
      PGconn* native = c.native_handle();
      facts.connection_ok = !c.is_broken();
      facts.pipeline_mode = facts.connection_ok && PQpipelineStatus(native) != PQ_PIPELINE_OFF;
      facts.transaction =
          facts.connection_ok ? transaction_of(native) : detail::transaction_state::unknown;
      switch (detail::next_recycle_step(facts, cfg->discard_all_on_recycle)) {
        case detail::recycle_step::done:
          co_return;
        case detail::recycle_step::close:
          throw error(errc::connection_broken,
                      c.description() + ": cannot be cleaned for reuse (" +
                          (!facts.connection_ok  ? "broken"
                           : facts.pipeline_mode ? "pipeline mode"
                                                 : to_string(facts.transaction)) +
                          ")");
        case detail::recycle_step::drain_results:
          co_await drain(c);
          facts.drained = true;
          break;
        case detail::recycle_step::rollback:
          co_await run_simple(c, "ROLLBACK", std::nullopt);
          facts.rolled_back = true;
          break;
        case detail::recycle_step::discard_all:
          co_await run_simple(c, "DISCARD ALL", std::nullopt);
          facts.discarded = true;
          break;
      }
    }
  } catch (...) {
    c.mark_broken();
    throw;
  }
}

asio::awaitable<void> connector::watch(connection& c) {
  check_usable(c);
  PGconn* const native = c.native_handle();
  if (PQtransactionStatus(native) == PQTRANS_ACTIVE) {
    throw error(errc::busy, c.description() + ": a command is in progress (watch needs it idle)");
  }
  std::optional<error::server_fields> last_word;
  // Parses what libpq holds, after reading what arrived when `read`; never
  // suspends. Throws when the session ended.
  const auto step = [&c, native, &last_word](bool read) {
    struct hearing {
      connection::notice_sink* sink;
      ~hearing() {
        if (sink) sink->last_word = nullptr;
      }
    } const hear{c.notices_.get()};
    if (hear.sink) hear.sink->last_word = &last_word;
    const bool received = !read || PQconsumeInput(native) == 1;
    // Parsing hands notices (and an idle session's errors) to the sink,
    // queues notifications for PQnotifies and applies ParameterStatus.
    PQisBusy(native);
    if (ends_session(last_word)) {
      c.mark_broken();
      // idle_session_timeout: the server's ordinary end of an idle session.
      if (last_word->sqlstate == "57P05") {
        throw std::system_error(make_error_code(qorb::errc::connection_ended),
                                detail::format_server_error(*last_word));
      }
      throw error(errc::connection_broken, *last_word);
    }
    if (!received || PQstatus(native) != CONNECTION_OK) {
      c.mark_broken();
      if (last_word) throw error(errc::connection_broken, *last_word);
      throw error(errc::connection_broken, c.description() + ": " + libpq_message(native));
    }
  };

  step(false);
  const auto executor = co_await asio::this_coro::executor;
  std::optional<duplicate_socket> own;
  for (;;) {
    if (!own || own->fd < 0) own.emplace(PQsocket(native));
    boost::system::error_code ec;
    bool waited = false;
    if (own->fd >= 0) {
      // Registered for this wait only: a new registration reports data that
      // is already there (the reactor's notifications are edge-triggered).
      asio::posix::stream_descriptor readable(executor);
      readable.assign(own->fd, ec);
      const descriptor_release release{readable};
      if (!ec) {
        co_await readable.async_wait(wait_type::wait_read,
                                     asio::redirect_error(asio::use_awaitable, ec));
        waited = true;
      }
    }
    if (!waited) {
      // No descriptor or registration to spare: look once a second instead.
      ec.clear();
      asio::steady_timer timer(executor, std::chrono::seconds(1));
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    // Cancelled (even after the wait completed): the session may be
    // claimed by now; leave it alone.
    if (ec == asio::error::operation_aborted ||
        (co_await asio::this_coro::cancellation_state).cancelled() !=
            asio::cancellation_type::none) {
      throw boost::system::system_error(asio::error::operation_aborted);
    }
    if (ec) {
      throw error(errc::connection_broken,
                  c.description() + ": waiting on the socket: " + ec.message());
    }
    step(true);
  }
}

}  // namespace qorb::connectors::postgres
