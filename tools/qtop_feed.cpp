// SPDX-License-Identifier: BSL-1.0
// qtop's feed, over Beast's WebSocket.
#include "qtop_feed.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <algorithm>
#include <chrono>

namespace qtop {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using namespace std::chrono_literals;

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

}  // namespace

asio::awaitable<std::string> run_feed(const options& o,
                                      const std::function<void(std::string)>& on_message,
                                      const std::function<void()>& on_connected) {
  auto ex = co_await asio::this_coro::executor;
  asio::ip::tcp::resolver resolver(ex);
  auto [rec, results] = co_await resolver.async_resolve(o.url.host, o.url.port, use_nothrow);
  if (rec) co_return "cannot resolve " + o.url.host + ": " + rec.message();
  websocket::stream<beast::tcp_stream> ws(ex);
  auto& tcp_layer = beast::get_lowest_layer(ws);
  tcp_layer.expires_after(3s);
  auto [cec, ep] = co_await tcp_layer.async_connect(results, use_nothrow);
  if (cec) co_return "cannot connect: " + cec.message();
  tcp_layer.expires_never();
  websocket::stream_base::timeout timeouts{};
  timeouts.handshake_timeout = 3s;
  // A server that stops answering pings is gone even without a FIN.
  timeouts.idle_timeout = std::max<std::chrono::steady_clock::duration>(5s, 3 * o.interval);
  timeouts.keep_alive_pings = true;
  ws.set_option(timeouts);
  websocket::response_type response;
  auto [hec] = co_await ws.async_handshake(response, o.url.host + ":" + o.url.port, o.url.target,
                                           use_nothrow);
  if (hec) {
    if (response.result_int() != 0 &&
        response.result() != beast::http::status::switching_protocols) {
      std::string body = response.body();
      while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
      co_return "the server answered " + std::to_string(response.result_int()) + " " +
          std::string(response.reason()) + (body.empty() ? "" : ": " + body);
    }
    co_return "WebSocket handshake failed: " + hec.message();
  }
  on_connected();
  beast::flat_buffer buffer;
  for (;;) {
    auto [ec, n] = co_await ws.async_read(buffer, use_nothrow);
    if (ec) {
      if (ec == websocket::error::closed) {
        const auto& reason = ws.reason();
        co_return "the server closed the connection" +
            (reason.reason.empty() ? std::string() : ": " + std::string(reason.reason.c_str()));
      }
      co_return "connection lost: " + ec.message();
    }
    on_message(beast::buffers_to_string(buffer.data()));
    buffer.consume(buffer.size());
  }
}

}  // namespace qtop
