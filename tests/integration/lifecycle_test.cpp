// SPDX-License-Identifier: BSL-1.0
// A pool's whole life (issue 19) against real TCP echo servers on loopback:
// lifetime and idle timeout, min_idle, evict_all, status and its callbacks,
// the ready gate, drain, set_policy, the connect storm guard and permanent
// connect failures. What the servers see is what the pool did.
//
// Over 500 lines on purpose: one test (or two) per promise of the issue,
// each short, sharing the fixture and connectors at the top.
#include <qorb/connectors/tcp.hpp>
#include <qorb/error.hpp>
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "support/echo_client.hpp"
#include "support/echo_server.hpp"
#include "support/io_threads.hpp"
#include "support/test_policy.hpp"
#include "support/wait.hpp"

namespace qorb::test {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
using tcp_pool = pool<tcp::socket>;
using clock = std::chrono::steady_clock;

// The shared quick policy (support/test_policy.hpp) with room for real
// sockets on a loaded machine, at most `max_slots` connections and
// `spares` spare ones.
policy sized(std::size_t max_slots = 16, std::size_t spares = 8) {
  policy p = test::quick_policy();
  p.max_slots = max_slots;
  p.spares_wanted = spares;
  p.rebalance_interval = 200ms;
  p.set_config.health_check_timeout = 1s;
  return p;
}

struct slot_counts {
  std::size_t unclaimed = 0, claimed = 0, connected = 0;
};
slot_counts counts_of(const pool_stats& s) {
  slot_counts c;
  for (const auto& [name, b] : s.backends) {
    c.unclaimed += b.unclaimed;
    c.claimed += b.claimed;
    c.connected += b.unclaimed + b.checking + b.claimed;
  }
  return c;
}

// Sets `pol`'s cap and spares and gives it to `p`.
void resize(tcp_pool& p, policy& pol, std::size_t max_slots, std::size_t spares) {
  pol.max_slots = max_slots;
  pol.spares_wanted = spares;
  p.set_policy(pol);
}

std::uint64_t closed_for(const tcp_pool& p, close_reason r) {
  return p.stats().connections.closed_for(r);
}

double seconds_since(clock::time_point start) {
  return std::chrono::duration<double>(clock::now() - start).count();
}

// A handler that puts its arguments into `f` (Boost 1.81 cannot combine
// as_tuple with use_future).
template <class... Args>
auto into(std::future<std::tuple<Args...>>& f) {
  auto promise = std::make_shared<std::promise<std::tuple<Args...>>>();
  f = promise->get_future();
  return [promise](Args... args) { promise->set_value(std::tuple<Args...>(std::move(args)...)); };
}
using ec_future = std::future<std::tuple<error_code>>;
using drain_future = std::future<std::tuple<error_code, std::size_t>>;

// Every status change a callback saw, in order.
struct status_log {
  std::mutex m;
  std::vector<std::pair<pool_status, pool_status>> changes;
  std::function<void(pool_status, pool_status)> callback() {
    return [this](pool_status from, pool_status to) {
      std::lock_guard lock(m);
      changes.emplace_back(from, to);
    };
  }
  std::vector<std::pair<pool_status, pool_status>> seen() {
    std::lock_guard lock(m);
    return changes;
  }
};

// A TCP connector that counts the connects in flight and the most seen at
// once.
struct counting_connector {
  using connection_type = tcp::socket;
  struct counters {
    std::atomic<int> in_flight{0}, max_in_flight{0}, calls{0};
  };
  struct in_flight_guard {
    counters& c;
    explicit in_flight_guard(counters& cs) : c(cs) {
      ++c.calls;
      const int now = ++c.in_flight;
      int seen = c.max_in_flight.load();
      while (now > seen && !c.max_in_flight.compare_exchange_weak(seen, now)) {
      }
    }
    ~in_flight_guard() { --c.in_flight; }
    in_flight_guard(const in_flight_guard&) = delete;
    in_flight_guard& operator=(const in_flight_guard&) = delete;
  };
  asio::awaitable<tcp::socket> connect(const backend& b) {
    in_flight_guard guard(*c);
    co_return co_await inner.connect(b);
  }
  tcp_connector inner;
  std::shared_ptr<counters> c = std::make_shared<counters>();
};

// A TCP connector whose connect to one port throws a permanent error (as a
// refused password would), recording when each such connect came. The port
// is shared with the test, which may change it (0: refuse none).
struct refusing_one_backend {
  using connection_type = tcp::socket;
  struct record {
    std::mutex m;
    std::vector<clock::time_point> at;
    std::vector<clock::time_point> times() {
      std::lock_guard lock(m);
      return at;
    }
  };
  asio::awaitable<tcp::socket> connect(const backend& b) {
    if (b.address.port() == refused_port->load()) {
      {
        std::lock_guard lock(refused->m);
        refused->at.push_back(clock::now());
      }
      throw permanent_error(std::make_error_code(std::errc::permission_denied), "bad password");
    }
    co_return co_await inner.connect(b);
  }
  std::shared_ptr<std::atomic<unsigned short>> refused_port =
      std::make_shared<std::atomic<unsigned short>>(0);
  tcp_connector inner;
  std::shared_ptr<record> refused = std::make_shared<record>();
};

class lifecycle_test : public ::testing::Test, protected echo_servers {
 protected:
  // Waits until the first server holds `n` connections and the pool sees
  // `n` idle (a connect the server has accepted may not have reached the
  // pool yet).
  bool idle_on_first_server(const tcp_pool& p, std::size_t n) {
    return wait_until(
        [&] { return servers[0]->open_connections() == n && counts_of(p.stats()).unclaimed == n; });
  }
  io_threads io{2};
};

// ----- max_lifetime ----------------------------------------------------------

policy lifetime_policy() {
  policy p = sized(4, 2);
  p.set_config.max_lifetime = 300ms;
  p.set_config.max_lifetime_jitter = 0ms;
  return p;
}

TEST_F(lifecycle_test, idle_connections_older_than_their_lifetime_are_replaced) {
  start_servers(1);
  tcp_pool p(io.executor(), "lifetime", resolver(), tcp_connector{}, lifetime_policy());
  ASSERT_TRUE(wait_until([&] { return servers[0]->open_connections() == 2; }));
  // Each 300 ms both idle connections are closed and replaced: the server
  // sees new connections, never more than the pool may hold.
  std::size_t most_open = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        most_open = std::max(most_open, servers[0]->open_connections());
        return servers[0]->accepted() >= 8 && closed_for(p, close_reason::lifetime) >= 6;
      },
      15s))
      << "accepted " << servers[0]->accepted() << ", closed for lifetime "
      << closed_for(p, close_reason::lifetime);
  EXPECT_LE(most_open, 4u);
  const auto s = p.stats();
  EXPECT_EQ(s.connections.closed_total(), s.connections.closed_for(close_reason::lifetime))
      << "nothing else closed them";
  auto h = p.claim();
  EXPECT_TRUE(echo_once(*h, "replacements work"));
}

