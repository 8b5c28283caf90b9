// SPDX-License-Identifier: BSL-1.0
// A user's program: a pool over a local TCP listener, one claim.
#include <qorb/connectors/tcp.hpp>
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <thread>

int main() {
  namespace asio = boost::asio;
  asio::io_context io;
  asio::ip::tcp::acceptor listener(io, {asio::ip::make_address("127.0.0.1"), 0});
  auto work = asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });

  qorb::policy policy;
  policy.claim_timeout = std::chrono::seconds(5);
  int rc = 1;
  {
    qorb::pool<asio::ip::tcp::socket> pool(
        io.get_executor(), "consumer",
        std::make_shared<qorb::fixed_resolver>(std::vector{listener.local_endpoint()}),
        qorb::tcp_connector{}, policy, nullptr);
    qorb::error_code ec;
    auto conn = pool.claim(ec);
    if (!ec && conn->is_open()) {
      std::printf("claimed a connection to %s\n", conn.backend().name.c_str());
      rc = 0;
    } else {
      std::printf("claim failed: %s\n", ec.message().c_str());
    }
  }
  work.reset();
  io.stop();
  runner.join();
  return rc;
}
