// SPDX-License-Identifier: BSL-1.0
// End to end: a pool over the DNS resolver finds TCP echo servers through a
// real Knot DNS server and follows the zone as it changes.
#include "knot_server.hpp"
#include "support/echo_server.hpp"
#include "support/io_threads.hpp"
#include "support/wait.hpp"

#include <qorb/connectors/tcp.hpp>
#include <qorb/pool.hpp>
#include <qorb/resolvers/dns.hpp>

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <gtest/gtest.h>

namespace qorb::test {
namespace {

std::string srv(const char* target, const echo_server& e) {
  return "_echo._tcp.test.com. 1 SRV 0 0 " + std::to_string(e.endpoint().port()) + " " + target +
         ".test.com.";
}

std::string name(const char* target, const echo_server& e) {
  return std::string(target) + ".test.com@127.0.0.1:" + std::to_string(e.endpoint().port());
}

TEST(DnsPool, FollowsTheZone) {
  echo_server e1;
  echo_server e2;
  echo_server e3;
  knot_server knot("test.com",
                   "e1 60 IN A 127.0.0.1\ne2 60 IN A 127.0.0.1\ne3 60 IN A 127.0.0.1\n");
  knot.edit("test.com", {srv("e1", e1), srv("e2", e2)});

  dns_resolver_config c;
  c.service = "_echo._tcp.test.com";
  c.servers = {knot.endpoint()};
  c.query_interval = 200ms;
  c.query_retry_if_no_records_found = 100ms;
  c.query_timeout = 1s;
  c.logger = nullptr;
  policy p;
  p.claim_timeout = 5s;
  p.rebalance_interval = 100ms;
  p.set_config.min_connection_backoff = 5ms;
  p.set_config.max_connection_backoff = 50ms;
  p.set_config.spread = 2ms;

  io_threads io;
  pool<asio::ip::tcp::socket> echo_pool(io.executor(), "echo", std::make_shared<dns_resolver>(c),
                                        tcp_connector{}, p, nullptr);

  // Both backends found in DNS get connections, and a claim echoes.
  ASSERT_TRUE(wait_until([&] { return e1.open_connections() > 0 && e2.open_connections() > 0; }));
  {
    auto h = echo_pool.claim();
    const std::string ping = "ping";
    asio::write(*h, asio::buffer(ping));
    std::string pong(4, '\0');
    asio::read(*h, asio::buffer(pong));
    EXPECT_EQ(pong, ping);
    const auto n = h.backend().name;
    EXPECT_TRUE(n == name("e1", e1) || n == name("e2", e2)) << n;
  }

  // e2 leaves the zone: once its record expires, its connections drain and
  // no claim goes there.
  knot.edit("test.com", {}, {srv("e2", e2)});
  ASSERT_TRUE(wait_until([&] { return e2.open_connections() == 0; }, 10s));
  EXPECT_TRUE(wait_until([&] { return !echo_pool.stats().backends.contains(name("e2", e2)); }));
  for (int i = 0; i < 5; ++i) {
    auto h = echo_pool.claim();
    EXPECT_EQ(h.backend().name, name("e1", e1));
  }
  EXPECT_GT(e1.open_connections(), 0u);

  // e3 joins the zone: the pool connects to it and serves claims from it.
  knot.edit("test.com", {srv("e3", e3)});
  ASSERT_TRUE(wait_until([&] { return e3.open_connections() > 0; }, 10s));
  EXPECT_TRUE(echo_pool.stats().backends.contains(name("e3", e3)));
  std::vector<handle<asio::ip::tcp::socket>> held;
  ASSERT_TRUE(wait_until(
      [&] {
        held.push_back(echo_pool.claim());
        return held.back().backend().name == name("e3", e3) || held.size() >= 12;
      },
      10s));
  EXPECT_EQ(held.back().backend().name, name("e3", e3));
  held.clear();

  echo_pool.terminate();
}

}  // namespace
}  // namespace qorb::test
