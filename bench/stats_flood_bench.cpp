// SPDX-License-Identifier: BSL-1.0
// qorb_stats_flood_bench: claim latency with a stats_server being scraped
// hard, against the same pool idle. A pool of 100 backends and a
// stats_server share one io_context (two threads); 8 keep-alive clients
// scrape /metrics and /stats as fast as they are answered while one thread
// claims and returns connections. Prints figures; never passes or fails.
//
//   qorb_stats_flood_bench [--claims N] [--snapshot-interval-ms MS]
//
// MS is the server's snapshot_interval (default 100; 0 builds the output
// for every scrape, still off the pool's executor).
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>
#include <qorb/stats_server.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "observability/raw_client.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

struct flood_conn {};

// Connects at once; nothing to check, acquire or recycle.
struct flood_connector {
  using connection_type = flood_conn;
  asio::awaitable<flood_conn> connect(const qorb::backend&) { co_return flood_conn{}; }
};

struct figures {
  double p50_us = 0, p99_us = 0, scrapes_per_s = 0;
};

double percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  const auto at = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(at), v.end());
  return v[at];
}

// `claims` claim+return pairs (or more, for 2 s), with `scrapers` clients scraping meanwhile.
figures measure(qorb::pool<flood_conn>& pool, unsigned short port, int claims, int scrapers) {
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> scrapes{0};
  std::vector<std::thread> flood;
  for (int i = 0; i < scrapers; ++i) {
    flood.emplace_back([&, i] {
      while (!done) {
        const int fd = qorb::test::connect_raw(port);
        while (fd >= 0 && !done &&
               qorb::test::keepalive_get(fd, i % 2 ? "/stats" : "/metrics") == 200) {
          ++scrapes;
        }
        if (fd >= 0) ::close(fd);
      }
    });
  }
  // Let the flood get going before measuring.
  for (int i = 0; i < 1000 && scrapers > 0 && scrapes < 16; ++i) std::this_thread::sleep_for(1ms);
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(claims));
  const auto s0 = scrapes.load();
  const auto t0 = clock_type::now();
  // At least `claims` claims and at least 2 s, so the flood is measured too.
  for (int i = 0; i < claims || clock_type::now() - t0 < 2s; ++i) {
    const auto a = clock_type::now();
    qorb::error_code ec;
    auto h = pool.claim(5s, ec);
    if (ec) {
      std::fprintf(stderr, "claim failed: %s\n", ec.message().c_str());
      continue;
    }
    h.reset();
    us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - a).count());
  }
  const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  const auto scraped = scrapes.load() - s0;
  done = true;
  for (auto& t : flood) t.join();
  figures f;
  f.p50_us = percentile(us, 0.50);
  f.p99_us = percentile(us, 0.99);
  f.scrapes_per_s = static_cast<double>(scraped) / secs;
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  int claims = 20000;
  long interval_ms = 100;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--claims" && i + 1 < argc) {
      claims = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--snapshot-interval-ms" && i + 1 < argc) {
      interval_ms = std::strtol(argv[++i], nullptr, 10);
    } else if (arg == "--help" || arg == "-h") {
      std::printf("usage: qorb_stats_flood_bench [--claims N] [--snapshot-interval-ms MS]\n");
      return 0;
    } else {
      std::fprintf(stderr, "qorb_stats_flood_bench: unknown option '%s' (try --help)\n", argv[i]);
      return 2;
    }
  }

  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) threads.emplace_back([&] { io.run(); });
  {
    std::vector<asio::ip::tcp::endpoint> endpoints;
    for (unsigned short i = 1; i <= 100; ++i) {
      endpoints.emplace_back(asio::ip::make_address_v4("127.0.0.1"), i);
    }
    qorb::policy p;
    p.max_slots = 100;
    p.spares_wanted = 8;
    qorb::pool<flood_conn> pool(io.get_executor(), "flood",
                                std::make_shared<qorb::fixed_resolver>(endpoints),
                                flood_connector{}, p, nullptr);
    qorb::stats_server_config config;
    config.logger = nullptr;
    config.snapshot_interval = std::chrono::milliseconds(interval_ms);
    qorb::stats_server server(io.get_executor(), config);
    server.attach(pool);
    server.start();
    const auto port = server.local_endpoint().port();
    for (int i = 0; i < 5000 && pool.stats().backends.size() < 100; ++i) {
      std::this_thread::sleep_for(1ms);
    }
    measure(pool, port, claims / 10, 0);  // warm-up
    const auto idle = measure(pool, port, claims, 0);
    const auto flood = measure(pool, port, claims, 8);
    std::printf(
        "qorb_stats_flood_bench: 100 backends, >= %d claims and 2 s each, "
        "snapshot_interval %ld ms\n",
        claims, interval_ms);
    std::printf("  idle:  claim+return p50 %8.1f us  p99 %8.1f us\n", idle.p50_us, idle.p99_us);
    std::printf("  flood: claim+return p50 %8.1f us  p99 %8.1f us  (8 clients, %.0f scrapes/s)\n",
                flood.p50_us, flood.p99_us, flood.scrapes_per_s);
    std::printf("  flood/idle: p50 %.2fx  p99 %.2fx  (%llu snapshots)\n",
                idle.p50_us > 0 ? flood.p50_us / idle.p50_us : 0.0,
                idle.p99_us > 0 ? flood.p99_us / idle.p99_us : 0.0,
                static_cast<unsigned long long>(server.counters().snapshots));
  }
  work.reset();
  for (auto& t : threads) t.join();
  return 0;
}
