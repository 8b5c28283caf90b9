// SPDX-License-Identifier: BSL-1.0
// The PostgreSQL connector on its own (no pool) against real PostgreSQL
// servers started by the test on loopback.
#include <qorb/connectors/postgres.hpp>
#include <qorb/error.hpp>

#include "support/postgres_server.hpp"
#include "support/wait.hpp"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <filesystem>
#include <future>
#include <sstream>

namespace asio = boost::asio;
namespace pg = qorb::connectors::postgres;
using qorb::test::postgres_server;
using namespace std::chrono_literals;

namespace {

// One server for the tests that do not stop theirs.
postgres_server& shared_server() {
  static postgres_server server;
  return server;
}

qorb::backend backend_of(const asio::ip::tcp::endpoint& ep) { return {qorb::to_string(ep), ep}; }

pg::config test_config() {
  pg::config cfg;
  cfg.password = postgres_server::password;
  cfg.sslmode = "disable";
  cfg.logger = nullptr;
  return cfg;
}

std::size_t open_fds() {
  return static_cast<std::size_t>(std::distance(
      std::filesystem::directory_iterator("/proc/self/fd"), std::filesystem::directory_iterator{}));
}

class PostgresConnector : public ::testing::Test {
 protected:
  // Runs `op` on a strand (as the pool does) until it completes, at most
  // `limit`; rethrows what it throws.
  template <class T>
  T run(asio::awaitable<T> op, std::chrono::milliseconds limit = 20s) {
    auto future = asio::co_spawn(strand_, std::move(op), asio::use_future);
    io_.restart();
    io_.run_for(limit);
    if (future.wait_for(0s) != std::future_status::ready) {
      throw std::runtime_error("operation did not complete in time");
    }
    return future.get();
  }

  pg::connection connect(pg::connector& c, const postgres_server& server) {
    return run(c.connect(backend_of(server.endpoint())));
  }

  // How a connect failed: `permanent` when it threw qorb::permanent_error
  // (retrying will not help).
  struct failure {
    bool permanent = false;
    std::error_code code;
    std::string what;
  };
  failure connect_failure(pg::connector& c, const asio::ip::tcp::endpoint& server,
                          std::chrono::milliseconds limit = 20s) {
    try {
      run(c.connect(backend_of(server)), limit);
      ADD_FAILURE() << "connected";
    } catch (const qorb::permanent_error& e) {
      return {true, e.code(), e.what()};
    } catch (const std::system_error& e) {
      return {false, e.code(), e.what()};
    }
    return {};
  }

  asio::io_context io_;
  asio::strand<asio::io_context::executor_type> strand_ = asio::make_strand(io_);
};

TEST_F(PostgresConnector, ConnectsAndQueriesWithParameters) {
  pg::connector connector(test_config());
  pg::connection conn = connect(connector, shared_server());
  ASSERT_TRUE(conn.is_open());
  EXPECT_FALSE(conn.is_broken());
  EXPECT_GT(PQbackendPID(conn.native_handle()), 0);
  // The verbosity the connect reads SQLSTATEs with is not left behind.
  EXPECT_EQ(PQsetErrorVerbosity(conn.native_handle(), PQERRORS_DEFAULT), PQERRORS_DEFAULT);
  EXPECT_EQ(conn.description(),
            "postgres://postgres@" + qorb::to_string(shared_server().endpoint()) + "/postgres");

  const pg::result r = run([&]() -> asio::awaitable<pg::result> {
    co_return co_await conn.query(
        "SELECT $1::int + 1 AS answer, $2::text AS word, $3::text AS nothing", 41, "hello",
        std::nullopt);
  }());
  ASSERT_EQ(r.columns, (std::vector<std::string>{"answer", "word", "nothing"}));
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0][0], "42");
  EXPECT_EQ(r.rows[0][1], "hello");
  EXPECT_EQ(r.rows[0][2], std::nullopt);
  EXPECT_EQ(r.command_tag, "SELECT 1");
  EXPECT_EQ(r.affected_rows, 1u);

  const pg::result series = run([&]() -> asio::awaitable<pg::result> {
    co_return co_await conn.query("SELECT generate_series(1, $1::int)", 1000);
  }());
  EXPECT_EQ(series.rows.size(), 1000u);
  EXPECT_EQ(series.rows.back()[0], "1000");

  EXPECT_NO_THROW(run(connector.is_valid(conn)));
  EXPECT_NO_THROW(run(connector.on_recycle(conn)));
}

