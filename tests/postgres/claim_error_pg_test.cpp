// SPDX-License-Identifier: BSL-1.0
// Issue 21 item 7: the PostgreSQL connector's authentication error reaches
// a claim's error word for word, through the backend's last error, against
// a real PostgreSQL started by the test on loopback: the exact sentence for
// the blocking claim() and co_claim (times blanked), without the password.
#include <qorb/claim_error.hpp>
#include <qorb/connectors/postgres.hpp>
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include "support/claim_error_check.hpp"
#include "support/io_threads.hpp"
#include "support/postgres_server.hpp"
#include "support/wait.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace qorb::test {
namespace {

namespace pg = connectors::postgres;

TEST(PostgresClaimError, AFailedAuthenticationIsSaidInTheClaimsError) {
  postgres_server server;
  io_threads io;
  pg::config cfg;
  cfg.password = "not-the-password";
  cfg.sslmode = "disable";
  cfg.connect_timeout = std::chrono::seconds(5);
  cfg.logger = nullptr;
  const backend b{to_string(server.endpoint()), server.endpoint()};
  const std::string said = connect_failure(io.executor(), pg::connector(cfg), b);
  ASSERT_NE(said.find("password authentication failed"), std::string::npos) << said;
  policy pol;
  pol.failed_after = std::chrono::hours(1);  // failed for the permanent error alone
  pol.set_config.max_connection_backoff = std::chrono::seconds(60);
  pool<pg::connection> p(
      io.executor(), "pg",
      std::make_shared<fixed_resolver>(std::vector<asio::ip::tcp::endpoint>{server.endpoint()}),
      pg::connector(cfg), pol, nullptr);
  ASSERT_TRUE(wait_until([&] { return p.status() == pool_status::failed; })) << p.explain();
  const std::string expected =
      "pool 'pg': pool failed after waiting T (failed; 1 backend known, 0 online; 0 of 16 slots "
      "claimed, 0 claims waiting); last error: " +
      b.name + " connect: " + blank_times(said) + ", T ago";
  auto e = blocking_claim_error(p, std::chrono::seconds(5));
  expect_claim_error(e, p, errc::pool_failed, expected);
  expect_claim_error(awaited_claim_error(p, std::chrono::seconds(5)), p, errc::pool_failed,
                     expected);
  ASSERT_TRUE(e);
  EXPECT_EQ(std::string(e->what()).find("not-the-password"), std::string::npos) << e->what();
  p.terminate();
}

}  // namespace
}  // namespace qorb::test
