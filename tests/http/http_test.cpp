// SPDX-License-Identifier: BSL-1.0
// The HTTP/1.1 connector in a pool against a real nginx, plain and TLS:
// keep-alive reuse counted in nginx's access log ($connection,
// $connection_requests), Connection: close, idle timeouts, failing health
// checks, 5xx reported as backend failures, reloads and restarts.
#include "support/nginx_server.hpp"
#include "support/require_tool.hpp"
#include "support/test_policy.hpp"
#include "support/tls_certs.hpp"

#include <qorb/connectors/http.hpp>
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

namespace asio = boost::asio;
namespace http = qorb::connectors::http;
using namespace std::chrono_literals;
using qorb::test::backend_of;
using qorb::test::nginx_server;
using qorb::test::run;
using qorb::test::test_pki;
using qorb::test::wait_until;

using http_pool = qorb::pool<http::connection>;

http::request get(const std::string& target) { return {http::verb::get, target, 11}; }

// Sockets of this process to `port` in CLOSE_WAIT: the server closed them.
int closed_by_server(unsigned short port) {
  int count = 0;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string slot, local, remote, state;
      f >> slot >> local >> remote >> state;
      const auto colon = remote.rfind(':');
      if (colon == std::string::npos) continue;
      if (std::stoul(remote.substr(colon + 1), nullptr, 16) == port && state == "08") ++count;
    }
  }
  return count;
}

// Runs the tests once over plain HTTP and once over TLS.
class HttpTest : public ::testing::TestWithParam<bool> {
 protected:
  static void SetUpTestSuite() {
    if (qorb::test::have_nginx()) pki_ = std::make_unique<test_pki>();
  }
  static void TearDownTestSuite() { pki_.reset(); }

  void SetUp() override {
    if (!pki_) QORB_MISSING_TOOL("nginx");
  }

  bool tls() const { return GetParam(); }

  qorb::test::nginx_options server_options(int keepalive_timeout_s = 60) const {
    if (tls()) return qorb::test::tls_options(*pki_, keepalive_timeout_s);
    qorb::test::nginx_options o;
    o.keepalive_timeout_s = keepalive_timeout_s;
    return o;
  }

  http::config client_config() const {
    http::config c;
    if (tls()) {
      c.tls.emplace();
      c.tls->ca_file = pki_->ca_file();
    }
    c.request_timeout = 5s;
    return c;
  }

  std::unique_ptr<http_pool> make_pool(const nginx_server& server, http::config c,
                                       qorb::policy p = one_connection()) {
    return std::make_unique<http_pool>(io_.executor(), tls() ? "https" : "http",
                                       std::make_shared<qorb::fixed_resolver>(
                                           std::vector<asio::ip::tcp::endpoint>{server.endpoint()}),
                                       http::connector(std::move(c)), p);
  }

  static qorb::policy one_connection() {
    auto p = qorb::test::quick_policy();
    p.max_slots = 1;
    p.spares_wanted = 1;
    p.set_config.max_count = 1;
    p.set_config.health_check_timeout = 2s;
    p.set_config.health_interval = std::nullopt;
    return p;
  }

  // Claims, requests `target`, returns the claim; the response.
  http::response request(http_pool& pool, const std::string& target) {
    auto h = pool.claim(5s);
    return run(io_, h->request(get(target)));
  }

  qorb::backend_stats backend_stats(http_pool& pool) {
    const auto s = pool.stats();
    return s.backends.empty() ? qorb::backend_stats{} : s.backends.begin()->second;
  }

  // The access-log entries for `uri`.
  static std::vector<qorb::test::nginx_log_entry> entries(const nginx_server& server,
                                                          const std::string& uri) {
    std::vector<qorb::test::nginx_log_entry> found;
    for (auto& e : server.log()) {
      if (e.uri == uri) found.push_back(e);
    }
    return found;
  }

  // Waits for at least `n` entries for `uri` (nginx writes its log line
  // as the request ends, which can be just after the client has the
  // response) and returns them all.
  static std::vector<qorb::test::nginx_log_entry> logged(const nginx_server& server,
                                                         const std::string& uri,
                                                         std::size_t n = 1) {
    std::vector<qorb::test::nginx_log_entry> found;
    wait_until([&] { return (found = entries(server, uri)).size() >= n; }, 10s);
    if (found.size() < n) {
      throw std::runtime_error("nginx logged " + std::to_string(found.size()) + " of " +
                               std::to_string(n) + " requests for " + uri);
    }
    return found;
  }

  static std::unique_ptr<test_pki> pki_;
  qorb::test::io_threads io_;
};

std::unique_ptr<test_pki> HttpTest::pki_;

