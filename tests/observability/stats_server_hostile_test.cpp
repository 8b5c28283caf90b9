// SPDX-License-Identifier: BSL-1.0
// Hostile clients of the stats server, all at once: a scrape flood,
// slowloris clients, WebSocket clients that never read, then 1,000 idle
// connections on top (above max_connections). The pool keeps serving claims
// throughout, and the server serves again once they are gone.
#include <sys/resource.h>

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "live_pool.hpp"
#include "raw_client.hpp"

namespace qorb::test {
namespace {

using namespace std::chrono_literals;

// A WebSocket client that upgrades, then never reads (a small receive
// buffer, so the server's output piles up on its side).
int silent_websocket(unsigned short port) {
  const int small = 4096;
  const int conn = connect_raw(port);
  if (conn < 0) return -1;
  ::setsockopt(conn, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  send_all(conn,
           "GET /qtop/stats?update_secs=0.1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n");
  return conn;
}

unsigned get_status(unsigned short port, std::string_view target) {
  std::string request = "GET ";
  request.append(target).append(" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  return send_and_read(port, request).status();
}

TEST(stats_server_hostile, the_pool_keeps_serving_and_the_server_recovers) {
  rlimit limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
  if (limit.rlim_cur < 4096) {
    limit.rlim_cur = std::min<rlim_t>(limit.rlim_max, 4096);
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  if (limit.rlim_cur < 2048) GTEST_SKIP() << "needs 2,048 descriptors, has " << limit.rlim_cur;

  stats_server_config config = observed_pool::quiet();
  config.client_timeout = 5s;
  config.max_queued_bytes = 64 * 1024;
  observed_pool live(100, config);
  const auto port = live.port();
  ASSERT_TRUE(wait_until([&] { return live.pool->stats().backends.size() == 100; }));

  // Claims all along.
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> served{0}, failed{0};
  std::thread claimer([&] {
    while (!done) {
      error_code ec;
      auto h = live.pool->claim(5s, ec);
      ++(ec ? failed : served);
    }
  });
  const auto claims_go_on = [&] {
    const auto before = served.load();
    return wait_until([&] { return served >= before + 50; });
  };
  ASSERT_TRUE(claims_go_on());

  // A scrape flood: four keep-alive clients, reconnecting when refused.
  std::atomic<std::uint64_t> scrapes{0};
  std::vector<std::thread> flood;
  for (int i = 0; i < 4; ++i) {
    flood.emplace_back([&, i] {
      while (!done) {
        const int fd = connect_raw(port);
        while (fd >= 0 && !done && keepalive_get(fd, i % 2 ? "/metrics" : "/stats") == 200) {
          ++scrapes;
        }
        if (fd >= 0) ::close(fd);
      }
    });
  }
  ASSERT_TRUE(wait_until([&] { return scrapes >= 20; }));
  EXPECT_TRUE(claims_go_on()) << "during the scrape flood";

  // Slowloris: a request line, then a header byte now and then, never done.
  std::vector<int> slow;
  for (int i = 0; i < 20; ++i) {
    const int fd = connect_raw(port);
    ASSERT_GE(fd, 0);
    send_all(fd, "GET /stats HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    slow.push_back(fd);
  }
  std::thread dribble([&] {
    for (int round = 0; round < 80 && !done; ++round) {
      for (int fd : slow) ::send(fd, "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      std::this_thread::sleep_for(100ms);
    }
  });
  // WebSocket clients that never read.
  std::vector<int> silent;
  for (int i = 0; i < 10; ++i) silent.push_back(silent_websocket(port));
  EXPECT_TRUE(claims_go_on()) << "with slowloris and silent WebSocket clients";
  // client_timeout (5 s) bounds a request however slowly it dribbles in.
  for (int fd : slow) EXPECT_TRUE(peer_closed(fd, 15s)) << "a slowloris client was kept";
  dribble.join();

  // 1,000 idle connections: the server holds at most max_connections.
  std::vector<int> idle;
  for (int i = 0; i < 1000; ++i) {
    const int fd = connect_raw(port);
    if (fd >= 0) idle.push_back(fd);
  }
  EXPECT_EQ(idle.size(), 1000u);
  ASSERT_TRUE(wait_until([&] {
    const auto c = live.server->counters();
    return c.refused > 0 && c.connections == config.max_connections;
  })) << live.server->counters().connections;
  // (Checked before client_timeout lets the idle ones go.)
  EXPECT_EQ(get_status(port, "/stats"), 503u) << "a client beyond max_connections";
  EXPECT_LE(live.server->counters().connections, config.max_connections);
  EXPECT_TRUE(claims_go_on()) << "with 1,000 idle clients";

  // They all go: the server serves again.
  for (int fd : idle) ::close(fd);
  for (int fd : silent) ::close(fd);
  for (int fd : slow) ::close(fd);
  done = true;
  for (auto& t : flood) t.join();
  claimer.join();
  EXPECT_EQ(failed, 0u) << "claims failed while the stats server was under attack";
  EXPECT_TRUE(wait_until([&] { return live.server->counters().connections == 0; }))
      << live.server->counters().connections << " clients still connected";
  EXPECT_EQ(get_status(port, "/stats"), 200u);
  EXPECT_EQ(get_status(port, "/metrics"), 200u);
}

}  // namespace
}  // namespace qorb::test