TEST_F(lifecycle_test, a_claimed_connection_outlives_its_lifetime_and_closes_when_returned) {
  start_servers(1);
  auto pol = lifetime_policy();
  pol.max_slots = 2;
  pol.spares_wanted = 1;
  tcp_pool p(io.executor(), "lifetime", resolver(), tcp_connector{}, pol);
  auto h = p.claim();
  const auto held_port = h->local_endpoint().port();
  const auto closed_before = closed_for(p, close_reason::lifetime);
  // The idle spare is replaced again and again: several lifetimes pass
  // while `h` is held.
  ASSERT_TRUE(
      wait_until([&] { return closed_for(p, close_reason::lifetime) >= closed_before + 4; }, 15s));
  EXPECT_TRUE(echo_once(*h, "still open after 4 lifetimes"))
      << "a claimed connection is never closed while claimed";
  EXPECT_EQ(counts_of(p.stats()).claimed, 1u);
  const auto closed_while_held = closed_for(p, close_reason::lifetime);
  h.reset();
  // Returned past its lifetime: closed, and every connection now claimed is
  // a new one.
  ASSERT_TRUE(
      wait_until([&] { return closed_for(p, close_reason::lifetime) > closed_while_held; }, 5s));
  auto a = p.claim();
  auto b = p.claim();
  EXPECT_NE(a->local_endpoint().port(), held_port);
  EXPECT_NE(b->local_endpoint().port(), held_port);
  EXPECT_TRUE(echo_once(*a, "a"));
  EXPECT_TRUE(echo_once(*b, "b"));
}

// ----- idle_timeout and min_idle ------------------------------------------------

