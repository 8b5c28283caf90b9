// SPDX-License-Identifier: BSL-1.0
#include <qorb/connectors/tcp.hpp>
#include <qorb/error.hpp>

#include "connectors/idle_watch.hpp"

#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <limits>
#include <stdexcept>
#include <string>
#include <system_error>

namespace qorb {

namespace {

void set_tcp_option(int fd, int option, long long value) {
  const int v = static_cast<int>(value);  // in range: validate() checked it
  if (::setsockopt(fd, IPPROTO_TCP, option, &v, sizeof v) != 0) {
    const char* name = option == TCP_KEEPIDLE    ? "setsockopt(TCP_KEEPIDLE)"
                       : option == TCP_KEEPINTVL ? "setsockopt(TCP_KEEPINTVL)"
                       : option == TCP_KEEPCNT   ? "setsockopt(TCP_KEEPCNT)"
                                                 : "setsockopt(TCP_USER_TIMEOUT)";
    throw std::system_error(errno, std::system_category(), name);
  }
}

}  // namespace

asio::awaitable<asio::ip::tcp::socket> tcp_connector::connect(const backend& b) {
  asio::ip::tcp::socket socket(co_await asio::this_coro::executor);
  co_await socket.async_connect(b.address, asio::use_awaitable);
  // A connect to a closed port in the ephemeral range on this host can be
  // given that very port as its source: TCP "self-connect" succeeds, and the
  // socket echoes whatever is written to it. That is no backend.
  if (socket.local_endpoint() == socket.remote_endpoint()) {
    throw std::system_error(
        std::make_error_code(std::errc::connection_refused),
        "connected to itself (nothing listens on " + to_string(b.address) + ")");
  }
  socket.set_option(asio::ip::tcp::no_delay(config_.no_delay));
  socket.set_option(asio::socket_base::keep_alive(config_.keepalive));
  const int fd = socket.native_handle();
  if (config_.keepalive) {
    if (config_.keepalive_idle) set_tcp_option(fd, TCP_KEEPIDLE, config_.keepalive_idle->count());
    if (config_.keepalive_interval) {
      set_tcp_option(fd, TCP_KEEPINTVL, config_.keepalive_interval->count());
    }
    if (config_.keepalive_count) set_tcp_option(fd, TCP_KEEPCNT, *config_.keepalive_count);
  }
  if (config_.user_timeout) set_tcp_option(fd, TCP_USER_TIMEOUT, config_.user_timeout->count());
  co_return socket;
}

namespace {

// An idle socket has nothing to read; end-of-file means the peer closed it,
// an error that it broke. `after_use`: the check of a returned connection.
void check_socket(asio::ip::tcp::socket& socket, bool after_use) {
  if (!socket.is_open()) throw std::system_error(std::make_error_code(std::errc::not_connected));
  char byte;
  const auto n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) {
    // Closed while idle: a server's idle timeout, the normal end of the
    // connection (replaced without counting a failure). Closed right after
    // an exchange: plain TCP has no way to say that was meant, and a server
    // that drops each connection after a few requests is failing.
    if (after_use) {
      throw std::system_error(std::make_error_code(std::errc::connection_reset),
                              "peer closed the connection after its use");
    }
    throw std::system_error(make_error_code(errc::connection_ended), "peer closed the connection");
  }
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
    throw std::system_error(errno, std::system_category(), "connection broken");
  }
}

}  // namespace

asio::awaitable<void> tcp_connector::is_valid(asio::ip::tcp::socket& socket) {
  if (config_.health_check) {
    co_await config_.health_check(socket);
    co_return;
  }
  check_socket(socket, false);
  co_return;
}

asio::awaitable<void> tcp_connector::on_recycle(asio::ip::tcp::socket& socket) {
  if (config_.health_check) {
    co_await config_.health_check(socket);
    co_return;
  }
  check_socket(socket, true);
  co_return;
}

asio::awaitable<void> tcp_connector::watch(asio::ip::tcp::socket& socket) {
  namespace w = detail::idle_watch;
  // It only peeks: the protocol is assumed to send nothing to an idle
  // connection, so any byte means it is lost (see the header).
  const auto s = co_await w::next(socket);
  if (s.what == w::news::data) throw w::unexpected_data();
  throw w::lost(s);
}

}  // namespace qorb
