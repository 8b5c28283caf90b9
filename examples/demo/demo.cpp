// The pool doing its job against real local servers: three TCP echo servers
// on loopback, a pool over them, claimers that claim, echo and return, and a
// table of what each backend does every second. Halfway through, one backend
// is killed; the pool routes around it.
//
//   qorb_demo [--duration S] [--claimers N]
#include <qorb/connectors/tcp.hpp>
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/echo_server.hpp"

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

struct tally {
  std::mutex mu;
  std::map<std::string, std::uint64_t> served;  // successful echoes per backend
  std::uint64_t claim_failures = 0;
  std::uint64_t broken = 0;  // claimed connections that failed the echo
};

asio::awaitable<void> claimer(qorb::pool<tcp::socket>& pool, tally& t, std::atomic<bool>& stop) {
  asio::steady_timer hold(co_await asio::this_coro::executor);
  const std::string message = "hello";
  std::string back(message.size(), '\0');
  while (!stop) {
    auto [ec, conn] = co_await pool.async_claim(asio::as_tuple(asio::use_awaitable));
    if (ec) {
      std::lock_guard lock(t.mu);
      ++t.claim_failures;
      continue;
    }
    auto [werr, wn] = co_await asio::async_write(*conn, asio::buffer(message),
                                                 asio::as_tuple(asio::use_awaitable));
    auto [rerr, rn] =
        co_await asio::async_read(*conn, asio::buffer(back), asio::as_tuple(asio::use_awaitable));
    if (werr || rerr || back != message) {
      std::lock_guard lock(t.mu);
      ++t.broken;
      conn.discard();  // broken: close it, don't recycle it
      continue;
    }
    {
      std::lock_guard lock(t.mu);
      ++t.served[conn.backend().name];
    }
    hold.expires_after(2ms);  // pretend to do some work with the connection
    co_await hold.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

int arg_int(int argc, char** argv, const std::string& name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return std::atoi(argv[i + 1]);
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const int duration = arg_int(argc, argv, "--duration", 8);
  const int claimers = arg_int(argc, argv, "--claimers", 8);
  if (duration < 2 || claimers < 1) {
    std::fprintf(stderr, "usage: qorb_demo [--duration S (>= 2)] [--claimers N (>= 1)]\n");
    return 2;
  }

  std::vector<std::unique_ptr<qorb::examples::echo_server>> servers;
  std::vector<tcp::endpoint> endpoints;
  for (int i = 0; i < 3; ++i) {
    servers.push_back(std::make_unique<qorb::examples::echo_server>());
    endpoints.push_back(servers.back()->endpoint());
  }
  std::printf("qorb demo: 3 TCP echo servers on loopback, %d claimers, %d s\n", claimers, duration);
  for (const auto& ep : endpoints) std::printf("  backend %s\n", qorb::to_string(ep).c_str());

  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) threads.emplace_back([&] { io.run(); });

  qorb::policy policy;
  policy.claim_timeout = 2s;
  policy.rebalance_interval = 2s;
  policy.set_config.health_interval = 1s;
  policy.set_config.max_connection_backoff = 1s;
  tally t;
  std::atomic<bool> stop{false};
  auto pool = std::make_unique<qorb::pool<tcp::socket>>(
      io.get_executor(), "demo", std::make_shared<qorb::fixed_resolver>(endpoints),
      qorb::tcp_connector{}, policy);
  for (int i = 0; i < claimers; ++i) {
    asio::co_spawn(io, claimer(*pool, t, stop), asio::detached);
  }

  const std::string victim = qorb::to_string(endpoints[1]);
  const auto start = clock_type::now();
  std::optional<clock_type::time_point> killed_at, last_claim_to_victim;
  std::uint64_t victim_served_at_kill = 0, last_victim_served = 0, last_total = 0;
  std::map<std::string, std::uint64_t> last_claims;  // per backend, at the previous tick
  for (int second = 1; second <= duration; ++second) {
    std::this_thread::sleep_until(start + std::chrono::seconds(second));  // the report's tick
    const auto stats = pool->stats();
    std::map<std::string, std::uint64_t> served;
    {
      std::lock_guard lock(t.mu);
      served = t.served;
    }
    std::printf("\n[t=%2ds] %-22s %9s %10s %9s %8s %7s %8s %11s\n", second, "backend", "claims/s",
                "connecting", "unclaimed", "checking", "claimed", "total", "server-conns");
    for (std::size_t i = 0; i < endpoints.size(); ++i) {
      const auto name = qorb::to_string(endpoints[i]);
      const auto it = stats.backends.find(name);
      if (it == stats.backends.end()) continue;
      const auto& b = it->second;
      const auto per_second = b.total_claims - std::exchange(last_claims[name], b.total_claims);
      std::printf("         %-22s %9llu %10zu %9zu %8zu %7zu %8llu %11zu%s\n", name.c_str(),
                  static_cast<unsigned long long>(per_second), b.connecting, b.unclaimed,
                  b.checking, b.claimed, static_cast<unsigned long long>(b.total_claims),
                  servers[i]->open_connections(), b.online ? "" : "   OFFLINE");
    }
    std::printf("         pool: %llu claims/s, %zu waiting\n",
                static_cast<unsigned long long>(stats.total_claims - last_total),
                stats.claims_waiting);
    last_total = stats.total_claims;
    if (killed_at && served[victim] != last_victim_served) last_claim_to_victim = clock_type::now();
    last_victim_served = served[victim];
    if (!killed_at && second == duration / 2) {
      std::printf("\n>>> killing backend %s (closing its listener and connections)\n",
                  victim.c_str());
      servers[1]->stop();
      killed_at = clock_type::now();
      victim_served_at_kill = served[victim];
    }
  }

  stop = true;
  pool->terminate();
  pool.reset();
  work.reset();
  for (auto& th : threads) th.join();

  std::lock_guard lock(t.mu);
  std::uint64_t total = 0;
  std::printf("\nsummary\n");
  for (const auto& [name, n] : t.served) {
    std::printf("  %-22s served %llu claims%s\n", name.c_str(), static_cast<unsigned long long>(n),
                name == victim ? "  (killed halfway)" : "");
    total += n;
  }
  std::printf("  claims that failed: %llu, connections found broken: %llu\n",
              static_cast<unsigned long long>(t.claim_failures),
              static_cast<unsigned long long>(t.broken));
  const bool routed_around = t.served[victim] == victim_served_at_kill;
  std::printf("  after the kill, the dead backend served %llu claims: %s\n",
              static_cast<unsigned long long>(t.served[victim] - victim_served_at_kill),
              routed_around ? "routed around at once" : "still used for a while");
  if (total == 0) {
    std::printf("FAILED: no claims served\n");
    return 1;
  }
  if (last_claim_to_victim) {
    std::printf("FAILED: the dead backend kept getting claims\n");
    return 1;
  }
  return 0;
}
