// SPDX-License-Identifier: BSL-1.0
#include "observability/stats_session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <exception>
#include <utility>

#include "http_limits.hpp"
#include "observability/stats_json.hpp"
#include "observability/stats_request.hpp"

namespace qorb::detail {
namespace {

using tcp = asio::ip::tcp;
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
using namespace std::chrono_literals;

// How often a WebSocket session reads its pool's stats, and so the shortest
// time between two pushes.
constexpr auto poll_interval = 100ms;
using stats_http::max_request_body;
using stats_http::max_request_header;

}  // namespace

// Closes the connection at once; operations in flight end with errors.
// `abort` resets it instead, discarding unsent output: for a client that
// stopped reading, whose kernel buffers would otherwise stay full.
// On the strand only.
void stats_session::close(bool abort) {
  if (closed_) return;
  closed_ = true;
  wake_.cancel();
  poll_.cancel();
  reply_.cancel();
  auto& socket = ws_ ? beast::get_lowest_layer(*ws_).socket() : stream_.socket();
  beast::error_code ignored;
  if (abort) socket.set_option(asio::socket_base::linger(true, 0), ignored);
  socket.close(ignored);
}

asio::awaitable<void> stats_session::run() {
  const auto self = shared_from_this();
  // Bounded: Beast needs a chunk header or the trailer whole in it, and
  // throws on a trailer field of 64 KiB (http_limits.hpp).
  auto buffer = detail::http_limits::bounded_buffer();
  while (!closed_) {
    http::request_parser<http::string_body> parser;
    detail::http_limits::bound(parser);
    parser.body_limit(max_request_body);
    parser.header_limit(max_request_header);
    stream_.expires_after(server_->config.client_timeout);
    auto [ec, n] = co_await http::async_read(stream_, buffer, parser, use_nothrow);
    if (ec) {
      if (closed_) break;
      if (const auto status = malformed_status(ec)) {
        co_await answer_malformed(*status, ec);
        co_return;
      }
      if (ec != http::error::end_of_stream) {
        server_->log(spdlog::level::debug, "stats_server: reading a request: {}", ec.message());
      }
      break;
    }
    auto request = parser.release();
    std::string pool_name;
    std::chrono::milliseconds update{1000};
    auto response = route(request, pool_name, update);
    if (!response) {
      co_await serve_websocket(std::move(request), std::move(pool_name), update);
      co_return;
    }
    if (pending_) {  // the body is built off this executor
      const auto [kind, only] = *std::exchange(pending_, std::nullopt);
      const auto out = co_await built(kind, only);
      if (closed_) break;
      if (out) {
        response->body() = out->body;
      } else {
        *response = reply(request, http::status::internal_server_error,
                          "could not read the pools' stats\n");
      }
    }
    response->keep_alive(request.keep_alive());
    response->prepare_payload();
    stream_.expires_after(server_->config.client_timeout);
    auto [wec, written] = co_await http::async_write(stream_, *response, use_nothrow);
    if (wec || !response->keep_alive()) break;
  }
  if (!closed_) {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }
  close();
}

stats_session::response_type stats_session::reply(const http::request<http::string_body>& request,
                                                  http::status status, std::string body,
                                                  std::string_view content_type) {
  response_type res(status, request.version());
  res.set(http::field::server, "qorb stats_server");
  res.set(http::field::content_type, content_type);
  res.set(http::field::cache_control, "no-store");
  res.body() = std::move(body);
  return res;
}

// The response to `request`, or nothing for a valid WebSocket upgrade
// (then `pool_name` and `update` say what to push and how often).
std::optional<stats_session::response_type> stats_session::route(
    const http::request<http::string_body>& request, std::string& pool_name,
    std::chrono::milliseconds& update) {
  auto r = stats_http::route_request(
      request.method() == http::verb::get, request.target(), websocket::is_upgrade(request),
      [this](const std::string& name) { return server_->registry.attached(name); },
      [this] { return server_->registry.first_pool(); });
  using action = stats_http::route::action;
  switch (r.what) {
    case action::websocket:
      pool_name = std::move(*r.pool);
      update = r.update;
      return std::nullopt;
    case action::stats:
    case action::metrics:
      // run() has the body built on the server's thread (see built()).
      pending_.emplace(r.what == action::metrics ? output_kind::metrics : output_kind::stats,
                       r.pool.value_or(""));
      return reply(request, http::status::ok, {},
                   r.what == action::metrics ? "text/plain; version=0.0.4; charset=utf-8"
                                             : "application/json");
    case action::reply:
      break;
  }
  auto res = reply(request, static_cast<http::status>(r.status), std::move(r.body));
  if (!r.allow.empty()) res.set(http::field::allow, r.allow);
  if (!r.upgrade.empty()) res.set(http::field::upgrade, r.upgrade);
  return res;
}

// The status for a request that did not parse, or nothing when the
// client just went away or was too slow.
std::optional<http::status> stats_session::malformed_status(const beast::error_code& ec) {
  if (ec == http::error::body_limit) return http::status::payload_too_large;
  if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
    return http::status::request_header_fields_too_large;  // the header, a chunk's or the trailer
  }
  if (ec.category() != http::make_error_code(http::error::bad_method).category() ||
      ec == http::error::end_of_stream || ec == http::error::partial_message ||
      ec == http::error::need_more || ec == http::error::need_buffer) {
    return std::nullopt;
  }
  return http::status::bad_request;
}