TEST_P(HttpTest, RequestGetsTheResponseWithHostHeader) {
  nginx_server server(server_options());
  auto pool = make_pool(server, client_config());
  auto h = pool->claim(5s);
  EXPECT_EQ(h->is_tls(), tls());
  auto res = run(io_, h->request(get("/hello")));
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res.body(), "hello\n");
  EXPECT_TRUE(h->reusable());
  EXPECT_EQ(h->requests(), 1u);
  const auto log = logged(server, "/hello");
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].host, "127.0.0.1:" + std::to_string(server.port()));
  h.reset();
  pool->terminate();
}

TEST_P(HttpTest, ConfiguredHostHeader) {
  nginx_server server(server_options());
  auto c = client_config();
  c.host = "api.example.com";
  auto pool = make_pool(server, c);
  request(*pool, "/named");
  EXPECT_EQ(logged(server, "/named").at(0).host, "api.example.com");
  pool->terminate();
}

TEST_P(HttpTest, KeepAliveConnectionIsReusedAcrossClaims) {
  nginx_server server(server_options());
  auto pool = make_pool(server, client_config());
  constexpr int n = 20;
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(request(*pool, "/reuse").result(), http::status::ok);
  }
  const auto log = logged(server, "/reuse", n);
  ASSERT_EQ(log.size(), std::size_t(n));
  std::set<std::uint64_t> connections;
  for (const auto& e : log) connections.insert(e.connection);
  EXPECT_EQ(connections.size(), 1u) << "every request should use the one pooled connection";
  EXPECT_EQ(log.back().connection_requests, std::uint64_t(n));
  EXPECT_EQ(backend_stats(*pool).check_failures, 0u);
  pool->terminate();
}

TEST_P(HttpTest, ConnectionCloseResponseReplacesTheConnection) {
  nginx_server server(server_options());
  auto pool = make_pool(server, client_config());
  request(*pool, "/before");
  {
    auto h = pool->claim(5s);
    auto res = run(io_, h->request(get("/close")));
    EXPECT_EQ(res.result(), http::status::ok);
    EXPECT_FALSE(res.keep_alive());
    EXPECT_FALSE(h->reusable());
    // A second request on it is refused, not sent.
    try {
      run(io_, h->request(get("/refused")));
      ADD_FAILURE() << "a request on a closed connection went through";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), http::errc::not_usable) << e.what();
    }
  }
  request(*pool, "/after");
  const auto before = logged(server, "/before").at(0);
  const auto after = logged(server, "/after").at(0);
  EXPECT_EQ(logged(server, "/close").at(0).connection, before.connection);
  EXPECT_NE(after.connection, before.connection) << "the closed connection came back";
  EXPECT_EQ(after.connection_requests, 1u);
  EXPECT_TRUE(entries(server, "/refused").empty());
  pool->terminate();
}

TEST_P(HttpTest, IdleConnectionClosedByTheServerIsReplaced) {
  nginx_server server(server_options(1));  // keepalive_timeout 1s
  auto pool = make_pool(server, client_config());
  request(*pool, "/first");
  // Wait for the event: nginx closed the idle pooled connection, and the
  // connector's watch saw it: an ordinary end, replaced without a failure.
  ASSERT_TRUE(wait_until(
      [&] { return backend_stats(*pool).connections.closed_for(qorb::close_reason::ended) >= 1; },
      20s));
  EXPECT_EQ(backend_stats(*pool).check_failures, 0u);
  EXPECT_EQ(request(*pool, "/second").result(), http::status::ok);
  const auto first = logged(server, "/first").at(0);
  const auto second = logged(server, "/second").at(0);
  EXPECT_NE(first.connection, second.connection);
  EXPECT_EQ(second.connection_requests, 1u);
  pool->terminate();
}

TEST_P(HttpTest, WithoutTheAcquireCheckAStaleConnectionFailsClearly) {
  nginx_server server(server_options(1));
  auto c = client_config();
  c.check_on_acquire = false;
  http::connector connector(c);
  auto conn = run(io_, connector.connect(backend_of(server.endpoint())));
  run(io_, conn.request(get("/first")));
  ASSERT_TRUE(wait_until([&] { return closed_by_server(server.port()) >= 1; }, 20s));
  try {
    run(io_, conn.request(get("/stale")));
    ADD_FAILURE() << "a request on a connection the server closed succeeded";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), http::errc::connection_closed) << e.what();
  }
  EXPECT_FALSE(conn.reusable());
  EXPECT_THROW(run(io_, connector.on_recycle(conn)), std::system_error);
}

