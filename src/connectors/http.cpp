// SPDX-License-Identifier: BSL-1.0
#include <qorb/connectors/http.hpp>
#include <qorb/error.hpp>

#include "connectors/http_response.hpp"
#include "connectors/idle_watch.hpp"
#include "connectors/tls_timeout.hpp"
#include "detail/error_category.hpp"
#include "http_limits.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <sys/socket.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace qorb::connectors::http {

namespace bhttp = beast::http;

namespace {

const char* message_of(errc code) noexcept {
  switch (code) {
    case errc::request_timeout:
      return "HTTP request timed out";
    case errc::connection_closed:
      return "the server closed the connection before the response was complete";
    case errc::bad_response:
      return "bad HTTP response";
    case errc::ping_failed:
      return "HTTP health check failed";
    case errc::server_error:
      return "the server answered with a 5xx status";
    case errc::not_usable:
      return "the HTTP connection is not usable";
  }
  return nullptr;
}

[[noreturn]] void fail(errc code, const std::string& detail) {
  throw std::system_error(make_error_code(code), detail);
}

std::string host_header(const config& c, const backend& b, bool tls) {
  if (!c.host.empty()) return c.host;
  std::string host = backend_host(b);
  if (host.find(':') != std::string::npos) host = std::string("[").append(host) + "]";
  const unsigned port = b.address.port();
  if (port != (tls ? 443u : 80u)) {
    host += ':';
    host += std::to_string(port);
  }
  return host;
}

}  // namespace

const std::error_category& category() noexcept {
  static const qorb::detail::error_category<errc> instance(
      "qorb.http", message_of, "unknown HTTP error", qorb::detail::unknown_value::omitted);
  return instance;
}

// --- the connector's shared state ----------------------------------------------

struct connector::state {
  config settings;
  tcp_connector tcp;
  std::optional<tls_connector> tls;

  explicit state(config c) : settings(std::move(c)), tcp(settings.tcp) {
    if (!settings.ping_target.empty() && settings.ping_target.front() != '/') {
      throw std::invalid_argument(
          std::string("http::config::ping_target must start with '/' (or be empty): '")
              .append(settings.ping_target) +
          "'");
    }
    if (settings.body_limit == 0) {
      throw std::invalid_argument("http::config::body_limit must be at least 1 byte");
    }
    if (settings.request_timeout.count() < 0 || settings.ping_timeout.count() < 0) {
      throw std::invalid_argument(
          "http::config::request_timeout and ping_timeout must not be negative");
    }
    if (settings.tls) tls.emplace(*settings.tls);
  }
};

// --- the connection ----------------------------------------------------------

struct connection::impl {
  std::shared_ptr<connector::state> state;
  std::optional<asio::ip::tcp::socket> plain;
  std::optional<tls_stream> secure;
  // Bounded (http_limits.hpp): what the parser must see whole, a chunk
  // header or the trailer, cannot grow past it.
  beast::flat_buffer buffer = detail::http_limits::bounded_buffer();
  std::string host;
  bool reusable = true;
  bool busy = false;
  std::string why_not;  // why it is not reusable
  unsigned last_status = 0;
  std::uint64_t requests = 0;

  asio::ip::tcp::socket& socket() { return secure ? secure->next_layer() : *plain; }
  bool open() { return (secure || plain) && socket().is_open(); }

  void close(std::string why) {
    reusable = false;
    if (why_not.empty()) why_not = std::move(why);
    if (secure || plain) {
      boost::system::error_code ignored;
      socket().close(ignored);
    }
  }
};

connection::connection(std::unique_ptr<impl> p) noexcept : impl_(std::move(p)) {}
connection::connection(connection&&) noexcept = default;
connection& connection::operator=(connection&&) noexcept = default;
connection::~connection() = default;

