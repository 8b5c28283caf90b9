// SPDX-License-Identifier: BSL-1.0
// A real TCP echo server on loopback that runs inside the calling process on
// its own thread. It counts the connections it accepts and those still
// open, so the demo and the tests see from the server side what a pool did.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <cstddef>
#include <memory>

namespace qorb::examples {

class echo_server {
 public:
  /// Listens on `address` at a free port (or `port`).
  explicit echo_server(
      const boost::asio::ip::address& address = boost::asio::ip::make_address("127.0.0.1"),
      unsigned short port = 0);
  ~echo_server();
  echo_server(const echo_server&) = delete;
  echo_server& operator=(const echo_server&) = delete;

  boost::asio::ip::tcp::endpoint endpoint() const;
  /// Connections accepted since the start.
  std::size_t accepted() const;
  /// Connections open right now (closed by the peer or by `stop`: not).
  std::size_t open_connections() const;
  /// Kills the backend: closes the listener and every connection.
  void stop();
  /// Listens again on the same port (after `stop`).
  void restart();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace qorb::examples
