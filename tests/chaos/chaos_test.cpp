// SPDX-License-Identifier: BSL-1.0
// Chaos, bounded: three real TCP echo servers killed and restarted in turn
// under 32 claimers for 15 s. Every claim completes by its deadline (plus a
// margin), the pool never holds more than max_slots connections (sampled
// every 5 ms), and once the pool is gone no descriptor of this process and
// no connection on any server is left.
#include <qorb/connectors/tcp.hpp>
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "observability/raw_client.hpp"
#include "support/echo_server.hpp"
#include "support/io_threads.hpp"
#include "support/test_policy.hpp"
#include "support/wait.hpp"

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
    auto p = quick_policy();
    p.max_slots = max_slots;
    p.spares_wanted = 4;
    p.claim_timeout = claim_deadline;
    p.set_config.health_interval = 100ms;
    p.set_config.health_check_timeout = 200ms;
    p.set_config.connect_timeout = 200ms;
    pool<tcp::socket> pool(io.executor(), "chaos", std::make_shared<fixed_resolver>(endpoints),
                           tcp_connector{}, p, nullptr);
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

}  // namespace
}  // namespace qorb::test