TEST_F(PostgresConnector, ServerErrorsCarrySqlstateAndLeaveTheSessionUsable) {
  pg::connector connector(test_config());
  pg::connection conn = connect(connector, shared_server());
  try {
    run([&]() -> asio::awaitable<void> { co_await conn.query("SELECT * FROM no_such_table"); }());
    FAIL() << "no error";
  } catch (const pg::error& e) {
    EXPECT_EQ(e.code(), pg::errc::server_error);
    EXPECT_EQ(e.sqlstate(), "42P01");
    EXPECT_EQ(e.severity(), "ERROR");
    EXPECT_NE(e.server_message().find("no_such_table"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("42P01"), std::string::npos) << e.what();
  }
  try {
    run([&]() -> asio::awaitable<void> { co_await conn.query("SELECT 1 / $1::int", 0); }());
    FAIL() << "no error";
  } catch (const pg::error& e) {
    EXPECT_EQ(e.sqlstate(), "22012");
  }
  EXPECT_FALSE(conn.is_broken());
  EXPECT_EQ(PQtransactionStatus(conn.native_handle()), PQTRANS_IDLE);
  EXPECT_NO_THROW(run(connector.is_valid(conn)));
}

TEST_F(PostgresConnector, OnConnectAndOnAcquireRunTheirSql) {
  pg::config cfg = test_config();
  cfg.on_connect = "SET search_path = pg_catalog; SET application_name = 'from_on_connect'";
  cfg.on_acquire = "SET statement_timeout = '1234ms'";
  pg::connector connector(cfg);
  pg::connection conn = connect(connector, shared_server());
  const auto show = [&](const char* setting) {
    return run([&]() -> asio::awaitable<std::string> {
      const pg::result r = co_await conn.query(std::string("SHOW ") + setting);
      co_return r.scalar().value_or("NULL");
    }());
  };
  EXPECT_EQ(show("application_name"), "from_on_connect");
  EXPECT_EQ(show("search_path"), "pg_catalog");
  EXPECT_EQ(show("statement_timeout"), "0");
  run(connector.on_acquire(conn));
  EXPECT_EQ(show("statement_timeout"), "1234ms");
}

TEST_F(PostgresConnector, RecycleRollsBackAnOpenTransaction) {
  auto& server = shared_server();
  server.query("CREATE TABLE IF NOT EXISTS recycle_rollback (v int)");
  server.query("TRUNCATE recycle_rollback");
  pg::connector connector(test_config());
  pg::connection conn = connect(connector, server);
  run([&]() -> asio::awaitable<void> {
    co_await conn.execute("BEGIN");
    const pg::result r = co_await conn.query("INSERT INTO recycle_rollback VALUES ($1)", 7);
    EXPECT_EQ(r.affected_rows, 1u);
  }());
  ASSERT_EQ(PQtransactionStatus(conn.native_handle()), PQTRANS_INTRANS);

  run(connector.on_recycle(conn));
  EXPECT_EQ(PQtransactionStatus(conn.native_handle()), PQTRANS_IDLE);
  EXPECT_FALSE(conn.is_broken());
  EXPECT_EQ(server.query("SELECT count(*) FROM recycle_rollback"), "0");

  // A failed transaction too.
  EXPECT_THROW(
      run([&]() -> asio::awaitable<void> { co_await conn.execute("BEGIN; SELECT 1/0"); }()),
      pg::error);
  ASSERT_EQ(PQtransactionStatus(conn.native_handle()), PQTRANS_INERROR);
  run(connector.on_recycle(conn));
  EXPECT_EQ(PQtransactionStatus(conn.native_handle()), PQTRANS_IDLE);
  EXPECT_NO_THROW(run(connector.is_valid(conn)));
}

TEST_F(PostgresConnector, RecycleDrainsResultsLeftPendingThroughTheRawHandle) {
  pg::connector connector(test_config());
  pg::connection conn = connect(connector, shared_server());
  ASSERT_EQ(PQsendQuery(conn.native_handle(), "BEGIN; SELECT pg_sleep(0.05); SELECT 2"), 1);
  ASSERT_EQ(PQtransactionStatus(conn.native_handle()), PQTRANS_ACTIVE);
  run(connector.on_recycle(conn));
  EXPECT_EQ(PQtransactionStatus(conn.native_handle()), PQTRANS_IDLE);
  const pg::result r =
      run([&]() -> asio::awaitable<pg::result> { co_return co_await conn.query("SELECT 3"); }());
  EXPECT_EQ(r.scalar(), "3");
}

TEST_F(PostgresConnector, CancelledQueryThrowsAndIsDrainedOnRecycle) {
  pg::connector connector(test_config());
  pg::connection conn = connect(connector, shared_server());
  asio::cancellation_signal cancel;
  std::promise<std::exception_ptr> outcome;
  // A named lambda: its captures must outlive the coroutine.
  const auto sleep = [&]() -> asio::awaitable<void> {
    co_await conn.query("SELECT pg_sleep(0.2)");
  };
  asio::co_spawn(strand_, sleep(),
                 asio::bind_cancellation_slot(cancel.slot(),
                                              [&](std::exception_ptr e) { outcome.set_value(e); }));
  // Runs after the query has been sent and is waiting for its result.
  asio::post(strand_, [&] { cancel.emit(asio::cancellation_type::terminal); });
  io_.restart();
  io_.run_for(10s);
  auto future = outcome.get_future();
  ASSERT_EQ(future.wait_for(0s), std::future_status::ready);
  const std::exception_ptr e = future.get();
  ASSERT_TRUE(e);
  try {
    std::rethrow_exception(e);
  } catch (const boost::system::system_error& se) {
    EXPECT_EQ(se.code(), asio::error::operation_aborted);
  }
  ASSERT_EQ(PQtransactionStatus(conn.native_handle()), PQTRANS_ACTIVE);
  // The pool's checks would fail on a busy session...
  try {
    run(connector.is_valid(conn));
    FAIL() << "is_valid passed on a busy session";
  } catch (const pg::error& err) {
    EXPECT_EQ(err.code(), pg::errc::busy);
  }
  // ...but recycling drains it.
  run(connector.on_recycle(conn));
  EXPECT_EQ(PQtransactionStatus(conn.native_handle()), PQTRANS_IDLE);
  EXPECT_NO_THROW(run(connector.is_valid(conn)));
}

TEST_F(PostgresConnector, DiscardAllResetsSessionState) {
  pg::config cfg = test_config();
  cfg.discard_all_on_recycle = true;
  pg::connector connector(cfg);
  pg::connection conn = connect(connector, shared_server());
  run([&]() -> asio::awaitable<void> {
    co_await conn.execute("SET search_path = pg_catalog; CREATE TEMP TABLE scratch (v int)");
  }());
  run(connector.on_recycle(conn));
  const pg::result r = run([&]() -> asio::awaitable<pg::result> {
    co_return co_await conn.query(
        "SELECT current_setting('search_path'), to_regclass('pg_temp.scratch') IS NULL");
  }());
  EXPECT_EQ(r.rows.at(0)[0], "\"$user\", public");
  EXPECT_EQ(r.rows.at(0)[1], "t");
}

TEST_F(PostgresConnector, CopyIsRefusedAndTheConnectionIsNotReused) {
  pg::connector connector(test_config());
  pg::connection conn = connect(connector, shared_server());
  try {
    run([&]() -> asio::awaitable<void> { co_await conn.query("COPY (SELECT 1) TO STDOUT"); }());
    FAIL() << "COPY accepted";
  } catch (const pg::error& e) {
    EXPECT_EQ(e.code(), pg::errc::unsupported);
  }
  EXPECT_TRUE(conn.is_broken());
  EXPECT_THROW(run(connector.on_recycle(conn)), pg::error);
  EXPECT_THROW(run(connector.is_valid(conn)), pg::error);
}

TEST_F(PostgresConnector, TerminatedBackendFailsTheHealthCheck) {
  auto& server = shared_server();
  pg::connector connector(test_config());
  pg::connection conn = connect(connector, server);
  const int pid = PQbackendPID(conn.native_handle());
  ASSERT_EQ(server.query("SELECT pg_terminate_backend(" + std::to_string(pid) + ")"), "t");
  ASSERT_TRUE(qorb::test::wait_until(
      [&] {
        return server.query("SELECT count(*) FROM pg_stat_activity WHERE pid = " +
                            std::to_string(pid)) == "0";
      },
      10s));
  try {
    run(connector.is_valid(conn));
    FAIL() << "is_valid passed on a terminated backend";
  } catch (const pg::error& e) {
    // The server's FATAL 57P01 if it arrived, else a lost connection.
    EXPECT_TRUE(e.sqlstate() == "57P01" || e.code() == pg::errc::connection_broken) << e.what();
  }
  EXPECT_TRUE(conn.is_broken());
  EXPECT_THROW(run(connector.is_valid(conn)), pg::error);
  EXPECT_THROW(run(connector.on_recycle(conn)), pg::error);
  // A replacement connects.
  pg::connection replacement = connect(connector, server);
  EXPECT_NO_THROW(run(connector.is_valid(replacement)));
}

TEST_F(PostgresConnector, ServerRestartBreaksConnectionsAndNewOnesWork) {
  postgres_server server;
  pg::connector connector(test_config());
  pg::connection conn = connect(connector, server);
  server.stop();
  EXPECT_THROW(run(connector.is_valid(conn)), pg::error);
  EXPECT_TRUE(conn.is_broken());
  const failure stopped = connect_failure(connector, server.endpoint());
  EXPECT_EQ(stopped.code, pg::errc::connect_failed) << stopped.what;
  EXPECT_FALSE(stopped.permanent) << "a stopped server may come back";
  server.start();
  pg::connection again = connect(connector, server);
  EXPECT_NO_THROW(run(connector.is_valid(again)));
}

TEST_F(PostgresConnector, BadPasswordIsAClearErrorWithoutThePassword) {
  const std::string wrong = "wrong-pw-d41d8cd9";
  auto stream = std::make_shared<std::ostringstream>();
  pg::config cfg = test_config();
  cfg.password = wrong;
  cfg.logger = std::make_shared<spdlog::logger>(
      "pg-test", std::make_shared<spdlog::sinks::ostream_sink_mt>(*stream));
  cfg.logger->set_level(spdlog::level::trace);
  pg::connector connector(cfg);
  const failure f = connect_failure(connector, shared_server().endpoint());
  EXPECT_TRUE(f.permanent) << "a wrong password stays wrong: " << f.what;
  EXPECT_EQ(f.code, pg::errc::connect_failed);
  EXPECT_NE(f.what.find("password authentication failed"), std::string::npos) << f.what;
  EXPECT_NE(f.what.find(qorb::to_string(shared_server().endpoint())), std::string::npos) << f.what;
  EXPECT_EQ(f.what.find(wrong), std::string::npos) << f.what;
  cfg.logger->flush();
  const std::string log = stream->str();
  EXPECT_NE(log.find("password authentication failed"), std::string::npos) << log;
  EXPECT_EQ(log.find(wrong), std::string::npos) << log;
}

TEST_F(PostgresConnector, ServerNoticesGoToTheLogger) {
  auto stream = std::make_shared<std::ostringstream>();
  pg::config cfg = test_config();
  cfg.logger = std::make_shared<spdlog::logger>(
      "pg-test", std::make_shared<spdlog::sinks::ostream_sink_mt>(*stream));
  cfg.logger->set_level(spdlog::level::trace);
  pg::connector connector(cfg);
  pg::connection conn = connect(connector, shared_server());
  run([&]() -> asio::awaitable<void> {
    co_await conn.execute("DO $$ BEGIN RAISE WARNING 'qorb-warning-%', 42; END $$");
  }());
  cfg.logger->flush();
  const std::string log = stream->str();
  EXPECT_NE(log.find("qorb-warning-42"), std::string::npos) << log;
  EXPECT_NE(log.find("[warning]"), std::string::npos) << log;
}

TEST_F(PostgresConnector, UnknownDatabaseIsAClearError) {
  pg::config cfg = test_config();
  cfg.database = "no_such_db";
  pg::connector connector(cfg);
  const failure f = connect_failure(connector, shared_server().endpoint());
  EXPECT_TRUE(f.permanent) << "3D000: " << f.what;
  EXPECT_EQ(f.code, pg::errc::connect_failed);
  EXPECT_NE(f.what.find("\"no_such_db\" does not exist"), std::string::npos) << f.what;
}

TEST_F(PostgresConnector, UnknownRoleIsPermanent) {
  // With password authentication the server says 28P01 without telling
  // that the role does not exist.
  pg::config cfg = test_config();
  cfg.user = "qorb_no_such_role";
  pg::connector connector(cfg);
  const failure f = connect_failure(connector, shared_server().endpoint());
  EXPECT_TRUE(f.permanent) << f.what;
  EXPECT_EQ(f.code, pg::errc::connect_failed);
  EXPECT_NE(f.what.find("qorb_no_such_role"), std::string::npos) << f.what;
}

TEST_F(PostgresConnector, MissingPasswordIsPermanent) {
  pg::config cfg = test_config();
  cfg.password.clear();
  cfg.parameters.emplace_back("passfile", "/nonexistent");  // no ~/.pgpass either
  pg::connector connector(cfg);
  const failure f = connect_failure(connector, shared_server().endpoint());
  EXPECT_TRUE(f.permanent) << f.what;
  EXPECT_EQ(f.code, pg::errc::connect_failed);
}

TEST_F(PostgresConnector, PermanentFailureKeepsLibpqsDefaultMessage) {
  // The connector reads the SQLSTATE from a verbose message; what it throws
  // is what libpq says at its default verbosity, word for word.
  const auto ep = shared_server().endpoint();
  const std::string address = ep.address().to_string();
  const std::string port = std::to_string(ep.port());
  const char* keys[] = {"host",   "hostaddr", "port",       "user", "password",
                        "dbname", "sslmode",  "gssencmode", nullptr};
  const char* values[] = {address.c_str(), address.c_str(), port.c_str(), "postgres", "wrong-pw",
                          "postgres",      "disable",       "disable",    nullptr};
  PGconn* plain = PQconnectdbParams(keys, values, 0);
  ASSERT_EQ(PQstatus(plain), CONNECTION_BAD);
  std::string expected = PQerrorMessage(plain);
  PQfinish(plain);
  while (!expected.empty() && expected.back() == '\n') expected.pop_back();

  pg::config cfg = test_config();
  cfg.password = "wrong-pw";
  pg::connector connector(cfg);
  const failure f = connect_failure(connector, ep);
  EXPECT_TRUE(f.permanent) << f.what;
  EXPECT_EQ(f.what, "postgres://postgres@" + qorb::to_string(ep) + "/postgres: " + expected + ": " +
                        make_error_code(pg::errc::connect_failed).message());
}

TEST_F(PostgresConnector, TooManyConnectionsIsNotPermanent) {
  // 53300 comes after authentication succeeded: a slot may free up.
  auto& server = shared_server();
  server.query("DROP ROLE IF EXISTS qorb_limited");
  server.query("CREATE ROLE qorb_limited LOGIN PASSWORD 'limited-pw-1' CONNECTION LIMIT 0");
  pg::config cfg = test_config();
  cfg.user = "qorb_limited";
  cfg.password = "limited-pw-1";
  pg::connector connector(cfg);
  const failure f = connect_failure(connector, server.endpoint());
  EXPECT_FALSE(f.permanent) << f.what;
  EXPECT_EQ(f.code, pg::errc::connect_failed);
  EXPECT_NE(f.what.find("too many connections"), std::string::npos) << f.what;
  server.query("DROP ROLE qorb_limited");
}

TEST_F(PostgresConnector, ConnectTimesOutOnASilentServer) {
  // Accepts TCP connections (the kernel's backlog) but never answers.
  asio::ip::tcp::acceptor silent(io_, {asio::ip::make_address_v4("127.0.0.1"), 0});
  pg::config cfg = test_config();
  cfg.connect_timeout = 200ms;
  pg::connector connector(cfg);
  const std::size_t fds_before = open_fds();
  const auto start = std::chrono::steady_clock::now();
  try {
    run(connector.connect(backend_of(silent.local_endpoint())));
    FAIL() << "connected to a silent server";
  } catch (const pg::error& e) {
    EXPECT_EQ(e.code(), pg::errc::connect_timeout) << e.what();
  }
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 200ms);
  EXPECT_LT(took, 5s);
  EXPECT_EQ(open_fds(), fds_before);  // the PGconn and its socket are gone
}

