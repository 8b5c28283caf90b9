// SPDX-License-Identifier: BSL-1.0
// Chaos, bounded: three real TCP echo servers killed and restarted in turn
// under 32 claimers for 15 s. Every claim completes by its deadline (plus a
// margin), the pool never holds more than max_slots connections (sampled
// every 5 ms), and once the pool is gone no descriptor of this process and
// no connection on any server is left. A second run, one kill a second,
// counts the claims handed a connection that was already dead (issue 20):
// none once the TCP connector watches its idle connections.
#include <qorb/connectors/tcp.hpp>
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/backend_state_log.hpp"

#include "observability/raw_client.hpp"
#include "support/echo_server.hpp"
#include "support/io_threads.hpp"
#include "support/test_policy.hpp"
#include "support/wait.hpp"

// Whether the pool runs the connectors' `watch` hook (issue 20): the lead's
// qorb::connector_with_watch (include/qorb/connector.hpp), once it exists,
// hides this fallback from the lookup below (qorb is searched before the
// global namespace); until then the answer is no, whatever the connector has.
template <class>
concept connector_with_watch = false;

namespace qorb::test {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// Sanitizers slow every step several times over (TSan most): the margin
// past a claim's deadline is scaled with them.
constexpr int margin_scale = 6;
#else
constexpr int margin_scale = 1;
#endif
constexpr auto deadline_margin = 50ms * margin_scale;
constexpr auto claim_deadline = 300ms;
constexpr auto chaos_length = 15s;
constexpr std::size_t max_slots = 12;

// Claims wait up to claim_deadline; idle connections are checked every
// 100 ms.
policy chaos_policy(std::size_t slots, std::size_t spares) {
  auto p = quick_policy();
  p.max_slots = slots;
  p.spares_wanted = spares;
  p.claim_timeout = claim_deadline;
  p.set_config.health_interval = 100ms;
  p.set_config.health_check_timeout = 200ms;
  p.set_config.connect_timeout = 200ms;
  return p;
}

std::size_t slots_in(const pool_stats& s) {
  std::size_t n = 0;
  for (const auto& [name, b] : s.backends) n += b.connecting + b.unclaimed + b.checking + b.claimed;
  return n;
}

bool echo_once(tcp::socket& s) {
  boost::system::error_code ec;
  asio::write(s, asio::buffer(std::string_view("chaos")), ec);
  if (ec) return false;
  char back[5];
  asio::read(s, asio::buffer(back), ec);
  return !ec && std::string_view(back, 5) == "chaos";
}

TEST(chaos, servers_killed_in_turn_under_32_claimers) {
  std::vector<std::unique_ptr<echo_server>> servers;
  for (int i = 0; i < 3; ++i) servers.push_back(std::make_unique<echo_server>());
  std::vector<tcp::endpoint> endpoints;
  for (const auto& s : servers) endpoints.push_back(s->endpoint());
  const auto fds_before = open_fds();

  std::atomic<std::uint64_t> served{0}, failed{0}, late{0}, dead_handles{0};
  std::atomic<long long> worst_overrun_us{0};
  std::atomic<std::size_t> most_slots{0}, samples{0};
  std::mutex reasons_mu;
  std::map<std::string, int> reasons;
  {
    io_threads io{2};
    pool<tcp::socket> pool(io.executor(), "chaos", std::make_shared<fixed_resolver>(endpoints),
                           tcp_connector{}, chaos_policy(max_slots, 4), nullptr);
    ASSERT_TRUE(wait_until([&] { return slots_in(pool.stats()) > 0; }));

    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < 32; ++i) {
      threads.emplace_back([&] {
        while (!stop) {
          const auto t0 = clock_type::now();
          error_code ec;
          auto h = pool.claim(claim_deadline, ec);
          const auto took = clock_type::now() - t0;
          if (took > claim_deadline + deadline_margin) {
            ++late;
            const auto over =
                std::chrono::duration_cast<std::chrono::microseconds>(took - claim_deadline)
                    .count();
            auto worst = worst_overrun_us.load();
            while (over > worst && !worst_overrun_us.compare_exchange_weak(worst, over)) {
            }
          }
          if (ec) {
            ++failed;
            std::lock_guard lock(reasons_mu);
            ++reasons[ec.message()];
            continue;
          }
          ++served;
          if (!echo_once(*h)) {
            ++dead_handles;
            h.discard();
          }
        }
      });
    }
    // Every 5 ms: the pool's connections, all states, against max_slots.
    threads.emplace_back([&] {
      while (!stop) {
        const auto n = slots_in(pool.stats());
        ++samples;
        auto most = most_slots.load();
        while (n > most && !most_slots.compare_exchange_weak(most, n)) {
        }
        std::this_thread::sleep_for(5ms);
      }
    });

    // The chaos: each server in turn killed (listener and connections
    // closed), then back on its port.
    const auto end = clock_type::now() + chaos_length;
    for (std::size_t i = 0; clock_type::now() < end; ++i) {
      auto& victim = *servers[i % servers.size()];
      victim.stop();
      std::this_thread::sleep_for(800ms);
      victim.restart();
      std::this_thread::sleep_for(600ms);
    }
    stop = true;
    for (auto& t : threads) t.join();
  }  // the pool, then its io_context, go

