// SPDX-License-Identifier: BSL-1.0
// stats_session: one client of a stats_server, on Beast: HTTP requests
// (/stats, /metrics, answered from the registry's snapshot), then possibly
// the /qtop/stats WebSocket feed. Beast is compiled only here and in
// stats_server.cpp.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "observability/stats_server_state.hpp"

namespace qorb::detail {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;

// A client connection: HTTP requests, then possibly a WebSocket. Everything
// runs on the session's own strand, so sessions never wait for each other.
class stats_session : public std::enable_shared_from_this<stats_session> {
 public:
  using server_state = stats_server_state;

  // Counted in `server->connections` by whoever made it, until destroyed.
  stats_session(std::shared_ptr<server_state> server, asio::ip::tcp::socket socket)
      : server_(std::move(server)),
        stream_(std::move(socket)),
        wake_(stream_.get_executor()),
        poll_(stream_.get_executor()),
        reply_(stream_.get_executor()) {}
  ~stats_session() { server_->connections.fetch_sub(1, std::memory_order_relaxed); }
  stats_session(const stats_session&) = delete;
  stats_session& operator=(const stats_session&) = delete;

  asio::any_io_executor get_executor() { return wake_.get_executor(); }

  void close(bool abort = false);
  asio::awaitable<void> run();

 private:
  using response_type = http::response<http::string_body>;

  response_type reply(const http::request<http::string_body>& request, http::status status,
                      std::string body, std::string_view content_type = "text/plain");
  std::optional<response_type> route(const http::request<http::string_body>& request,
                                     std::string& pool_name, std::chrono::milliseconds& update);
  static std::optional<http::status> malformed_status(const beast::error_code& ec);
  asio::awaitable<void> answer_malformed(http::status status, const beast::error_code& ec);
  asio::awaitable<std::shared_ptr<const built_output>> built(output_kind kind, std::string only);
  void deliver(std::shared_ptr<const built_output> out);
  asio::awaitable<void> serve_websocket(http::request<http::string_body> request,
                                        std::string pool_name, std::chrono::milliseconds update);
  asio::awaitable<void> read_loop();
  asio::awaitable<void> write_loop();
  asio::awaitable<void> push_loop(const std::string& pool_name, std::chrono::milliseconds update);

  std::shared_ptr<server_state> server_;
  beast::tcp_stream stream_;  // moved into ws_ on upgrade
  std::optional<websocket::stream<beast::tcp_stream>> ws_;
  asio::steady_timer wake_;  // wakes the writer when output is queued
  asio::steady_timer poll_;
  asio::steady_timer reply_;  // wakes built() when the builder answered
  std::optional<std::shared_ptr<const built_output>> result_;
  std::optional<std::pair<output_kind, std::string>> pending_;  // set by route()
  std::deque<std::string> outbox_;                              // front: being written
  std::size_t queued_bytes_ = 0;
  std::optional<websocket::close_reason> close_reason_;
  bool closed_ = false;
};

}  // namespace qorb::detail