bool connection::reusable() const noexcept {
  return impl_ && impl_->reusable && !impl_->busy && impl_->open();
}
unsigned connection::last_status() const noexcept { return impl_ ? impl_->last_status : 0; }
std::uint64_t connection::requests() const noexcept { return impl_ ? impl_->requests : 0; }
bool connection::is_tls() const noexcept { return impl_ && impl_->secure.has_value(); }
bool connection::session_reused() const noexcept {
  return impl_ && impl_->secure && impl_->secure->session_reused();
}
const std::string& connection::host() const noexcept {
  static const std::string none;
  return impl_ ? impl_->host : none;
}
asio::ip::tcp::endpoint connection::remote_endpoint() const {
  if (!impl_) fail(errc::not_usable, "no connection (moved from)");
  return impl_->socket().remote_endpoint();
}
void connection::mark_broken() noexcept {
  if (impl_) impl_->close("marked broken");
}

namespace {

// A response read whole, and whether it ends only with the connection.
struct exchanged {
  response res;
  bool needs_eof = false;
};

// A read that failed on what the server sent (or on when it closed): the
// reader's words, as the connector's error.
struct read_failure : std::system_error {
  using std::system_error::system_error;
};

// One exchange on a stream: write the request, read the final response
// whole. The reader decides everything; this loop only moves bytes.
template <class Stream>
asio::awaitable<exchanged> exchange(Stream& stream, beast::flat_buffer& buffer, request& req,
                                    std::size_t body_limit) {
  namespace reading = detail::http_response;
  co_await bhttp::async_write(stream, req, asio::use_awaitable);
  reading::reader reader(body_limit);
  while (reader.parse(buffer) == reading::reader::state::need_more) {
    const auto room = reader.room(buffer);
    if (!room) break;
    auto [ec, n] = co_await stream.async_read_some(*room, asio::as_tuple(asio::use_awaitable));
    buffer.commit(n);
    if (ec == asio::error::eof) {
      reader.end_of_stream();
      break;
    }
    if (ec) throw boost::system::system_error(ec);
  }
  if (reader.current() == reading::reader::state::failed) {
    if (reader.failed_as() == reading::reader::failure::closed) {
      throw read_failure(make_error_code(errc::connection_closed),
                         std::string("the server closed the connection ") + reader.why());
    }
    throw read_failure(make_error_code(errc::bad_response), reader.why());
  }
  const bool needs_eof = reader.needs_eof();
  co_return exchanged{reader.release(), needs_eof};
}

bool closed_by_peer(const boost::system::error_code& ec) {
  return ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::ssl::error::stream_truncated || ec == bhttp::error::partial_message;
}

}  // namespace

asio::awaitable<response> connection::request(http::request req) {
  if (!impl_) fail(errc::not_usable, "no connection (moved from)");
  impl& p = *impl_;
  if (p.busy) fail(errc::not_usable, "another request is in progress on this connection");
  if (!p.open() || !p.reusable) {
    fail(errc::not_usable, std::string("the connection cannot take another request (")
                                   .append(p.why_not.empty() ? "closed" : p.why_not) +
                               ")");
  }
  const config& c = p.state->settings;
  if (req.find(bhttp::field::host) == req.end()) req.set(bhttp::field::host, p.host);
  if (!c.user_agent.empty() && req.find(bhttp::field::user_agent) == req.end()) {
    req.set(bhttp::field::user_agent, c.user_agent);
  }
  if (req.version() == 0) req.version(11);
  req.prepare_payload();
  const bool client_keeps = req.keep_alive();

  p.busy = true;
  p.reusable = false;  // until the response is read whole
  std::optional<exchanged> res;
  try {
    auto op = p.secure ? exchange(*p.secure, p.buffer, req, c.body_limit)
                       : exchange(*p.plain, p.buffer, req, c.body_limit);
    res = co_await detail::within(c.request_timeout, std::move(op));
  } catch (const read_failure& e) {
    // A limit, a protocol error or a close: the connection's state is
    // unknown, so it is not kept, and why says which.
    p.busy = false;
    p.close(e.what());
    throw;
  } catch (const boost::system::system_error& e) {
    p.busy = false;
    const auto ec = e.code();
    if (ec == asio::error::operation_aborted) {
      p.close("a request was cancelled");
      throw;
    }
    if (closed_by_peer(ec)) {
      p.close("the server closed it");
      fail(errc::connection_closed,
           std::string("the server closed the connection (").append(ec.message()) + ")");
    }
    if (ec.category() == boost::system::error_code(bhttp::error::bad_version).category() ||
        ec == bhttp::error::body_limit) {
      p.close("a bad response");
      fail(errc::bad_response, ec.message());
    }
    p.close(ec.message());
    throw std::system_error(std::error_code(ec), "HTTP request");
  } catch (...) {
    p.busy = false;
    p.close("a request failed");
    throw;
  }
  p.busy = false;
  if (!res) {
    p.close("a request timed out");
    fail(
        errc::request_timeout,
        std::string("no whole response within ").append(std::to_string(c.request_timeout.count())) +
            " ms");
  }
  ++p.requests;
  p.last_status = res->res.result_int();
  auto why_not = detail::http_response::close_reason(client_keeps, res->res.keep_alive(),
                                                     res->needs_eof, p.buffer.size());
  if (why_not.empty()) {
    p.reusable = true;
  } else {
    p.close(std::move(why_not));
  }
  co_return std::move(res->res);
}