TEST_P(HttpTest, HealthCheckPingsIdleConnectionsAndDropsThemOn500) {
  nginx_server server(server_options());
  auto p = one_connection();
  p.set_config.health_interval = 100ms;
  auto pool = make_pool(server, client_config(), p);
  request(*pool, "/warm");
  ASSERT_TRUE(wait_until([&] { return entries(server, "/health").size() >= 2; }, 10s))
      << "no health pings";
  for (const auto& e : entries(server, "/health")) EXPECT_EQ(e.status, 200);
  EXPECT_EQ(backend_stats(*pool).check_failures, 0u);

  server.set_healthy(false);
  ASSERT_TRUE(wait_until([&] { return backend_stats(*pool).check_failures >= 1; }, 10s));
  // The connection that failed was dropped: later pings come on new ones.
  std::uint64_t failed = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto& e : entries(server, "/health")) {
          if (e.status == 500) failed = e.connection;
        }
        return failed != 0;
      },
      10s));
  ASSERT_NE(failed, 0u);
  server.set_healthy(true);
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto& e : entries(server, "/health")) {
          if (e.status == 200 && e.connection > failed) return true;
        }
        return false;
      },
      10s));
  EXPECT_EQ(request(*pool, "/healthy-again").result(), http::status::ok);
  EXPECT_NE(logged(server, "/healthy-again").at(0).connection, failed);
  pool->terminate();
}

TEST_P(HttpTest, ServerErrorsCanFailTheBackend) {
  nginx_server server(server_options());
  auto c = client_config();
  c.server_errors_fail_backend = true;
  auto pool = make_pool(server, c);
  EXPECT_EQ(request(*pool, "/status/500").result(), http::status::internal_server_error);
  // nginx keeps the connection open after `return 500 "..."`: the 5xx is a
  // failed request on a good connection, reported, and the connection kept.
  ASSERT_TRUE(wait_until([&] { return backend_stats(*pool).failures_reported >= 1; }, 10s));
  EXPECT_EQ(backend_stats(*pool).failures_reported, 1u);
  EXPECT_EQ(backend_stats(*pool).check_failures, 1u) << "counted once (reports count there too)";
  EXPECT_EQ(request(*pool, "/after-500").result(), http::status::ok);
  EXPECT_EQ(logged(server, "/after-500").at(0).connection,
            logged(server, "/status/500").at(0).connection);
  pool->terminate();
}

TEST_P(HttpTest, CallerReportsA5xx) {
  nginx_server server(server_options());
  auto pool = make_pool(server, client_config());
  {
    auto h = pool->claim(5s);
    auto res = run(io_, h->request(get("/status/503")));
    ASSERT_EQ(res.result_int(), 503u);
    // The documented way to count a 5xx against the backend by hand.
    h.report_failure("the server answered 503");
  }
  EXPECT_TRUE(wait_until([&] { return backend_stats(*pool).failures_reported >= 1; }, 10s));
  EXPECT_EQ(request(*pool, "/next").result(), http::status::ok);
  EXPECT_EQ(logged(server, "/next").at(0).connection,
            logged(server, "/status/503").at(0).connection)
      << "a reported failure keeps the connection";
  pool->terminate();
}

TEST_P(HttpTest, ReloadMidRunLosesNoRequestForLong) {
  nginx_server server(server_options());
  auto p = qorb::test::quick_policy();
  p.max_slots = 4;
  auto pool = make_pool(server, client_config(), p);
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 3; ++w) {
    workers.emplace_back([&] {
      while (!stop) {
        try {
          auto h = pool->claim(5s);
          auto res = run(io_, h->request(get("/load")));
          if (res.result() == http::status::ok) ++ok;
        } catch (const std::exception&) {
          ++failed;
        }
      }
    });
  }
  ASSERT_TRUE(wait_until([&] { return ok > 50; }, 20s));
  server.reload();
  // The reload is done when a new worker answers: requests come on new
  // connections (nginx numbers connections across its workers).
  std::uint64_t before = 0;
  for (const auto& e : entries(server, "/load")) before = std::max(before, e.connection);
  ASSERT_TRUE(wait_until(
      [&] {
        const auto log = entries(server, "/load");
        return !log.empty() && log.back().connection > before;
      },
      20s));
  const int ok_after_reload = ok;
  ASSERT_TRUE(wait_until([&] { return ok > ok_after_reload + 50; }, 20s));
  stop = true;
  for (auto& t : workers) t.join();
  // A request racing the old worker's close can fail; the pool replaces the
  // connection, so only a handful may.
  EXPECT_LE(failed.load(), 12) << "ok " << ok.load();
  pool->terminate();
}