// Answers a request that did not parse with `status`, then closes: after
// a bounded drain of what the client still sends, so that the close does
// not reset the connection before the client has read the answer.
asio::awaitable<void> stats_session::answer_malformed(http::status status,
                                                      const beast::error_code& ec) {
  server_->malformed.fetch_add(1, std::memory_order_relaxed);
  server_->log_limited(server_->malformed_log, spdlog::level::info,
                       "stats_server: answering {} to a malformed request: {}",
                       static_cast<unsigned>(status), ec.message());
  std::string body;
  if (status == http::status::payload_too_large) {
    body.append("request body over ").append(std::to_string(max_request_body)).append(" bytes\n");
  } else if (ec == http::error::header_limit) {
    body.append("request line and headers over ")
        .append(std::to_string(max_request_header))
        .append(" bytes\n");
  } else if (const auto limit = detail::http_limits::limit_exceeded(ec); !limit.empty()) {
    body.append("malformed request: ").append(limit).append("\n");
  } else {
    body.append("malformed request: ").append(ec.message()).append("\n");
  }
  response_type res(status, 11);
  res.set(http::field::server, "qorb stats_server");
  res.set(http::field::content_type, "text/plain");
  res.set(http::field::cache_control, "no-store");
  res.body() = std::move(body);
  res.keep_alive(false);
  res.prepare_payload();
  const auto linger = std::min<std::chrono::milliseconds>(server_->config.client_timeout, 1s);
  stream_.expires_after(server_->config.client_timeout);
  auto [wec, written] = co_await http::async_write(stream_, res, use_nothrow);
  if (!wec && !closed_) {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(linger);
    std::array<char, 4096> sink;
    for (std::size_t drained = 0; drained < 1024 * 1024 && !closed_;) {
      auto [rec, got] = co_await stream_.async_read_some(asio::buffer(sink), use_nothrow);
      if (rec) break;
      drained += got;
    }
  }
  close();
}

// The output for `kind` (see stats_registry::build), built on the
// server's thread; null if that failed. Returns early, with whatever it
// has, once the session is closed.
asio::awaitable<std::shared_ptr<const built_output>> stats_session::built(output_kind kind,
                                                                          std::string only) {
  result_.reset();
  if (closed_) co_return nullptr;
  reply_.expires_at(asio::steady_timer::time_point::max());
  // The job holds the session weakly, and the server plainly: stop()
  // joins the builder before the server can go.
  std::weak_ptr<stats_session> weak = shared_from_this();
  // It holds no executor either: a job left queued at stop() may be
  // destroyed after the session's io_context.
  asio::post(server_->builder, [weak, server = server_.get(), kind, only = std::move(only)] {
    const auto self = weak.lock();
    if (!self) return;
    std::shared_ptr<const built_output> out;
    try {
      out = server->registry.build(kind, only);
    } catch (const std::exception& e) {
      server->log(spdlog::level::warn, "stats_server: reading the pools' stats: {}", e.what());
    }
    asio::post(self->get_executor(),
               [self, out = std::move(out)]() mutable { self->deliver(std::move(out)); });
  });
  while (!result_ && !closed_) co_await reply_.async_wait(use_nothrow);
  co_return result_ ? std::move(*result_) : nullptr;
}