// --- the connector -----------------------------------------------------------

connector::connector(config settings) : state_(std::make_shared<state>(std::move(settings))) {}

const config& connector::settings() const noexcept { return state_->settings; }

asio::awaitable<connection> connector::connect(const backend& b) {
  // The awaitable starts after this call returns: it gets its own copies.
  return open(state_, b);
}

asio::awaitable<connection> connector::open(std::shared_ptr<state> s, backend target) {
  auto p = std::make_unique<connection::impl>();
  p->state = s;
  p->host = host_header(s->settings, target, s->tls.has_value());
  if (s->tls) {
    p->secure.emplace(co_await s->tls->connect(target));
  } else {
    p->plain.emplace(co_await s->tcp.connect(target));
  }
  co_return connection(std::move(p));
}

namespace {

// A connection that is done after a whole response (either side asked to
// close it, or the body ran to the connection's end) ended normally: the
// pool replaces it without counting a failure (qorb::errc::connection_ended).
bool ended_after_whole_response(const std::string& why_not) {
  using detail::http_response::close_reason;
  return why_not == close_reason(false, true, false, 0) ||
         why_not == close_reason(true, false, false, 0) ||
         why_not == close_reason(true, true, true, 0);
}

[[noreturn]] void ended(const std::string& why) {
  throw std::system_error(make_error_code(qorb::errc::connection_ended), why);
}

}  // namespace

asio::awaitable<void> connector::is_valid(connection& c) {
  auto s = state_;
  if (c.impl_ && !c.reusable() && !c.impl_->busy && ended_after_whole_response(c.impl_->why_not)) {
    ended("not kept: " + c.impl_->why_not);
  }
  if (!c.impl_ || !c.reusable()) {
    fail(errc::not_usable,
         std::string("the connection cannot take another request (")
                 .append(c.impl_ && !c.impl_->why_not.empty() ? c.impl_->why_not : "closed") +
             ")");
  }
  if (s->settings.ping_target.empty()) {
    co_await check_idle(c);
    co_return;
  }
  request ping{s->settings.ping_method, s->settings.ping_target, 11};
  std::optional<response> res;
  try {
    res = co_await detail::within(s->settings.ping_timeout, c.request(std::move(ping)));
  } catch (const boost::system::system_error& e) {
    if (e.code() == asio::error::operation_aborted) throw;
    fail(errc::ping_failed, std::string(s->settings.ping_target).append(": ").append(e.what()));
  } catch (const std::system_error& e) {
    fail(errc::ping_failed, std::string(s->settings.ping_target).append(": ").append(e.what()));
  }
  if (!res) {
    c.mark_broken();
    fail(errc::ping_failed, std::string(s->settings.ping_target).append(": no answer within ") +
                                std::to_string(s->settings.ping_timeout.count()) + " ms");
  }
  if (res->result_int() < 200 || res->result_int() > 299) {
    c.mark_broken();
    fail(errc::ping_failed, std::string(s->settings.ping_target)
                                .append(" answered ")
                                .append(std::to_string(res->result_int())));
  }
  if (!c.reusable()) {
    // A 2xx that ends the connection (`Connection: close`): it served the
    // ping whole, so the server ended it normally.
    if (ended_after_whole_response(c.impl_->why_not)) {
      ended(std::string(s->settings.ping_target).append(": not kept: ") + c.impl_->why_not);
    }
    fail(errc::ping_failed,
         std::string(s->settings.ping_target).append(": the connection cannot be kept (") +
             c.impl_->why_not + ")");
  }
}

