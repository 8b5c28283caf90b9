// SPDX-License-Identifier: BSL-1.0
// The etcd component's HTTP: one connection to one member of the cluster,
// requests and the watch stream of the v3 JSON gateway, as coroutines on
// the owner's strand. Errors come back as text, never as exceptions.
#pragma once

#include "resolvers/etcd_codec.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace qorb::detail::etcd {

namespace asio = boost::asio;

/// The gateway's path prefix (etcd 3.4 serves /v3/ and /v3beta/).
inline constexpr std::string_view api = "/v3/";

/// A body, or why there is none.
struct http_result {
  std::string error;
  std::string body;
};

/// One HTTP/1.1 connection to a member. Used on one strand; `close` (also
/// from that strand) ends whatever is in progress with an error.
class http_connection {
 public:
  explicit http_connection(asio::any_io_executor executor);

  /// Connects to `member`: "" or why not.
  asio::awaitable<std::string> connect(asio::ip::tcp::endpoint member,
                                       std::chrono::milliseconds timeout);
  /// POSTs `body` to api + `path` and reads the whole reply.
  asio::awaitable<http_result> post(std::string_view path, std::string body,
                                    std::chrono::milliseconds timeout);
  /// POSTs `body` to api + `path` and reads the reply's header ("" or why
  /// it failed); its body is then read with `next_message`.
  asio::awaitable<std::string> open_stream(std::string_view path, std::string body,
                                           std::chrono::milliseconds timeout);
  /// The stream's next message (one line of JSON); waits as long as it
  /// takes. An error when the stream ends or breaks.
  asio::awaitable<http_result> next_message();

  void close();

 private:
  asio::awaitable<std::string> send(std::string_view path, std::string body,
                                    std::chrono::milliseconds timeout);

  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::response_parser<boost::beast::http::string_body>> parser_;
  line_splitter lines_;
  std::string host_;
  bool closed_ = false;
};

/// Connects `connection` to `member`, POSTs `body` to api + `path` and
/// parses the reply: "" and the reply, or why it failed (the gateway's own
/// error included).
asio::awaitable<std::string> call(http_connection& connection, asio::ip::tcp::endpoint member,
                                  std::string_view path, std::string body,
                                  std::chrono::milliseconds timeout, reply& out);

/// The delay after `failures` consecutive failed attempts over `members`
/// members: none while another member is still untried in this sweep,
/// then `first`, doubling each sweep, at most `most`.
std::chrono::milliseconds retry_delay(std::size_t failures, std::size_t members,
                                      std::chrono::milliseconds first,
                                      std::chrono::milliseconds most);

}  // namespace qorb::detail::etcd