TEST_F(lifecycle_test, idle_timeout_drops_idle_connections_down_to_the_idle_target) {
  start_servers(1);
  auto pol = sized(8, 1);
  pol.min_idle = 2;
  pol.set_config.idle_timeout = 300ms;
  // Only event-driven rebalances, which keep the budget the burst raised:
  // the periodic one would close the surplus as `resized` first.
  pol.rebalance_interval = 60s;
  tcp_pool p(io.executor(), "idle", resolver(), tcp_connector{}, pol);
  {
    std::vector<handle<tcp::socket>> burst;
    for (int i = 0; i < 6; ++i) burst.push_back(p.claim());
    for (auto& h : burst) ASSERT_TRUE(echo_once(*h, "burst"));
    ASSERT_GE(servers[0]->open_connections(), 6u);
  }
  // Back to max(min_idle 2, spares_wanted 1) = 2 idle connections.
  ASSERT_TRUE(wait_until([&] {
    const auto s = p.stats();
    return servers[0]->open_connections() == 2 && counts_of(s).unclaimed == 2;
  })) << "open "
      << servers[0]->open_connections();
  const auto s = p.stats();
  EXPECT_GE(s.connections.closed_for(close_reason::idle), 4u);
  EXPECT_EQ(s.connections.closed_for(close_reason::idle), s.connections.closed_total());
  EXPECT_EQ(s.connections.opened - s.connections.closed_total(), 2u);
}

TEST_F(lifecycle_test, idle_timeout_keeps_each_backends_last_connection) {
  start_servers(2);
  auto pol = sized(8, 0);
  pol.set_config.idle_timeout = 300ms;
  pol.rebalance_interval = 60s;  // as above: only idle_timeout closes
  tcp_pool p(io.executor(), "idle", resolver(), tcp_connector{}, pol);
  {
    std::vector<handle<tcp::socket>> burst;
    for (int i = 0; i < 6; ++i) burst.push_back(p.claim());
  }
  ASSERT_TRUE(wait_until([&] { return closed_for(p, close_reason::idle) >= 1; }));
  // The idle target is 0, yet closing a backend's last connection would
  // take it offline: one stays on each.
  ASSERT_TRUE(wait_until([&] {
    return servers[0]->open_connections() == 1 && servers[1]->open_connections() == 1;
  })) << servers[0]->open_connections()
      << " and " << servers[1]->open_connections();
  for (const auto& [name, b] : p.stats().backends) EXPECT_TRUE(b.online) << name;
  EXPECT_EQ(p.status(), pool_status::running);
}

TEST_F(lifecycle_test, min_idle_keeps_idle_connections_topped_up_while_others_are_claimed) {
  start_servers(1);
  auto pol = sized(8, 0);
  pol.min_idle = 3;
  tcp_pool p(io.executor(), "min-idle", resolver(), tcp_connector{}, pol);
  ASSERT_TRUE(wait_until(
      [&] { return servers[0]->open_connections() == 3 && counts_of(p.stats()).unclaimed == 3; }));
  auto a = p.claim();
  auto b = p.claim();
  ASSERT_TRUE(wait_until([&] {
    const auto c = counts_of(p.stats());
    return c.claimed == 2 && c.unclaimed == 3 && servers[0]->open_connections() == 5;
  })) << "open "
      << servers[0]->open_connections();
  EXPECT_TRUE(echo_once(*a, "a"));
  EXPECT_TRUE(echo_once(*b, "b"));
}

// ----- evict_all -----------------------------------------------------------------

TEST_F(lifecycle_test, evict_all_closes_idle_connections_now_and_claimed_ones_on_return) {
  start_servers(1);
  auto pol = sized(8, 3);
  tcp_pool p(io.executor(), "evict", resolver(), tcp_connector{}, pol);
  auto h = p.claim();
  ASSERT_TRUE(wait_until(
      [&] { return servers[0]->open_connections() == 4 && counts_of(p.stats()).unclaimed == 3; }));
  const auto accepted = servers[0]->accepted();
  const auto opened = p.stats().connections.opened;
  p.evict_all();
  // The three idle ones closed and replaced: three new connections.
  ASSERT_TRUE(wait_until([&] {
    const auto s = p.stats();
    return s.connections.closed_for(close_reason::evicted) == 3 &&
           servers[0]->accepted() == accepted + 3 && counts_of(s).unclaimed == 3 &&
           servers[0]->open_connections() == 4;
  })) << "accepted "
      << servers[0]->accepted() - accepted << " evicted " << closed_for(p, close_reason::evicted);
  EXPECT_EQ(p.stats().connections.opened, opened + 3);
  EXPECT_TRUE(echo_once(*h, "claimed, not evicted yet"));
  h.reset();
  ASSERT_TRUE(wait_until([&] {
    return closed_for(p, close_reason::evicted) == 4 && servers[0]->open_connections() == 3;
  }));
  // Connections opened after the call are kept.
  EXPECT_EQ(closed_for(p, close_reason::evicted), 4u);
  auto again = p.claim();
  EXPECT_TRUE(echo_once(*again, "a replacement"));
}

