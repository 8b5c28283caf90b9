// SPDX-License-Identifier: BSL-1.0
// Compile-fail case (tests/compile_fail/CMakeLists.txt): must not compile, with the message
// below, in one error.
// expect: no `connection_type`; write `using connection_type = YourConnection;`
// errors: 1
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <memory>

namespace asio = boost::asio;

struct no_type {  // forgot `using connection_type = asio::ip::tcp::socket;`
  asio::awaitable<asio::ip::tcp::socket> connect(const qorb::backend& b);
};

int main() {
  asio::io_context io;
  qorb::pool<asio::ip::tcp::socket> pool(io, "probe", std::make_shared<qorb::fixed_resolver>(),
                                         no_type{});
}
