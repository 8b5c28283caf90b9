// SPDX-License-Identifier: BSL-1.0
// Test-only: a DNS server on 127.0.0.1 whose answers come from a function
// of the query. Over UDP it answers "truncated" when the answer does not fit
// a 512-byte datagram, so the client retries over TCP on the same port,
// where the whole answer (up to 65535 bytes) is sent.
#pragma once

#include "dns_wire.hpp"

#include <boost/asio/ip/udp.hpp>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <stdexcept>
#include <thread>
#include <vector>

namespace qorb::test::dns {

class tcp_dns_server {
 public:
  using answer_fn = std::function<bytes(const query_info&)>;

  explicit tcp_dns_server(answer_fn answer) : answer_(std::move(answer)) {
    // A UDP port that is also free for TCP: a few tries.
    for (int attempt = 0; attempt < 20 && listen_fd_ < 0; ++attempt) {
      close_all();
      udp_fd_ = bound_socket(SOCK_DGRAM, 0);
      if (udp_fd_ < 0) continue;
      listen_fd_ = bound_socket(SOCK_STREAM, port_);
      if (listen_fd_ >= 0 && ::listen(listen_fd_, 16) != 0) {
        ::close(listen_fd_);
        listen_fd_ = -1;
      }
    }
    if (listen_fd_ < 0) throw std::runtime_error("tcp_dns_server: no free port for UDP and TCP");
    thread_ = std::thread([this] { serve(); });
  }
  ~tcp_dns_server() {
    done_ = true;
    thread_.join();
    for (const int fd : clients_) ::close(fd);
    close_all();
  }
  tcp_dns_server(const tcp_dns_server&) = delete;
  tcp_dns_server& operator=(const tcp_dns_server&) = delete;

  boost::asio::ip::udp::endpoint endpoint() const {
    return {boost::asio::ip::address_v4::loopback(), port_};
  }
  std::string address() const { return std::string("127.0.0.1:").append(std::to_string(port_)); }
  int udp_queries() const { return udp_queries_; }
  int tcp_queries() const { return tcp_queries_; }

 private:
  int bound_socket(int type, unsigned short port) {
    const int fd = ::socket(AF_INET, type, 0);
    if (fd < 0) return -1;
    const int one = 1;
    if (type == SOCK_STREAM) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ::close(fd);
      return -1;
    }
    port_ = ntohs(addr.sin_port);
    return fd;
  }

  void close_all() {
    if (udp_fd_ >= 0) ::close(udp_fd_);
    if (listen_fd_ >= 0) ::close(listen_fd_);
    udp_fd_ = listen_fd_ = -1;
  }

  void serve() {
    while (!done_) {
      std::vector<pollfd> fds{{udp_fd_, POLLIN, 0}, {listen_fd_, POLLIN, 0}};
      for (const int fd : clients_) fds.push_back({fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
      if (fds[0].revents & POLLIN) on_udp();
      if (fds[1].revents & POLLIN) {
        const int fd = ::accept(listen_fd_, nullptr, nullptr);
        if (fd >= 0) clients_.push_back(fd);
      }
      for (std::size_t i = 2; i < fds.size(); ++i) {
        if (fds[i].revents && !on_tcp(fds[i].fd)) {
          ::close(fds[i].fd);
          std::erase(clients_, fds[i].fd);
        }
      }
    }
  }

  void on_udp() {
    std::uint8_t buf[1500];
    sockaddr_in from{};
    socklen_t from_len = sizeof from;
    const auto n =
        ::recvfrom(udp_fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n <= 0) return;
    const auto q = read_query(buf, static_cast<std::size_t>(n));
    if (!q.ok) return;
    ++udp_queries_;
    auto answer = answer_(q);
    if (answer.size() > 512) {
      response_spec s;
      s.id = q.id;
      s.qname = q.qname;
      s.qtype = q.qtype;
      s.truncated = true;
      answer = build_response(s);
    }
    ::sendto(udp_fd_, answer.data(), answer.size(), 0, reinterpret_cast<sockaddr*>(&from),
             from_len);
  }

  // One length-prefixed query (read whole: tests send small queries);
  // false when the connection is done.
  bool on_tcp(int fd) {
    std::uint8_t len[2];
    if (!read_all(fd, len, 2)) return false;
    std::vector<std::uint8_t> query(static_cast<std::size_t>((len[0] << 8) | len[1]));
    if (!read_all(fd, query.data(), query.size())) return false;
    const auto q = read_query(query.data(), query.size());
    if (!q.ok) return false;
    ++tcp_queries_;
    auto answer = answer_(q);
    if (answer.size() > 65535) answer.resize(65535);
    bytes framed;
    put16(framed, static_cast<std::uint16_t>(answer.size()));
    framed.insert(framed.end(), answer.begin(), answer.end());
    return write_all(fd, framed.data(), framed.size());
  }

  static bool read_all(int fd, std::uint8_t* p, std::size_t n) {
    while (n > 0) {
      const auto got = ::recv(fd, p, n, 0);
      if (got <= 0) return false;
      p += got;
      n -= static_cast<std::size_t>(got);
    }
    return true;
  }
  static bool write_all(int fd, const std::uint8_t* p, std::size_t n) {
    while (n > 0) {
      const auto sent = ::send(fd, p, n, MSG_NOSIGNAL);
      if (sent <= 0) return false;
      p += sent;
      n -= static_cast<std::size_t>(sent);
    }
    return true;
  }

  answer_fn answer_;
  int udp_fd_ = -1;
  int listen_fd_ = -1;
  unsigned short port_ = 0;
  std::vector<int> clients_;  // on the server thread only
  std::atomic<bool> done_{false};
  std::atomic<int> udp_queries_{0};
  std::atomic<int> tcp_queries_{0};
  std::thread thread_;
};

/// The hostile answer: `n` SRV records for one target (ports 1..n) and `n`
/// A records for it (127.1.x.y) in the Additional section: n x n backends.
inline bytes n_by_n_answer(const query_info& q, int n, const std::string& target = "t.test.com") {
  response_spec s;
  s.id = q.id;
  s.qname = q.qname;
  s.qtype = q.qtype;
  for (int i = 1; i <= n; ++i) {
    s.answers.push_back(srv_rr(q.qname, 60, static_cast<std::uint16_t>(i), target));
    s.additional.push_back(
        a_rr(target, 60,
             std::string("127.1.")
                 .append(std::to_string(i / 256))
                 .append(".")
                 .append(std::to_string(i % 256))));
  }
  return build_response(s);
}

}  // namespace qorb::test::dns