// ----- status and callbacks ------------------------------------------------------

TEST_F(lifecycle_test, status_starts_then_runs_once_a_backend_connects) {
  start_servers(1);
  servers[0]->stop();  // refuses connects, keeps the port
  auto pol = sized();
  pol.failed_after = 60s;
  status_log log;  // outlives the pool, whose end it sees too
  std::atomic<int> stats_status{-1};
  tcp_pool p(io.executor(), "status", resolver(), tcp_connector{}, pol);
  EXPECT_EQ(p.status(), pool_status::starting);
  // One callback that throws (logged and dropped: the others still run), one
  // that calls the pool (never under its lock: no deadlock), then the log.
  p.on_status_change([](pool_status, pool_status) { throw std::runtime_error("a bad callback"); });
  p.on_status_change([&](pool_status, pool_status to) {
    if (to == pool_status::running) stats_status = static_cast<int>(p.stats().status);
  });
  p.on_status_change(log.callback());
  ASSERT_TRUE(wait_until([&] { return p.stats().backends.begin()->second.connect_failures >= 2; }));
  EXPECT_EQ(p.status(), pool_status::starting) << "no backend has been online yet";
  servers[0]->restart();
  ASSERT_TRUE(wait_until([&] { return p.status() == pool_status::running; }));
  ASSERT_TRUE(wait_until([&] { return !log.seen().empty(); }));
  using change = std::pair<pool_status, pool_status>;
  EXPECT_EQ(log.seen(), (std::vector<change>{{pool_status::starting, pool_status::running}}));
  EXPECT_EQ(stats_status.load(), static_cast<int>(pool_status::running));
  auto h = p.claim();
  EXPECT_TRUE(echo_once(*h, "the pool works on"));
}

policy failing_policy() {
  policy p = sized();
  p.failed_after = 300ms;
  p.claim_timeout = 5s;
  return p;
}

TEST_F(lifecycle_test, a_refused_backend_fails_the_pool_claims_fail_at_once_then_it_recovers) {
  start_servers(1);
  servers[0]->stop();
  status_log first, late;  // outlive the pool, whose end they see too
  tcp_pool p(io.executor(), "failing", resolver(), tcp_connector{}, failing_policy());
  p.on_status_change(first.callback());
  ASSERT_TRUE(wait_until([&] { return p.status() == pool_status::failed; }));

  const auto start = clock::now();
  error_code ec;
  auto h = p.claim(ec);
  EXPECT_FALSE(h);
  EXPECT_EQ(ec, errc::pool_failed) << ec.message();
  EXPECT_LT(seconds_since(start), 1.0) << "fails at once, not at its 5 s claim_timeout";
  EXPECT_GE(p.stats().claim_failures.pool_failed, 1u);

  // Registered while failed: not called for `failed` itself.
  p.on_status_change(late.callback());
  servers[0]->restart();
  ASSERT_TRUE(wait_until([&] { return p.status() == pool_status::running; }));
  ASSERT_TRUE(wait_until([&] { return first.seen().size() >= 2 && !late.seen().empty(); }));
  using change = std::pair<pool_status, pool_status>;
  EXPECT_EQ(first.seen(), (std::vector<change>{{pool_status::starting, pool_status::failed},
                                               {pool_status::failed, pool_status::running}}));
  EXPECT_EQ(late.seen(), (std::vector<change>{{pool_status::failed, pool_status::running}}));
  auto ok = p.claim();
  EXPECT_TRUE(echo_once(*ok, "back"));
}

TEST_F(lifecycle_test, a_resolver_that_knows_no_backend_fails_the_pool) {
  tcp_pool p(io.executor(), "empty", resolver(), tcp_connector{}, failing_policy());
  ASSERT_TRUE(wait_until([&] { return p.status() == pool_status::failed; }, 5s))
      << "failed_after is 300 ms";
  error_code ec;
  EXPECT_FALSE(p.claim(ec));
  EXPECT_EQ(ec, errc::pool_failed) << ec.message();
}

