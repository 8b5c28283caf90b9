// SPDX-License-Identifier: BSL-1.0
#include "resolvers/etcd_http.hpp"

#include "http_limits.hpp"

#include <qorb/backend.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

namespace qorb::detail::etcd {

namespace beast = boost::beast;
namespace http = beast::http;

namespace {
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

// A read error in words; the limits name themselves.
std::string read_error(std::string_view what, const beast::error_code& ec) {
  auto limit = http_limits::limit_exceeded(ec);
  return std::string(what).append(": ").append(limit.empty() ? ec.message() : limit);
}

}  // namespace

http_connection::http_connection(asio::any_io_executor executor)
    : stream_(std::move(executor)), buffer_(http_limits::bounded_buffer()) {}

asio::awaitable<std::string> http_connection::connect(asio::ip::tcp::endpoint member,
                                                      std::chrono::milliseconds timeout) {
  host_ = qorb::to_string(member);
  stream_.expires_after(timeout);
  auto [ec] = co_await stream_.async_connect(member, nothrow);
  if (closed_) co_return "stopped";
  if (ec == beast::error::timeout) co_return "connect: timed out";
  if (ec) co_return std::string("connect: ").append(ec.message());
  stream_.socket().set_option(asio::ip::tcp::no_delay(true), ec);
  co_return std::string();
}

asio::awaitable<std::string> http_connection::send(std::string_view path, std::string body,
                                                   std::chrono::milliseconds timeout) {
  http::request<http::string_body> request(http::verb::post, std::string(api).append(path), 11);
  request.set(http::field::host, host_);
  request.set(http::field::content_type, "application/json");
  request.keep_alive(true);
  request.body() = std::move(body);
  request.prepare_payload();
  stream_.expires_after(timeout);
  auto [ec, n] = co_await http::async_write(stream_, request, nothrow);
  static_cast<void>(n);
  if (closed_) co_return "stopped";
  if (ec) co_return std::string("sending the request: ").append(ec.message());
  parser_.emplace();
  http_limits::bound(*parser_);
  parser_->body_limit(max_reply);
  auto [rec, rn] = co_await http::async_read_header(stream_, buffer_, *parser_, nothrow);
  static_cast<void>(rn);
  if (closed_) co_return "stopped";
  if (rec == beast::error::timeout) co_return "no reply in time";
  if (rec) co_return read_error("reading the reply", rec);
  co_return std::string();
}

asio::awaitable<http_result> http_connection::post(std::string_view path, std::string body,
                                                   std::chrono::milliseconds timeout) {
  http_result out;
  out.error = co_await send(path, std::move(body), timeout);
  if (!out.error.empty()) co_return out;
  auto [ec, n] = co_await http::async_read(stream_, buffer_, *parser_, nothrow);
  static_cast<void>(n);
  if (closed_) {
    out.error = "stopped";
  } else if (ec == beast::error::timeout) {
    out.error = "no reply in time";
  } else if (ec) {
    out.error = read_error("reading the reply", ec);
  } else {
    out.body = std::move(parser_->get().body());
    const auto status = parser_->get().result_int();
    // The gateway answers errors with a JSON body ({"error": ...}), which
    // says more than the status; an error without one gets the status.
    if (status != 200 && out.body.find("\"error\"") == std::string::npos) {
      out.error = std::string("HTTP status ").append(std::to_string(status));
    }
  }
  co_return out;
}

asio::awaitable<std::string> http_connection::open_stream(std::string_view path, std::string body,
                                                          std::chrono::milliseconds timeout) {
  auto error = co_await send(path, std::move(body), timeout);
  if (!error.empty()) co_return error;
  parser_->body_limit(boost::none);
  const auto status = parser_->get().result_int();
  if (status != 200) co_return std::string("HTTP status ").append(std::to_string(status));
  stream_.expires_never();
  co_return std::string();
}

asio::awaitable<http_result> http_connection::next_message() {
  http_result out;
  auto& body = parser_->get().body();
  for (;;) {
    const auto got = lines_.next(body, out.body);
    if (got == line_splitter::status::line) co_return out;
    if (got == line_splitter::status::too_long) {
      out.error = "a watch message is over " + std::to_string(max_reply / (1024 * 1024)) +
                  " MiB without its end of line";
      co_return out;
    }
    if (parser_->is_done()) {
      out.error = "the member ended the stream";
      co_return out;
    }
    auto [ec, n] = co_await http::async_read_some(stream_, buffer_, *parser_, nothrow);
    static_cast<void>(n);
    if (closed_) {
      out.error = "stopped";
      co_return out;
    }
    if (ec == http::error::end_of_stream || ec == asio::error::eof) {
      out.error = "the member closed the connection";
      co_return out;
    }
    if (ec) {
      out.error = read_error("reading the stream", ec);
      co_return out;
    }
  }
}

void http_connection::close() {
  closed_ = true;
  stream_.close();
}

asio::awaitable<std::string> call(http_connection& connection, asio::ip::tcp::endpoint member,
                                  std::string_view path, std::string body,
                                  std::chrono::milliseconds timeout, reply& out) {
  if (auto error = co_await connection.connect(member, timeout); !error.empty()) co_return error;
  const auto result = co_await connection.post(path, std::move(body), timeout);
  if (!result.error.empty()) co_return result.error;
  out = parse_reply(result.body);
  if (!out.error.empty()) co_return std::string(path).append(": ").append(out.error);
  co_return std::string();
}

std::chrono::milliseconds retry_delay(std::size_t failures, std::size_t members,
                                      std::chrono::milliseconds first,
                                      std::chrono::milliseconds most) {
  if (members == 0 || failures == 0 || failures % members != 0) return std::chrono::milliseconds(0);
  auto delay = first;
  for (std::size_t sweep = failures / members; sweep > 1 && delay < most; --sweep) delay *= 2;
  return std::min(delay, most);
}

}  // namespace qorb::detail::etcd
