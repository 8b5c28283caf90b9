// SPDX-License-Identifier: BSL-1.0
// A user's program with the DNS component: builds a DNS resolver (without
// asking anything) and a pool over it.
#include <qorb/connectors/tcp.hpp>
#include <qorb/pool.hpp>
#include <qorb/resolvers/dns.hpp>

#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <memory>

int main() {
  namespace asio = boost::asio;
  asio::io_context io;
  qorb::dns_resolver_config dns;
  dns.service = "_echo._tcp.test.com";
  dns.servers = {*qorb::parse_dns_server("127.0.0.1:1")};
  qorb::pool<asio::ip::tcp::socket> pool(io.get_executor(), "dns_consumer",
                                         std::make_shared<qorb::dns_resolver>(dns),
                                         qorb::tcp_connector{}, qorb::policy{}, nullptr);
  pool.terminate();
  std::printf("built a pool over a DNS resolver\n");
  return 0;
}