  std::string why;
  for (const auto& [reason, n] : reasons)
    why.append(reason).append(": ").append(std::to_string(n)).append("; ");
  EXPECT_EQ(late, 0u) << "claims past their deadline + " << deadline_margin.count() << " ms; worst "
                      << worst_overrun_us << " us past the deadline";
  EXPECT_LE(most_slots, max_slots);
  EXPECT_GT(samples, 100u);
  EXPECT_GT(served, 1000u) << "failed: " << why;
  RecordProperty("served", std::to_string(served.load()));
  RecordProperty("failed", std::to_string(failed.load()));
  // Nothing left behind: no descriptor here, no connection on any server.
  EXPECT_TRUE(wait_until([&] {
    std::size_t open = 0;
    for (const auto& s : servers) open += s->open_connections();
    return open == 0;
  })) << "server-side connections left after the pool is gone";
  EXPECT_TRUE(wait_until([&] { return open_fds() == fds_before; }))
      << open_fds() << " descriptors open, " << fds_before << " before the pool";
}

// ----- dead-connection claims (issue 20) -----------------------------------

// Whether the TCP connector's idle connections are watched: the connector
// has the hook (its helper lands it) and the pool runs it (the lead lands
// qorb::connector_with_watch with that; see the fallback at the top).
template <class C>
concept watches_idle = requires(C& c, tcp::socket& s) {
  c.watch(s);
};
constexpr bool tcp_connector_watches =
    watches_idle<tcp_connector> && connector_with_watch<tcp_connector>;

// A claim handed a connection more than this after its backend was killed
// and whose connection is then dead found a dead connection the pool could
// have known about (scaled with the sanitizers, which slow the watch too).
constexpr auto dead_grace = 20ms * margin_scale;
// One kill a second: 15 s, fewer turns under the sanitizers.
constexpr auto kill_run_length = margin_scale == 1 ? 15s : 6s;
constexpr auto kill_period = 1s;
constexpr auto kill_down = 500ms;  // killed, then back on its port
constexpr auto claimer_pause = 100ms;