TEST_F(lifecycle_test, wait_when_failed_makes_claims_wait_instead) {
  start_servers(1);
  servers[0]->stop();
  auto pol = failing_policy();
  pol.wait_when_failed = true;
  tcp_pool p(io.executor(), "waiting", resolver(), tcp_connector{}, pol);
  ASSERT_TRUE(wait_until([&] { return p.status() == pool_status::failed; }));
  const auto start = clock::now();
  error_code ec;
  auto h = p.claim(400ms, ec);
  EXPECT_FALSE(h);
  EXPECT_EQ(ec, errc::no_backends_online) << ec.message();
  EXPECT_GE(seconds_since(start), 0.35) << "waited for its timeout";
  // A claim waiting while failed gets the connection once the server is back.
  auto f = p.async_claim(10s, asio::use_future);
  servers[0]->restart();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  auto got = f.get();
  EXPECT_TRUE(echo_once(*got, "waited"));
}

// ----- async_wait_ready ----------------------------------------------------------

TEST_F(lifecycle_test, wait_ready_completes_once_enough_backends_are_online) {
  start_servers(3);
  for (auto& s : servers) s->stop();
  auto pol = sized();
  pol.failed_after = 60s;
  tcp_pool p(io.executor(), "ready", resolver(), tcp_connector{}, pol);
  auto f = p.async_wait_ready(2, 20s, asio::use_future);
  servers[0]->restart();
  ASSERT_TRUE(wait_until([&] { return p.status() == pool_status::running; }));
  EXPECT_EQ(f.wait_for(300ms), std::future_status::timeout) << "one backend online is not two";
  servers[1]->restart();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_NO_THROW(f.get());
  std::size_t online = 0;
  for (const auto& [name, b] : p.stats().backends) online += b.online;
  EXPECT_GE(online, 2u);
  // Already ready: completes at once.
  ec_future again;
  p.async_wait_ready(2, 20s, into(again));
  ASSERT_EQ(again.wait_for(5s), std::future_status::ready);
  EXPECT_FALSE(std::get<0>(again.get()));
}

TEST_F(lifecycle_test, wait_ready_times_out_when_backends_never_come) {
  start_servers(1);
  servers[0]->stop();
  auto pol = sized();
  pol.failed_after = 60s;
  tcp_pool p(io.executor(), "ready", resolver(), tcp_connector{}, pol);
  const auto start = clock::now();
  ec_future f;
  p.async_wait_ready(1, 300ms, into(f));
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(std::get<0>(f.get()), asio::error::timed_out);
  EXPECT_GE(seconds_since(start), 0.25);
}

TEST_F(lifecycle_test, wait_ready_for_no_backend_completes_at_once) {
  start_servers(1);
  servers[0]->stop();  // nothing will come online
  auto pol = sized();
  pol.failed_after = 60s;
  tcp_pool p(io.executor(), "ready", resolver(), tcp_connector{}, pol);
  ec_future f;
  p.async_wait_ready(0, 30s, into(f));
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_FALSE(std::get<0>(f.get())) << "0 backends are online already";
}

TEST_F(lifecycle_test, wait_ready_fails_as_soon_as_the_pool_fails) {
  start_servers(1);
  servers[0]->stop();
  tcp_pool p(io.executor(), "ready", resolver(), tcp_connector{}, failing_policy());
  ec_future f;
  p.async_wait_ready(1, 30s, into(f));
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready) << "not at its 30 s timeout";
  EXPECT_EQ(std::get<0>(f.get()), errc::pool_failed);
  EXPECT_EQ(p.status(), pool_status::failed);
}

// ----- async_drain ---------------------------------------------------------------