TEST_F(PostgresConnector, CancelledConnectClosesTheConnection) {
  asio::ip::tcp::acceptor silent(io_, {asio::ip::make_address_v4("127.0.0.1"), 0});
  pg::config cfg = test_config();
  cfg.connect_timeout = 0ms;  // only the cancellation ends it
  pg::connector connector(cfg);
  const std::size_t fds_before = open_fds();
  asio::cancellation_signal cancel;
  std::promise<std::exception_ptr> outcome;
  const auto connect_silent = [&]() -> asio::awaitable<void> {
    pg::connection c = co_await connector.connect(backend_of(silent.local_endpoint()));
  };
  asio::co_spawn(strand_, connect_silent(),
                 asio::bind_cancellation_slot(cancel.slot(),
                                              [&](std::exception_ptr e) { outcome.set_value(e); }));
  // The stimulus: cancel once the connect is under way.
  asio::steady_timer timer(strand_, 50ms);
  timer.async_wait([&](auto) { cancel.emit(asio::cancellation_type::terminal); });
  io_.restart();
  io_.run_for(10s);
  auto future = outcome.get_future();
  ASSERT_EQ(future.wait_for(0s), std::future_status::ready) << "connect ignored the cancellation";
  const std::exception_ptr e = future.get();
  ASSERT_TRUE(e);
  try {
    std::rethrow_exception(e);
  } catch (const boost::system::system_error& se) {
    EXPECT_EQ(se.code(), asio::error::operation_aborted);
  }
  EXPECT_EQ(open_fds(), fds_before);
}

