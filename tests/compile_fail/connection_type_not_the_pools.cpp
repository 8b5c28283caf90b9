// SPDX-License-Identifier: BSL-1.0
// Compile-fail case (tests/compile_fail/CMakeLists.txt): must not compile, with the message
// below, in one error.
// expect: the connector's `connection_type` is not the pool's `Conn`; write `qorb::pool<YourConnector::connection_type>`
// errors: 1
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <memory>
#include <string>

namespace asio = boost::asio;

struct string_connector {
  using connection_type = std::string;
  asio::awaitable<std::string> connect(const qorb::backend& b);
};

int main() {
  asio::io_context io;
  // A pool of sockets with a connector of strings.
  qorb::pool<asio::ip::tcp::socket> pool(
      io.get_executor(), "probe", std::make_shared<qorb::fixed_resolver>(), string_connector{});
}