TEST_F(lifecycle_test, drain_waits_for_claims_to_come_back_then_stops) {
  start_servers(1);
  status_log log;  // outlives the pool
  tcp_pool p(io.executor(), "drain", resolver(), tcp_connector{}, sized(2, 0));
  auto a = p.claim();
  auto b = p.claim();
  ASSERT_EQ(p.status(), pool_status::running);
  p.on_status_change(log.callback());
  // Both slots are claimed: this claim waits, until the drain fails it.
  std::future<std::tuple<error_code, handle<tcp::socket>>> waiting;
  p.async_claim(20s, into(waiting));
  ASSERT_TRUE(wait_until([&] { return p.stats().claims_waiting == 1; }));
  drain_future f;
  p.async_drain(20s, into(f));
  ASSERT_EQ(waiting.wait_for(5s), std::future_status::ready) << "not at its 20 s timeout";
  EXPECT_EQ(std::get<0>(waiting.get()), errc::terminated);
  error_code ec;
  EXPECT_FALSE(p.claim(ec));
  EXPECT_EQ(ec, errc::terminated) << ec.message();
  EXPECT_EQ(p.status(), pool_status::stopping);
  ec_future ready;
  p.async_wait_ready(1, 5s, into(ready));
  ASSERT_EQ(ready.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(std::get<0>(ready.get()), errc::terminated) << "a stopping pool is not getting ready";
  EXPECT_TRUE(echo_once(*a, "still mine"));
  a.reset();
  EXPECT_EQ(f.wait_for(200ms), std::future_status::timeout) << "b is still out";
  b.reset();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  const auto [drain_ec, still] = f.get();
  EXPECT_FALSE(drain_ec) << drain_ec.message();
  EXPECT_EQ(still, 0u);
  ASSERT_TRUE(wait_until([&] { return p.status() == pool_status::stopped; }));
  ASSERT_TRUE(wait_until([&] { return servers[0]->open_connections() == 0; }));
  ASSERT_TRUE(wait_until([&] { return log.seen().size() >= 2; }));
  using change = std::pair<pool_status, pool_status>;
  EXPECT_EQ(log.seen(), (std::vector<change>{{pool_status::running, pool_status::stopping},
                                             {pool_status::stopping, pool_status::stopped}}));
}

TEST_F(lifecycle_test, drain_times_out_with_the_claims_still_out) {
  start_servers(1);
  tcp_pool p(io.executor(), "drain", resolver(), tcp_connector{}, sized());
  auto kept = p.claim();
  const auto start = clock::now();
  drain_future f;
  p.async_drain(300ms, into(f));
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  const auto [ec, still] = f.get();
  EXPECT_EQ(ec, asio::error::timed_out) << ec.message();
  EXPECT_EQ(still, 1u);
  EXPECT_GE(seconds_since(start), 0.25);
  drain_future second;
  p.async_drain(1s, into(second));
  ASSERT_EQ(second.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(std::get<0>(second.get()), errc::terminated);
  kept.reset();
  ASSERT_TRUE(wait_until([&] { return servers[0]->open_connections() == 0; }));
  ASSERT_TRUE(wait_until([&] { return p.status() == pool_status::stopped; }));
}

TEST_F(lifecycle_test, terminate_with_claims_out_is_stopping_until_they_return) {
  start_servers(1);
  status_log log;  // outlives the pool
  tcp_pool p(io.executor(), "terminate", resolver(), tcp_connector{}, sized());
  auto h = p.claim();
  p.on_status_change(log.callback());
  EXPECT_FALSE(p.terminate());
  EXPECT_EQ(p.status(), pool_status::stopping);
  EXPECT_TRUE(echo_once(*h, "still mine"));
  h.reset();
  ASSERT_TRUE(wait_until([&] { return p.status() == pool_status::stopped; }));
  ASSERT_TRUE(wait_until([&] { return log.seen().size() >= 2; }));
  using change = std::pair<pool_status, pool_status>;
  EXPECT_EQ(log.seen(), (std::vector<change>{{pool_status::running, pool_status::stopping},
                                             {pool_status::stopping, pool_status::stopped}}));
  ASSERT_TRUE(wait_until([&] { return servers[0]->open_connections() == 0; }));
}

// ----- set_policy ----------------------------------------------------------------

// A pool with six idle connections to one server, four of them claimed,
// then the cap lowered to 2: the two idle ones close at once, the claimed
// ones stay.
class capped_pool_test : public lifecycle_test {
 protected:
  void SetUp() override {
    start_servers(1);
    p.emplace(io.executor(), "resize", resolver(), tcp_connector{}, pol);
    ASSERT_TRUE(idle_on_first_server(*p, 6));
    for (int i = 0; i < 4; ++i) held.push_back(p->claim());
    resize(*p, pol, 2, 2);
    ASSERT_TRUE(wait_until([&] { return servers[0]->open_connections() == 4; }))
        << "the two idle ones close at once; open " << servers[0]->open_connections();
  }

  policy pol = sized(6, 6);
  std::optional<tcp_pool> p;
  std::vector<handle<tcp::socket>> held;
};

TEST_F(capped_pool_test, claimed_ones_close_on_return_and_a_larger_cap_grows_at_once) {
  for (auto& h : held) EXPECT_TRUE(echo_once(*h, "not closed while claimed"));
  for (std::size_t i = 0; i < held.size(); ++i) {
    held[i].reset();
    const std::size_t still_out = held.size() - i - 1;
    ASSERT_TRUE(wait_until([&] {
      return servers[0]->open_connections() == std::max<std::size_t>(still_out, 2);
    })) << "after returning "
        << i + 1 << ": open " << servers[0]->open_connections();
  }
  EXPECT_GE(closed_for(*p, close_reason::resized), 4u);
  EXPECT_LE(counts_of(p->stats()).connected, 2u);
  // A larger cap grows at once.
  resize(*p, pol, 5, 5);
  ASSERT_TRUE(wait_until([&] { return servers[0]->open_connections() == 5; }));
}

TEST_F(capped_pool_test, a_cap_raised_again_before_claims_return_keeps_them) {
  resize(*p, pol, 6, 6);
  // 4 claimed and 2 spare again (the cap holds the spares to 2): nothing is
  // over the cap, so the claimed ones must stay when they return.
  ASSERT_TRUE(wait_until([&] { return servers[0]->open_connections() == 6; }));
  const auto accepted = servers[0]->accepted();
  for (auto& h : held) h.reset();
  ASSERT_TRUE(wait_until([&] {
    const auto c = counts_of(p->stats());
    return c.unclaimed == 6;
  })) << "unclaimed "
      << counts_of(p->stats()).unclaimed;
  EXPECT_EQ(closed_for(*p, close_reason::resized), 2u)
      << "only the two idle ones closed by the first set_policy";
  EXPECT_EQ(servers[0]->accepted(), accepted);
}

TEST_F(lifecycle_test, an_invalid_policy_is_refused_and_the_pool_keeps_working) {
  start_servers(1);
  auto pol = sized(2, 1);
  tcp_pool p(io.executor(), "invalid", resolver(), tcp_connector{}, pol);
  // The field set_policy refused `bad` for, or "accepted".
  const auto refused_field = [&](const policy& bad) -> std::string {
    try {
      p.set_policy(bad);
    } catch (const invalid_policy& e) {
      return e.field();
    }
    return "accepted";
  };
  auto bad = pol;
  bad.min_idle = 3;  // more than max_slots
  EXPECT_EQ(refused_field(bad), "min_idle");
  bad = pol;
  bad.max_connecting = 0;
  EXPECT_EQ(refused_field(bad), "max_connecting");
  auto a = p.claim();
  auto b = p.claim();
  EXPECT_TRUE(echo_once(*a, "a"));
  EXPECT_TRUE(echo_once(*b, "b"));
  EXPECT_EQ(p.stats().max_slots, 2u) << "the old policy still holds";
}

TEST_F(lifecycle_test, a_new_claim_timeout_applies_to_the_next_claims) {
  start_servers(1);
  auto pol = sized(1, 0);
  pol.claim_timeout = 20s;
  tcp_pool p(io.executor(), "timeout", resolver(), tcp_connector{}, pol);
  auto only = p.claim();
  pol.claim_timeout = 300ms;
  p.set_policy(pol);
  for (int blocking = 0; blocking < 2; ++blocking) {
    const auto start = clock::now();
    error_code ec;
    if (blocking == 1) {
      EXPECT_FALSE(p.claim(ec));
    } else {
      std::future<std::tuple<error_code, handle<tcp::socket>>> f;
      p.async_claim(into(f));
      ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
      ec = std::get<0>(f.get());
    }
    EXPECT_EQ(ec, errc::all_claims_used) << ec.message();
    const auto took = seconds_since(start);
    EXPECT_GE(took, 0.25);
    EXPECT_LT(took, 5.0) << "the new 300 ms, not the old 20 s";
  }
}

// ----- max_connecting --------------------------------------------------------------

TEST_F(lifecycle_test, at_most_max_connecting_connects_are_in_flight) {
  start_servers(40);
  auto pol = sized(40, 40);
  pol.max_connecting = 3;
  counting_connector connector;
  const auto counters = connector.c;
  tcp_pool p(io.executor(), "storm", resolver(), connector, pol);
  std::size_t most_in_flight_seen = 0;  // as the pool's stats say
  ASSERT_TRUE(wait_until(
      [&] {
        const auto s = p.stats();
        most_in_flight_seen = std::max(most_in_flight_seen, s.connects_in_flight);
        std::size_t online = 0;
        for (const auto& [name, b] : s.backends) online += b.online;
        return counts_of(s).connected == 40 && online == 40 && open_on(servers) == 40;
      },
      30s))
      << "open " << open_on(servers);
  EXPECT_LE(counters->max_in_flight.load(), 3);
  EXPECT_GE(counters->calls.load(), 40);
  EXPECT_LE(most_in_flight_seen, 3u);
  const auto s = p.stats();
  EXPECT_EQ(s.max_connecting, 3u);
  EXPECT_EQ(s.connects_in_flight, 0u);
  EXPECT_EQ(s.connects_waiting, 0u);
}

// ----- permanent connect errors ----------------------------------------------------

TEST_F(lifecycle_test, a_permanently_refused_backend_retries_only_after_max_backoff) {
  start_servers(2);
  auto pol = sized(4, 4);
  pol.set_config.spread = 0ms;
  pol.set_config.min_connection_backoff = 10ms;
  pol.set_config.max_connection_backoff = 1s;
  refusing_one_backend connector;
  connector.refused_port->store(servers[1]->endpoint().port());
  const auto refused = connector.refused;
  tcp_pool p(io.executor(), "permanent", resolver(), connector, pol);
  // Watch the refused backend's connects until one comes 900 ms after the
  // first: each of its slots connects once, then retries only after
  // max_connection_backoff (1 s); without that, backoff from 10 ms would
  // retry each slot 6 times in that window.
  std::vector<clock::time_point> at;
  ASSERT_TRUE(wait_until(
      [&] {
        at = refused->times();
        return !at.empty() && at.back() - at.front() >= 900ms;
      },
      15s));
  const auto start = at.front();
  const auto in_first_900ms =
      std::count_if(at.begin(), at.end(), [&](auto t) { return t - start < 900ms; });
  EXPECT_LE(in_first_900ms, static_cast<long>(pol.max_slots))
      << "one connect per slot, then max_connection_backoff";
  EXPECT_EQ(p.status(), pool_status::running) << "the other backend serves";
  auto h = p.claim();
  EXPECT_EQ(h->remote_endpoint(), servers[0]->endpoint());
  EXPECT_TRUE(echo_once(*h, "the good one"));
}

TEST_F(lifecycle_test, a_permanently_refused_only_backend_fails_the_pool_at_once) {
  start_servers(1);
  auto pol = sized();
  pol.failed_after = 30s;
  pol.claim_timeout = 10s;
  refusing_one_backend connector;
  connector.refused_port->store(servers[0]->endpoint().port());
  const auto start = clock::now();
  tcp_pool p(io.executor(), "permanent", resolver(), connector, pol);
  ASSERT_TRUE(wait_until([&] { return p.status() == pool_status::failed; }, 10s));
  EXPECT_LT(seconds_since(start), 5.0) << "well before failed_after (30 s)";
  const auto claim_start = clock::now();
  error_code ec;
  EXPECT_FALSE(p.claim(ec));
  EXPECT_EQ(ec, errc::pool_failed) << ec.message();
  EXPECT_LT(seconds_since(claim_start), 1.0) << "not at the 10 s claim_timeout";
  const auto b = p.stats().backends.at(to_string(servers[0]->endpoint()));
  ASSERT_TRUE(b.last_error);
  EXPECT_EQ(b.last_error->operation, "connect");
  EXPECT_NE(b.last_error->message.find("bad password"), std::string::npos) << b.last_error->message;
  EXPECT_EQ(servers[0]->accepted(), 0u);
  // Waiting to be ready while failed fails at once too.
  ec_future ready;
  p.async_wait_ready(1, 20s, into(ready));
  ASSERT_EQ(ready.wait_for(5s), std::future_status::ready) << "not at its 20 s timeout";
  EXPECT_EQ(std::get<0>(ready.get()), errc::pool_failed);
  // The password fixed (say): the next retry connects and the pool runs.
  connector.refused_port->store(0);
  ASSERT_TRUE(wait_until([&] { return p.status() == pool_status::running; }));
  auto h = p.claim();
  EXPECT_TRUE(echo_once(*h, "let in"));
}

// ----- connect_timeout -------------------------------------------------------------

TEST(lifecycle_defaults, connect_timeout_is_ten_seconds_by_default) {
  EXPECT_EQ(policy{}.set_config.connect_timeout, std::optional<duration>(10s));
}

}  // namespace
}  // namespace qorb::test