TEST_P(HttpTest, ServerStoppedMidRunAndStartedAgain) {
  nginx_server server(server_options());
  auto p = qorb::test::quick_policy();
  p.max_slots = 2;
  p.claim_timeout = 300ms;
  auto pool = make_pool(server, client_config(), p);
  EXPECT_EQ(request(*pool, "/up").result(), http::status::ok);
  server.stop();
  // Requests fail now: on_acquire finds the connection closed, no connect
  // succeeds, and claims time out.
  EXPECT_TRUE(wait_until(
      [&] {
        try {
          request(*pool, "/down");
          return false;
        } catch (const std::exception&) {
          return true;
        }
      },
      10s));
  EXPECT_TRUE(wait_until([&] { return backend_stats(*pool).connect_failures >= 1; }, 10s));
  server.start();
  EXPECT_TRUE(wait_until(
      [&] {
        try {
          return request(*pool, "/back").result() == http::status::ok;
        } catch (const std::exception&) {
          return false;
        }
      },
      20s));
  pool->terminate();
}

TEST_P(HttpTest, RequestTimeoutClosesTheConnection) {
  // A server that accepts and reads but never answers.
  asio::ip::tcp::acceptor acceptor(io_.io, {asio::ip::make_address("127.0.0.1"), 0});
  asio::ip::tcp::socket peer(io_.io);
  auto c = client_config();
  c.tls.reset();  // the silent server speaks no TLS
  c.request_timeout = 200ms;
  http::connector connector(c);
  std::thread accept([&] { acceptor.accept(peer); });
  auto conn = run(io_, connector.connect(backend_of(acceptor.local_endpoint())));
  accept.join();
  try {
    run(io_, conn.request(get("/never")));
    ADD_FAILURE() << "no timeout";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), http::errc::request_timeout) << e.what();
  }
  EXPECT_FALSE(conn.reusable());
  EXPECT_THROW(run(io_, connector.on_recycle(conn)), std::system_error);
}

TEST_P(HttpTest, BadConfigIsRefused) {
  auto c = client_config();
  c.ping_target = "health";
  EXPECT_THROW(http::connector{c}, std::invalid_argument);
  c = client_config();
  c.body_limit = 0;
  EXPECT_THROW(http::connector{c}, std::invalid_argument);
}

INSTANTIATE_TEST_SUITE_P(PlainAndTls, HttpTest, ::testing::Values(false, true),
                         [](const auto& param_info) { return param_info.param ? "tls" : "plain"; });

class HttpTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!qorb::test::have_nginx()) QORB_MISSING_TOOL("nginx");
    pki_ = std::make_unique<test_pki>();
    server_ = std::make_unique<nginx_server>(qorb::test::tls_options(*pki_));
  }
  std::unique_ptr<test_pki> pki_;
  std::unique_ptr<nginx_server> server_;
  qorb::test::io_threads io_;
};

TEST_F(HttpTlsTest, WrongCaOrNameFailsTheConnectWithTheReason) {
  for (const bool wrong_ca : {true, false}) {
    http::config c;
    c.tls.emplace();
    c.tls->ca_file = wrong_ca ? pki_->other_ca_file() : pki_->ca_file();
    if (!wrong_ca) c.tls->server_name = "other.example.com";
    http::connector connector(c);
    try {
      run(io_, connector.connect(backend_of(server_->endpoint())));
      ADD_FAILURE() << "connected";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), wrong_ca ? make_error_code(qorb::tls_errc::certificate_untrusted)
                                   : make_error_code(qorb::tls_errc::host_name_mismatch))
          << e.what();
    }
    // In a pool, the reason shows in the backend's stats.
    auto p = qorb::test::quick_policy();
    p.claim_timeout = 300ms;
    http_pool pool(io_.executor(), "https",
                   std::make_shared<qorb::fixed_resolver>(
                       std::vector<asio::ip::tcp::endpoint>{server_->endpoint()}),
                   http::connector(c), p);
    EXPECT_ANY_THROW(pool.claim());
    ASSERT_TRUE(wait_until(
        [&] {
          const auto s = pool.stats();
          return !s.backends.empty() && s.backends.begin()->second.last_error.has_value();
        },
        10s));
    pool.terminate();
  }
}

TEST_F(HttpTlsTest, NewConnectionsResumeTheTlsSession) {
  http::config c;
  c.tls.emplace();
  c.tls->ca_file = pki_->ca_file();
  http::connector connector(c);
  auto first = run(io_, connector.connect(backend_of(server_->endpoint())));
  run(io_, first.request(get("/one")));
  EXPECT_FALSE(first.session_reused());
  auto second = run(io_, connector.connect(backend_of(server_->endpoint())));
  EXPECT_TRUE(second.session_reused());
  run(io_, second.request(get("/two")));
  std::vector<qorb::test::nginx_log_entry> log;
  ASSERT_TRUE(wait_until([&] { return (log = server_->log()).size() >= 2; }, 10s));
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].reused, ".");
  EXPECT_EQ(log[1].reused, "r");
}

}  // namespace
