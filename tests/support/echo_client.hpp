// SPDX-License-Identifier: BSL-1.0
// The client side of tests against echo servers (support/echo_server.hpp):
// one round trip on a claimed connection, what the servers hold, and a
// set of servers with their resolver.
#pragma once

#include <qorb/resolvers/fixed.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "support/echo_server.hpp"

namespace qorb::test {

/// One round trip on a connection; false if the connection is dead.
inline bool echo_once(boost::asio::ip::tcp::socket& s, const std::string& text) {
  boost::system::error_code ec;
  boost::asio::write(s, boost::asio::buffer(text), ec);
  if (ec) return false;
  std::string back(text.size(), '\0');
  boost::asio::read(s, boost::asio::buffer(back), ec);
  return !ec && back == text;
}

/// The connections the servers hold open right now, together.
inline std::size_t open_on(const std::vector<std::unique_ptr<echo_server>>& servers) {
  std::size_t n = 0;
  for (const auto& s : servers) n += s->open_connections();
  return n;
}

/// Echo servers on loopback for a test, and a resolver that publishes them.
class echo_servers {
 public:
  /// Starts `n` more servers.
  void start_servers(int n) {
    for (int i = 0; i < n; ++i) servers.push_back(std::make_unique<echo_server>());
  }
  /// Their addresses, in start order.
  std::vector<boost::asio::ip::tcp::endpoint> endpoints() const {
    std::vector<boost::asio::ip::tcp::endpoint> out;
    for (const auto& s : servers) out.push_back(s->endpoint());
    return out;
  }
  /// A resolver that publishes every server started so far.
  std::shared_ptr<fixed_resolver> resolver() const {
    return std::make_shared<fixed_resolver>(endpoints());
  }

  std::vector<std::unique_ptr<echo_server>> servers;
};

}  // namespace qorb::test