void stats_session::deliver(std::shared_ptr<const built_output> out) {
  result_.emplace(std::move(out));
  reply_.cancel();
}

asio::awaitable<void> stats_session::serve_websocket(http::request<http::string_body> request,
                                                     std::string pool_name,
                                                     std::chrono::milliseconds update) {
  stream_.expires_never();  // the WebSocket stream keeps its own time
  ws_.emplace(std::move(stream_));
  websocket::stream_base::timeout timeouts{};
  timeouts.handshake_timeout = server_->config.client_timeout;
  timeouts.idle_timeout = server_->config.client_timeout;
  timeouts.keep_alive_pings = true;
  ws_->set_option(timeouts);
  ws_->set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set(http::field::server, "qorb stats_server"); }));
  auto [ec] = co_await ws_->async_accept(request, use_nothrow);
  if (ec || closed_) {
    close();
    co_return;
  }
  ws_->text(true);
  // The kernel's send buffer would otherwise grow to megabytes for a
  // client that stopped reading before our own queue saw it fall behind.
  const auto send_buffer =
      std::clamp<std::size_t>(server_->config.max_queued_bytes, 16 * 1024, 1024 * 1024);
  beast::error_code ignored;
  beast::get_lowest_layer(*ws_).socket().set_option(
      asio::socket_base::send_buffer_size(static_cast<int>(send_buffer)), ignored);
  asio::co_spawn(get_executor(), read_loop(), asio::detached);
  asio::co_spawn(get_executor(), write_loop(), asio::detached);
  co_await push_loop(pool_name, update);
}

// Reads (and ignores) what the client sends, which also answers its pings
// and close frames.
asio::awaitable<void> stats_session::read_loop() {
  const auto self = shared_from_this();
  beast::flat_buffer buffer;
  while (!closed_) {
    auto [ec, n] = co_await ws_->async_read(buffer, use_nothrow);
    if (ec) break;
    buffer.consume(buffer.size());
  }
  close();
}

// Sends the queued messages one at a time; a queued close frame last.
asio::awaitable<void> stats_session::write_loop() {
  const auto self = shared_from_this();
  while (!closed_) {
    if (outbox_.empty()) {
      if (close_reason_) {
        co_await ws_->async_close(*close_reason_, use_nothrow);
        break;
      }
      wake_.expires_at(asio::steady_timer::time_point::max());
      co_await wake_.async_wait(use_nothrow);
      continue;
    }
    const std::string& message = outbox_.front();
    auto [ec, n] = co_await ws_->async_write(asio::buffer(message), use_nothrow);
    if (ec) break;
    queued_bytes_ -= outbox_.front().size();
    outbox_.pop_front();
  }
  close();
}

asio::awaitable<void> stats_session::push_loop(const std::string& pool_name,
                                               std::chrono::milliseconds update) {
  std::shared_ptr<const built_output> last;
  std::uint64_t last_claims = 0;
  auto last_push = std::chrono::steady_clock::now();
  while (!closed_) {
    const auto out = co_await built(output_kind::sets, pool_name);
    if (closed_) co_return;
    if (out && !out->found) {
      close_reason_.emplace(websocket::close_code::going_away, "pool is gone");
      wake_.cancel();
      co_return;
    }
    const auto now = std::chrono::steady_clock::now();
    const bool changed = out && (!last || (out != last && out->body != last->body));
    if (out && (changed || now - last_push >= update)) {
      // The first push has nothing before it: 0 claims.
      const std::uint64_t claims =
          last && out->total_claims > last_claims ? out->total_claims - last_claims : 0;
      auto message = stats_json::push_message(claims, out->body);
      // One message always fits, however big.
      if (queued_bytes_ > 0 && queued_bytes_ + message.size() > server_->config.max_queued_bytes) {
        server_->log(spdlog::level::info,
                     "stats_server: dropping a WebSocket client that fell {} bytes behind",
                     queued_bytes_);
        close(true);
        co_return;
      }
      queued_bytes_ += message.size();
      outbox_.push_back(std::move(message));
      wake_.cancel();
      last = out;
      last_claims = out->total_claims;
      last_push = now;
    }
    poll_.expires_after(poll_interval);
    co_await poll_.async_wait(use_nothrow);
  }
}

}  // namespace qorb::detail
