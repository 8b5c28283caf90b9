// SPDX-License-Identifier: BSL-1.0
// Plain blocking sockets for the stats server's limit and hostile-client
// tests: what a careless or hostile client does, byte by byte, each read and
// write bounded by a receive/send timeout.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

namespace qorb::test {

/// A connected TCP socket to 127.0.0.1:port, or -1. Reads and writes time
/// out after `timeout`.
inline int connect_raw(unsigned short port,
                       std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

/// Writes all of `data`; false on an error or timeout.
inline bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const auto n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

/// What the peer sent until it closed the connection (`closed` true), or
/// until an error or the socket's timeout (`closed` false).
struct raw_reply {
  std::string text;
  bool closed = false;

  /// The HTTP status of the reply, or 0.
  unsigned status() const {
    if (text.size() < 12 || text.compare(0, 5, "HTTP/") != 0) return 0;
    return static_cast<unsigned>(std::stoul(text.substr(9, 3)));
  }
};

inline raw_reply read_to_close(int fd, std::size_t limit = 1 << 20) {
  raw_reply out;
  char buffer[4096];
  while (out.text.size() < limit) {
    const auto n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n == 0) {
      out.closed = true;
      break;
    }
    if (n < 0) break;
    out.text.append(buffer, static_cast<std::size_t>(n));
  }
  return out;
}

/// Sends `request` on a new connection and reads to the close.
inline raw_reply send_and_read(unsigned short port, std::string_view request) {
  const int fd = connect_raw(port);
  if (fd < 0) return {};
  raw_reply out;
  if (send_all(fd, request)) out = read_to_close(fd);
  ::close(fd);
  return out;
}

/// One GET of `target` on a keep-alive connection: the status, 0 if the
/// reply did not come or did not parse. Reads exactly the reply (its
/// Content-Length), so the connection can carry the next request.
inline unsigned keepalive_get(int fd, std::string_view target) {
  std::string request = "GET ";
  request.append(target).append(" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  if (!send_all(fd, request)) return 0;
  std::string head;
  char c = 0;
  while (head.size() < 16384 && head.find("\r\n\r\n") == std::string::npos) {
    if (::recv(fd, &c, 1, 0) != 1) return 0;
    head += c;
  }
  const auto at = head.find("Content-Length: ");
  if (head.compare(0, 5, "HTTP/") != 0 || at == std::string::npos) return 0;
  std::size_t left = std::stoul(head.substr(at + 16));
  char buffer[8192];
  while (left > 0) {
    const auto n = ::recv(fd, buffer, std::min(left, sizeof buffer), 0);
    if (n <= 0) return 0;
    left -= static_cast<std::size_t>(n);
  }
  return static_cast<unsigned>(std::stoul(head.substr(9, 3)));
}

/// Whether the peer closed or reset the connection within `timeout`, without
/// reading from it.
inline bool peer_closed(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLRDHUP, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) == 1 &&
         (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

/// Descriptors open in this process right now (/proc/self/fd, less the one
/// that reads it).
inline std::size_t open_fds() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    ++n;
  }
  return n > 0 ? n - 1 : 0;
}

}  // namespace qorb::test
