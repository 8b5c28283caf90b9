// SPDX-License-Identifier: BSL-1.0
// qorb::pool with the PostgreSQL connector against real PostgreSQL servers
// started by the test on loopback.
#include <qorb/connectors/postgres.hpp>
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include "support/postgres_server.hpp"
#include "support/wait.hpp"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <future>
#include <memory>
#include <set>

namespace asio = boost::asio;
namespace pg = qorb::connectors::postgres;
using qorb::test::postgres_server;
using qorb::test::wait_until;
using namespace std::chrono_literals;

namespace {

using pg_pool = qorb::pool<pg::connection>;

postgres_server& shared_server() {
  static postgres_server server;
  return server;
}

pg::config test_config(const std::string& application_name = "qorb-pool-test") {
  pg::config cfg;
  cfg.password = postgres_server::password;
  cfg.sslmode = "disable";
  cfg.application_name = application_name;
  cfg.connect_timeout = 5s;
  cfg.logger = nullptr;
  return cfg;
}

// Short intervals so that failures are noticed within a test's time.
qorb::policy test_policy() {
  qorb::policy p;
  p.claim_timeout = 10s;
  p.rebalance_interval = 200ms;
  p.set_config.health_interval = 100ms;
  p.set_config.min_connection_backoff = 20ms;
  p.set_config.max_connection_backoff = 500ms;
  p.set_config.health_check_timeout = 2s;
  return p;
}

std::shared_ptr<qorb::fixed_resolver> resolver_for(std::vector<asio::ip::tcp::endpoint> endpoints) {
  return std::make_shared<qorb::fixed_resolver>(std::move(endpoints));
}

class PostgresPool : public ::testing::Test {
 protected:
  // Runs `op` on the test's own threads (not the pool's), bounded.
  template <class T>
  T run(asio::awaitable<T> op, std::chrono::milliseconds limit = 30s) {
    auto future = asio::co_spawn(claimers_, std::move(op), asio::use_future);
    if (future.wait_for(limit) != std::future_status::ready) {
      throw std::runtime_error("operation did not complete in time");
    }
    return future.get();
  }

  // The pool's executor: two threads, as a server would run it.
  asio::thread_pool threads_{2};
  asio::thread_pool claimers_{2};