double ms_between(clock_type::time_point from, clock_type::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

struct kill_record {
  std::string backend;        // the pool's name for it
  clock_type::time_point at;  // stamped just before the server's stop()
  std::uint64_t dead_claims = 0;
  std::optional<double> offline_ms;  // kill -> the pool logged it offline
};

struct failed_claim {
  std::string backend;
  clock_type::time_point handed;  // the claim returned the connection
  clock_type::time_point failed;  // its write or echo failed
};

// What the failed claims were, against the kills.
struct failure_kinds {
  std::uint64_t dead = 0;           // handed > dead_grace after the kill: counted
  std::uint64_t in_grace = 0;       // handed within dead_grace of the kill
  std::uint64_t while_claimed = 0;  // the kill came while it was claimed
  std::uint64_t no_kill = 0;        // no kill of its backend before it
};

// Attributes each failure to the last kill of its backend before it failed:
// a kill after the connection was handed out means it died while claimed
// (not counted); otherwise it was dead when handed out, counted once the
// grace after the kill has passed.
failure_kinds classify(const std::vector<failed_claim>& failures, std::vector<kill_record>& kills) {
  failure_kinds k;
  for (const auto& f : failures) {
    kill_record* last = nullptr;
    for (auto& kill : kills) {
      if (kill.backend == f.backend && kill.at <= f.failed) last = &kill;
    }
    if (last == nullptr) {
      ++k.no_kill;
    } else if (last->at >= f.handed) {
      ++k.while_claimed;
    } else if (f.handed - last->at <= dead_grace) {
      ++k.in_grace;
    } else {
      ++k.dead;
      ++last->dead_claims;
    }
  }
  return k;
}

TEST(chaos, no_dead_connection_claims_with_a_kill_every_second) {
  std::vector<std::unique_ptr<echo_server>> servers;
  std::vector<std::string> names;  // as the fixed resolver names them
  std::vector<tcp::endpoint> endpoints;
  for (int i = 0; i < 3; ++i) {
    servers.push_back(std::make_unique<echo_server>());
    endpoints.push_back(servers.back()->endpoint());
    names.push_back(to_string(endpoints.back()));
  }
  auto [logger, states] = examples::backend_state_log::make("chaos");

  std::atomic<std::uint64_t> served{0}, claim_failures{0};
  std::mutex failures_mu;
  std::vector<failed_claim> failures;
  std::vector<kill_record> kills;
  clock_type::time_point start;
  {
    io_threads io{2};
    // Room for every claimer's connection and spares beyond: connections
    // sit idle between claims, where a kill leaves them dead.
    pool<tcp::socket> pool(io.executor(), "chaos", std::make_shared<fixed_resolver>(endpoints),
                           tcp_connector{}, chaos_policy(48, 8), logger);
    ASSERT_TRUE(wait_until([&] {
      const auto st = pool.stats();
      return std::count_if(st.backends.begin(), st.backends.end(),
                           [](const auto& b) { return b.second.online; }) == 3;
    }));

    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < 32; ++i) {
      threads.emplace_back([&] {
        while (!stop) {
          error_code ec;
          auto h = pool.claim(claim_deadline, ec);
          const auto handed = clock_type::now();
          if (ec) {
            ++claim_failures;
          } else {
            ++served;
            if (!echo_once(*h)) {
              const auto failed = clock_type::now();
              std::lock_guard lock(failures_mu);
              failures.push_back({h.backend().name, handed, failed});
              h.discard();
            }
            h.reset();  // back to the pool before the pause (after a discard: nothing)
          }
          // A client's pace, not a wait for anything: between claims the
          // connections sit idle, where a kill leaves them dead.
          std::this_thread::sleep_for(claimer_pause);
        }
      });
    }

    // Every second the next server in turn is killed (listener and every
    // connection closed) and put back on its port half a second later.
    start = clock_type::now();
    for (std::size_t i = 0; clock_type::now() < start + kill_run_length; ++i) {
      const auto turn = start + i * kill_period;
      std::this_thread::sleep_until(turn);
      auto& victim = *servers[i % servers.size()];
      kills.push_back({names[i % servers.size()], clock_type::now(), 0, std::nullopt});
      victim.stop();
      std::this_thread::sleep_until(turn + kill_down);
      victim.restart();
    }
    std::this_thread::sleep_until(start + kills.size() * kill_period);
    stop = true;
    for (auto& t : threads) t.join();
  }  // the pool, then its io_context, go

  const auto kinds = classify(failures, kills);
  // Kill -> offline: the pool's "offline" log line for that backend before
  // its next kill (heard by the sink as the pool decides, not polled).
  std::vector<double> offline;
  for (std::size_t i = 0; i < kills.size(); ++i) {
    auto& k = kills[i];
    const auto until = i + servers.size() < kills.size() ? kills[i + servers.size()].at
                                                         : clock_type::time_point::max();
    if (const auto at = states->offline_between(k.backend, k.at, until)) {
      k.offline_ms = ms_between(k.at, *at);
      offline.push_back(*k.offline_ms);
    }
    char after[32] = "never (before its next kill)";
    if (k.offline_ms) std::snprintf(after, sizeof after, "%.2f ms", *k.offline_ms);
    std::printf("kill %2zu at t=%5.2f s: %s: %llu dead-connection claims, offline after %s\n",
                i + 1, ms_between(start, k.at) / 1000, k.backend.c_str(),
                static_cast<unsigned long long>(k.dead_claims), after);
  }
  std::sort(offline.begin(), offline.end());
  const double per_kill =
      kills.empty() ? 0 : static_cast<double>(kinds.dead) / static_cast<double>(kills.size());
  std::printf(
      "%zu kills, %llu claims served, %llu claims failed; dead-connection claims (handed out "
      "> %lld ms after the kill): %llu, %.2f per kill%s\n"
      "not counted: %llu failed within %lld ms of the kill, %llu died while claimed, %llu "
      "failed with no kill before\n",
      kills.size(), static_cast<unsigned long long>(served.load()),
      static_cast<unsigned long long>(claim_failures.load()),
      static_cast<long long>(dead_grace.count()), static_cast<unsigned long long>(kinds.dead),
      per_kill, tcp_connector_watches ? "" : " (idle connections are not watched yet)",
      static_cast<unsigned long long>(kinds.in_grace), static_cast<long long>(dead_grace.count()),
      static_cast<unsigned long long>(kinds.while_claimed),
      static_cast<unsigned long long>(kinds.no_kill));
  if (!offline.empty()) {
    std::printf("kill -> offline: %zu of %zu kills, median %.2f ms, worst %.2f ms\n",
                offline.size(), kills.size(), offline[offline.size() / 2], offline.back());
  }
  RecordProperty("kills", std::to_string(kills.size()));
  RecordProperty("dead_connection_claims", std::to_string(kinds.dead));

  EXPECT_GE(kills.size(), 5u);
  EXPECT_GT(served, 1000u);
  if constexpr (tcp_connector_watches) {
    EXPECT_EQ(kinds.dead, 0u) << "claims handed a connection dead for more than "
                              << dead_grace.count() << " ms";
  }
}

}  // namespace
}  // namespace qorb::test