asio::awaitable<void> connector::on_acquire(connection& c) {
  if (!state_->settings.check_on_acquire) co_return;
  co_await check_idle(c);
}

asio::awaitable<void> connector::check_idle(connection& c) {
  if (!c.impl_ || !c.impl_->open()) fail(errc::not_usable, "the connection is closed");
  auto s = state_;
  try {
    if (c.impl_->secure) {
      tls_connector::check_open(*c.impl_->secure);
    } else {
      co_await s->tcp.is_valid(*c.impl_->plain);
    }
  } catch (const std::system_error& e) {
    c.impl_->close("the server closed it while idle");
    // A server's close of an idle keep-alive connection (its idle timeout)
    // is the normal end of that connection; a broken one is a failure.
    // (The TLS connector's check says connection_ended for both; a reset or
    // a bad record is a break.)
    if (e.code() == qorb::errc::connection_ended) {
      ended(std::string("idle connection: ").append(e.what()));
    }
    fail(errc::connection_closed, std::string("idle connection: ").append(e.what()));
  }
}

asio::awaitable<void> connector::watch(connection& c) {
  namespace w = qorb::detail::idle_watch;
  if (!c.impl_ || !c.impl_->open()) fail(errc::not_usable, "the connection is closed");
  const auto s = state_;
  connection::impl& p = *c.impl_;
  auto& socket = p.socket();
  // With on_acquire checking, the watch is serialised with it: it may read.
  const bool may_read = p.secure && s->settings.check_on_acquire;
  for (;;) {
    auto seen = co_await w::next(socket);
    if (seen.what == w::news::data) {
      if (may_read) {
        try {
          tls_connector::check_open(*p.secure);  // takes tickets, never blocks
        } catch (const std::system_error& e) {
          if (e.code() == qorb::errc::connection_ended) {
            ended(std::string("the server closed the idle connection (").append(e.what()) + ")");
          }
          throw;
        }
        char byte;
        if (::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT) <= 0) continue;
        // Bytes the TLS state did not take: wait for the FIN behind them.
      }
      if (!w::gone(socket, seen)) {
        if (p.secure) {
          co_await w::hangup(socket);  // records wait unread: until the FIN
        } else if (!co_await detail::within(std::chrono::seconds(1), w::hangup(socket))) {
          co_await w::stop_if_cancelled();
          // Bytes that answer no request, and no close after them.
          throw w::unexpected_data();
        }
        if (!w::gone(socket, seen)) seen = {w::news::closed, {}};
      }
    }
    if (seen.what == w::news::closed) ended("the server closed the idle keep-alive connection");
    throw w::lost(seen);
  }
}

asio::awaitable<void> connector::on_recycle(connection& c) {
  // First: a 5xx counts against the backend. On a connection that is still
  // good (keep-alive) it is a failed request, not a broken connection: the
  // pool counts it as report_failure and keeps the connection. Reported
  // once: the status is forgotten, so a later return without a request
  // reports nothing.
  if (c.impl_ && state_->settings.server_errors_fail_backend && c.impl_->last_status >= 500) {
    const auto last = c.impl_->last_status;
    c.impl_->last_status = 0;
    if (c.reusable()) {
      throw std::system_error(make_error_code(qorb::errc::request_failed),
                              std::string("the server answered ")
                                  .append(std::to_string(last))
                                  .append(" (the connection is kept)"));
    }
    // The response also closed the connection (error pages often say
    // `Connection: close`): it is replaced, and the 5xx still counted.
    c.mark_broken();
    fail(errc::server_error,
         std::string("the last response had status ").append(std::to_string(last)));
  }
  if (c.impl_ && !c.reusable() && !c.impl_->busy && ended_after_whole_response(c.impl_->why_not)) {
    ended("not kept: " + c.impl_->why_not);
  }
  if (!c.impl_ || !c.reusable()) {
    fail(errc::not_usable,
         std::string("not kept: ")
             .append(c.impl_ && !c.impl_->why_not.empty() ? c.impl_->why_not : "closed"));
  }
  co_return;
}

}  // namespace qorb::connectors::http
