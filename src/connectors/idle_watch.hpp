// SPDX-License-Identifier: BSL-1.0
// qorb internals: looking at an idle socket without reading it, for the
// `watch` hooks of the TCP, TLS and HTTP connectors. Nothing here consumes
// a byte of the stream or touches a TLS object: a claimer may use the
// connection while a cancelled watch winds down.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>

namespace qorb::detail::idle_watch {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

/// What the socket has to say.
enum class news { data, closed, broken };

struct seen {
  news what = news::data;
  boost::system::error_code error;  // news::broken: the socket's error
};

/// Throws `operation_aborted` when the awaiting coroutine was cancelled:
/// after that, the connection may be a claimer's and is not touched again.
inline asio::awaitable<void> stop_if_cancelled() {
  const auto state = co_await asio::this_coro::cancellation_state;
  if (state.cancelled() != asio::cancellation_type::none) {
    throw boost::system::system_error(asio::error::operation_aborted);
  }
}

inline seen from_peek(const boost::system::error_code& ec) {
  if (ec == asio::error::eof) return {news::closed, {}};
  if (ec) return {news::broken, ec};
  return {news::data, {}};
}

/// Completes when the socket has news: bytes to read (peeked, never
/// consumed), the peer's FIN, or an error. A non-blocking peek first (the
/// peer may have closed before the watch started), then Asio's receive with
/// MSG_PEEK, which peeks again under the reactor's lock before it waits for
/// the socket's next event: an event between the two is not lost.
inline asio::awaitable<seen> next(tcp::socket& socket) {
  char byte;
  const auto n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) co_return seen{news::data, {}};
  if (n == 0) co_return seen{news::closed, {}};
  if (errno != EAGAIN && errno != EWOULDBLOCK) {
    co_return seen{news::broken, {errno, boost::system::system_category()}};
  }
  const auto [ec, got] = co_await socket.async_receive(
      asio::buffer(&byte, 1), tcp::socket::message_peek, asio::as_tuple(asio::use_awaitable));
  co_await stop_if_cancelled();
  if (ec == asio::error::operation_aborted) throw boost::system::system_error(ec);
  (void)got;
  co_return from_peek(ec);
}

/// Whether the peer shut its side (FIN) or the connection broke, seen by
/// `poll(POLLRDHUP)` without reading: it sees a FIN behind unread bytes.
/// Reads the socket's pending error (SO_ERROR) to name a break.
inline bool gone(tcp::socket& socket, seen& out) {
  pollfd p{socket.native_handle(), POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return false;  // nothing (or EINTR: look again later)
  if ((p.revents & (POLLERR | POLLNVAL)) != 0) {
    int error = 0;
    socklen_t size = sizeof error;
    if (::getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &error, &size) != 0 || error == 0) {
      error = (p.revents & POLLNVAL) != 0 ? EBADF : ECONNRESET;
    }
    out = {news::broken, {error, boost::system::system_category()}};
    return true;
  }
  if ((p.revents & (POLLRDHUP | POLLHUP)) != 0) {
    out = {news::closed, {}};
    return true;
  }
  return false;
}

/// Completes when the peer shut its side (FIN) or the connection broke,
/// whatever bytes wait unread before that: a private epoll instance that
/// asks only for EPOLLRDHUP (level-triggered; errors and hang-ups are always
/// reported) becomes readable exactly then, and Asio waits for that. A
/// readiness wait on the socket itself would not do: it completes at once
/// while bytes wait. Cost: the instance (one descriptor while it waits) and
/// six system calls per wait (create, two adds, Asio's re-arm, its removal,
/// close), no timer, no CPU while waiting. Throws
/// `operation_aborted` when cancelled.
inline asio::awaitable<void> hangup(tcp::socket& socket) {
  asio::posix::stream_descriptor watcher(co_await asio::this_coro::executor);
  const int instance = ::epoll_create1(EPOLL_CLOEXEC);
  if (instance < 0) throw std::system_error(errno, std::system_category(), "epoll_create1");
  boost::system::error_code ec;
  watcher.assign(instance, ec);
  if (ec) {
    ::close(instance);
    throw std::system_error(std::error_code(ec), "watching an idle connection");
  }
  epoll_event interest{};
  interest.events = EPOLLRDHUP;
  interest.data.fd = socket.native_handle();
  if (::epoll_ctl(instance, EPOLL_CTL_ADD, socket.native_handle(), &interest) != 0) {
    throw std::system_error(errno, std::system_category(), "epoll_ctl");
  }
  const auto [waited] = co_await watcher.async_wait(asio::posix::stream_descriptor::wait_read,
                                                    asio::as_tuple(asio::use_awaitable));
  co_await stop_if_cancelled();
  if (waited) throw boost::system::system_error(waited);
}

/// The exception for a lost connection: "peer closed the idle connection"
/// or "idle connection broken" with the socket's error.
inline std::system_error lost(const seen& s) {
  if (s.what == news::closed) {
    return std::system_error(std::error_code(boost::system::error_code(asio::error::eof)),
                             "peer closed the idle connection");
  }
  return std::system_error(std::error_code(s.error), "idle connection broken");
}

inline std::system_error unexpected_data() {
  return std::system_error(std::make_error_code(std::errc::protocol_error),
                           "unexpected data on an idle connection");
}

}  // namespace qorb::detail::idle_watch