TEST_F(PostgresConnector, RefusedPortFailsFast) {
  pg::connector connector(test_config());
  const asio::ip::tcp::endpoint closed(asio::ip::make_address_v4("127.0.0.1"),
                                       qorb::test::free_port());
  const failure f = connect_failure(connector, closed, 5s);
  EXPECT_EQ(f.code, pg::errc::connect_failed) << f.what;
  EXPECT_FALSE(f.permanent) << "a server may listen there later";
}

// Several sessions used at once from a two-thread pool, each on its own
// strand, as claimers of a pool would (and under TSan).
TEST_F(PostgresConnector, ConcurrentSessionsOnAThreadPool) {
  pg::connector connector(test_config());
  constexpr int sessions = 4;
  constexpr int queries = 50;
  std::atomic<int> done{0};
  std::vector<std::future<void>> futures;
  // Named, so that its captures outlive the coroutines; `id` is a
  // parameter, so each frame owns a copy.
  const auto session = [&](int id) -> asio::awaitable<void> {
    pg::connection conn = co_await connector.connect(backend_of(shared_server().endpoint()));
    for (int q = 0; q < queries; ++q) {
      const pg::result r = co_await conn.query("SELECT $1::int * 2", id * 1000 + q);
      EXPECT_EQ(r.scalar(), std::to_string((id * 1000 + q) * 2));
      done.fetch_add(1);
    }
    co_await connector.on_recycle(conn);
  };
  asio::thread_pool threads(2);  // joined before `session` goes
  for (int s = 0; s < sessions; ++s) {
    futures.push_back(asio::co_spawn(asio::make_strand(threads), session(s), asio::use_future));
  }
  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
    f.get();
  }
  threads.join();
  EXPECT_EQ(done.load(), sessions * queries);
}

}  // namespace
