// SPDX-License-Identifier: BSL-1.0
// qorb internals: looking at an idle socket without reading it, for the
// `watch` hooks of the TCP, TLS and HTTP connectors. Nothing here consumes
// a byte of the stream or touches a TLS object: a claimer may use the
// connection while a cancelled watch winds down.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <system_error>

namespace qorb::detail::idle_watch {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

/// While bytes wait unread (TLS records the watch may not read), a FIN or an
/// error is awaited as the socket's next event; this re-check bounds the
/// damage should such an event ever be missed. Its cost: one timer, one
/// `poll` and one peek per second per connection in that state.
inline constexpr std::chrono::seconds recheck_interval{1};

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

inline asio::awaitable<void> gone_or_after(tcp::socket& socket, std::chrono::milliseconds limit) {
  // After a post: the edge wait beside this one is armed by then.
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  pollfd p{socket.native_handle(), POLLRDHUP, 0};
  if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0) {
    co_return;
  }
  asio::steady_timer timer(co_await asio::this_coro::executor, limit);
  co_await timer.async_wait(asio::use_awaitable);
}

/// Waits, without reading the bytes that wait unread, for the socket's next
/// event (more bytes, the FIN, an error: Asio's edge-triggered wait), or
/// `limit`. The wait is armed before the FIN is looked for once more, so a
/// FIN that came after the caller's last look is not missed. Throws
/// `operation_aborted` when cancelled.
inline asio::awaitable<void> next_event(tcp::socket& socket, std::chrono::milliseconds limit) {
  using namespace asio::experimental::awaitable_operators;
  try {
    co_await (socket.async_wait(tcp::socket::wait_read, asio::use_awaitable) ||
              gone_or_after(socket, limit));
  } catch (const boost::system::system_error&) {
    // Both failed: only a cancellation does that (checked below), or a
    // closed socket (the next look says so).
  }
  co_await stop_if_cancelled();
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