  void TearDown() override {
    claimers_.join();
    threads_.join();
  }
};

int backend_pid(pg::connection& c) { return PQbackendPID(c.native_handle()); }

TEST_F(PostgresPool, ClaimAndQuery) {
  pg_pool pool(threads_.get_executor(), "pg", resolver_for({shared_server().endpoint()}),
               pg::connector(test_config()), test_policy(), nullptr);
  const std::string answer = run([&]() -> asio::awaitable<std::string> {
    auto h = co_await pool.async_claim(asio::use_awaitable);
    const pg::result r = co_await h->query("SELECT $1::int * 6", 7);
    co_return r.scalar().value_or("NULL");
  }());
  EXPECT_EQ(answer, "42");
  // The blocking claim, from a thread that does not run the pool.
  auto h = pool.claim();
  EXPECT_FALSE(h->is_broken());
  h.reset();
  const auto stats = pool.stats();
  ASSERT_EQ(stats.backends.size(), 1u);
  EXPECT_EQ(stats.total_claims, 2u);
  pool.terminate();
}

TEST_F(PostgresPool, ManyClaimersShareFewConnections) {
  constexpr int claimers = 40;
  constexpr int rounds = 5;
  qorb::policy p = test_policy();
  p.max_slots = 3;
  p.spares_wanted = 0;
  p.set_config.max_count = 3;
  pg_pool pool(threads_.get_executor(), "pg", resolver_for({shared_server().endpoint()}),
               pg::connector(test_config("qorb-many-claimers")), p, nullptr);
  std::atomic<int> served{0};
  // Named, so that its captures outlive the coroutines; `id` is a
  // parameter, so each frame owns a copy.
  const auto claimer = [&](int id) -> asio::awaitable<void> {
    for (int round = 0; round < rounds; ++round) {
      auto h = co_await pool.async_claim(asio::use_awaitable);
      const pg::result r = co_await h->query("SELECT $1::int", id * 100 + round);
      EXPECT_EQ(r.scalar(), std::to_string(id * 100 + round));
      served.fetch_add(1);
    }
  };
  std::vector<std::future<void>> done;
  for (int i = 0; i < claimers; ++i) {
    done.push_back(asio::co_spawn(claimers_, claimer(i), asio::use_future));
  }
  for (auto& f : done) {
    ASSERT_EQ(f.wait_for(60s), std::future_status::ready);
    f.get();
  }
  EXPECT_EQ(served.load(), claimers * rounds);
  EXPECT_EQ(pool.stats().total_claims, static_cast<std::uint64_t>(claimers * rounds));
  const int sessions = std::stoi(shared_server().query(
      "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'qorb-many-claimers'"));
  EXPECT_GE(sessions, 1);
  EXPECT_LE(sessions, 3);
  pool.terminate();
}

TEST_F(PostgresPool, ClaimReturnedMidTransactionIsRolledBackBeforeReuse) {
  auto& server = shared_server();
  server.query("CREATE TABLE IF NOT EXISTS pool_rollback (v int)");
  server.query("TRUNCATE pool_rollback");
  qorb::policy p = test_policy();
  p.max_slots = 1;  // the next claim gets the same session
  p.spares_wanted = 0;
  p.set_config.max_count = 1;
  pg_pool pool(threads_.get_executor(), "pg", resolver_for({server.endpoint()}),
               pg::connector(test_config()), p, nullptr);
  const int first_pid = run([&]() -> asio::awaitable<int> {
    auto h = co_await pool.async_claim(asio::use_awaitable);
    co_await h->execute("BEGIN");
    co_await h->query("INSERT INTO pool_rollback VALUES (1)");
    EXPECT_EQ(PQtransactionStatus(h->native_handle()), PQTRANS_INTRANS);
    co_return backend_pid(*h);  // the handle returns mid-transaction
  }());
  const auto [second_pid, status, rows] =
      run([&]() -> asio::awaitable<std::tuple<int, int, std::string>> {
        auto h = co_await pool.async_claim(asio::use_awaitable);
        const int tx = PQtransactionStatus(h->native_handle());
        const pg::result r = co_await h->query("SELECT count(*) FROM pool_rollback");
        co_return std::tuple{backend_pid(*h), tx, r.scalar().value_or("NULL")};
      }());
  EXPECT_EQ(second_pid, first_pid) << "not the same session: the test proves nothing";
  EXPECT_EQ(status, PQTRANS_IDLE);
  EXPECT_EQ(rows, "0");
  EXPECT_EQ(server.query("SELECT count(*) FROM pool_rollback"), "0");
  pool.terminate();
}

TEST_F(PostgresPool, TerminatedBackendIsDetectedAndReplaced) {
  auto& server = shared_server();
  qorb::policy p = test_policy();
  p.max_slots = 1;
  p.spares_wanted = 0;
  p.set_config.max_count = 1;
  pg_pool pool(threads_.get_executor(), "pg", resolver_for({server.endpoint()}),
               pg::connector(test_config()), p, nullptr);
  const int first_pid = run([&]() -> asio::awaitable<int> {
    auto h = co_await pool.async_claim(asio::use_awaitable);
    co_return backend_pid(*h);
  }());
  ASSERT_EQ(server.query("SELECT pg_terminate_backend(" + std::to_string(first_pid) + ")"), "t");
  const std::string name = qorb::to_string(server.endpoint());
  // The idle connection's health check notices and the slot reconnects.
  ASSERT_TRUE(wait_until([&] { return pool.stats().backends.at(name).check_failures >= 1; }, 10s));
  const int second_pid = run([&]() -> asio::awaitable<int> {
    auto h = co_await pool.async_claim(asio::use_awaitable);
    co_await h->query("SELECT 1");
    co_return backend_pid(*h);
  }());
  EXPECT_NE(second_pid, first_pid);
  pool.terminate();
}

// One claim (waiting at most 1 s) and one query; whether both worked. A
// coroutine without captures: its frame holds all it uses.
asio::awaitable<bool> claim_and_query(pg_pool& pool) {
  auto [ec, h] = co_await pool.async_claim(1s, asio::as_tuple(asio::use_awaitable));
  if (ec) co_return false;
  try {
    co_await h->query("SELECT 1");
    co_return true;
  } catch (const pg::error&) {
    co_return false;
  }
}

// Claims until one succeeds with a query, discarding what fails; bounded.
bool query_succeeds(pg_pool& pool, asio::thread_pool& claimers, std::chrono::milliseconds limit) {
  return wait_until(
      [&] {
        auto f = asio::co_spawn(claimers, claim_and_query(pool), asio::use_future);
        return f.wait_for(5s) == std::future_status::ready && f.get();
      },
      limit);
}

TEST_F(PostgresPool, RecoversFromAServerRestartWithoutUserAction) {
  postgres_server server;
  pg_pool pool(threads_.get_executor(), "pg", resolver_for({server.endpoint()}),
               pg::connector(test_config()), test_policy(), nullptr);
  ASSERT_TRUE(query_succeeds(pool, claimers_, 10s));
  const std::string name = qorb::to_string(server.endpoint());
  server.stop();
  ASSERT_TRUE(wait_until([&] { return !pool.stats().backends.at(name).online; }, 10s));
  server.start();
  EXPECT_TRUE(wait_until([&] { return pool.stats().backends.at(name).online; }, 15s));
  EXPECT_TRUE(query_succeeds(pool, claimers_, 10s));
  EXPECT_GE(pool.stats().backends.at(name).connect_failures, 1u);
  pool.terminate();
}

TEST_F(PostgresPool, ClaimsGoToTheServerThatIsStillUp) {
  postgres_server a;
  postgres_server b;
  pg_pool pool(threads_.get_executor(), "pg", resolver_for({a.endpoint(), b.endpoint()}),
               pg::connector(test_config()), test_policy(), nullptr);
  const std::string name_a = qorb::to_string(a.endpoint());
  const std::string name_b = qorb::to_string(b.endpoint());
  ASSERT_TRUE(wait_until(
      [&] {
        const auto s = pool.stats();
        return s.backends.size() == 2 && s.backends.at(name_a).online &&
               s.backends.at(name_b).online;
      },
      15s));
  a.stop();
  ASSERT_TRUE(wait_until([&] { return !pool.stats().backends.at(name_a).online; }, 10s));
  std::set<std::string> ports;
  for (int i = 0; i < 20; ++i) {
    ports.insert(run([&]() -> asio::awaitable<std::string> {
      auto h = co_await pool.async_claim(asio::use_awaitable);
      EXPECT_EQ(h.backend().name, name_b);
      const pg::result r = co_await h->query("SELECT inet_server_port()");
      co_return r.scalar().value_or("NULL");
    }()));
  }
  EXPECT_EQ(ports, std::set<std::string>{std::to_string(b.port())});
  pool.terminate();
}

// The error of one claim that waits at most `timeout`.
asio::awaitable<std::error_code> claim_error(pg_pool& pool, qorb::duration timeout) {
  auto [ec, h] = co_await pool.async_claim(timeout, asio::as_tuple(asio::use_awaitable));
  co_return ec;
}

// A pool whose only backend refuses every connect for a reason that will not
// pass (the connector throws qorb::permanent_error): the pool is `failed` at
// once, well before `failed_after` (10 s); claims fail at once with
// `pool_failed`, not at their 10 s timeout; the backend's last error says
// why; it backs off instead of spinning.
void expect_permanent_connect_failure(pg_pool& pool, asio::thread_pool& claimers,
                                      const std::string& backend_name, const std::string& cause) {
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_until([&] { return pool.status() == qorb::pool_status::failed; }, 8s))
      << "status " << qorb::to_string(pool.status());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s) << "not after failed_after (10 s)";
  const auto claim_start = std::chrono::steady_clock::now();
  auto f = asio::co_spawn(claimers, claim_error(pool, 10s), asio::use_future);
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready) << "not at the claim's 10 s timeout";
  EXPECT_EQ(f.get(), qorb::errc::pool_failed);
  EXPECT_LT(std::chrono::steady_clock::now() - claim_start, 2s);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  const auto stats = pool.stats().backends.at(backend_name);
  EXPECT_GE(stats.connect_failures, 1u);
  // A permanent failure backs off at max_connection_backoff (500 ms) at
  // once: a few attempts per second at most, not thousands.
  const auto seconds = std::chrono::duration<double>(elapsed).count();
  EXPECT_LE(static_cast<double>(stats.connect_failures), 10.0 * (seconds + 1.0))
      << stats.connect_failures << " attempts in " << seconds << " s";
  EXPECT_FALSE(stats.online);
  ASSERT_TRUE(stats.last_error);
  EXPECT_EQ(stats.last_error->operation, "connect");
  EXPECT_NE(stats.last_error->message.find(cause), std::string::npos) << stats.last_error->message;
  EXPECT_EQ(stats.last_error->message.find("not-the-password"), std::string::npos)
      << "the password stays out of the message: " << stats.last_error->message;
}

TEST_F(PostgresPool, BadCredentialsFailThePoolAtOnce) {
  pg::config cfg = test_config();
  cfg.password = "not-the-password";
  pg_pool pool(threads_.get_executor(), "pg", resolver_for({shared_server().endpoint()}),
               pg::connector(cfg), test_policy(), nullptr);
  expect_permanent_connect_failure(pool, claimers_, qorb::to_string(shared_server().endpoint()),
                                   "password authentication failed");
  pool.terminate();
}

TEST_F(PostgresPool, UnknownDatabaseFailsThePoolAtOnce) {
  pg::config cfg = test_config();
  cfg.database = "no_such_database";
  pg_pool pool(threads_.get_executor(), "pg", resolver_for({shared_server().endpoint()}),
               pg::connector(cfg), test_policy(), nullptr);
  expect_permanent_connect_failure(pool, claimers_, qorb::to_string(shared_server().endpoint()),
                                   "no_such_database");
  pool.terminate();
}

}  // namespace
