// SPDX-License-Identifier: BSL-1.0
// The PostgreSQL connector's decisions, without a server.
#include <qorb/connectors/postgres.hpp>
#include "connectors/postgres_connect_failure.hpp"
#include "connectors/postgres_protocol.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>

namespace pg = qorb::connectors::postgres;
using pg::detail::next_recycle_step;
using pg::detail::recycle_step;
using pg::detail::session_facts;
using pg::detail::transaction_state;

namespace {

qorb::backend backend_at(const char* ip, unsigned short port) {
  const qorb::asio::ip::tcp::endpoint ep(qorb::asio::ip::make_address(ip), port);
  return {qorb::to_string(ep), ep};
}

std::map<std::string, std::string> as_map(
    const std::vector<std::pair<std::string, std::string>>& pairs) {
  // Later keywords win in libpq, as in a map built in order.
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : pairs) out[k] = v;
  return out;
}

}  // namespace

TEST(PostgresRecycle, IdleSessionIsReusedAsIs) {
  EXPECT_EQ(next_recycle_step({}, false), recycle_step::done);
}

TEST(PostgresRecycle, OpenOrFailedTransactionIsRolledBackOnce) {
  for (auto state : {transaction_state::in_transaction, transaction_state::in_error}) {
    session_facts f;
    f.transaction = state;
    EXPECT_EQ(next_recycle_step(f, false), recycle_step::rollback);
    f.rolled_back = true;  // ROLLBACK ran but the session is still in a transaction
    EXPECT_EQ(next_recycle_step(f, false), recycle_step::close);
  }
}

TEST(PostgresRecycle, PendingResultsAreDrainedThenRolledBack) {
  session_facts f;
  f.transaction = transaction_state::active;
  EXPECT_EQ(next_recycle_step(f, false), recycle_step::drain_results);
  f.drained = true;
  EXPECT_EQ(next_recycle_step(f, false), recycle_step::close);  // still active: COPY
  f.transaction = transaction_state::in_transaction;  // the drained command had opened one
  EXPECT_EQ(next_recycle_step(f, false), recycle_step::rollback);
}

TEST(PostgresRecycle, BrokenUnknownOrPipelinedSessionIsClosed) {
  session_facts broken;
  broken.connection_ok = false;
  EXPECT_EQ(next_recycle_step(broken, true), recycle_step::close);
  session_facts unknown;
  unknown.transaction = transaction_state::unknown;
  EXPECT_EQ(next_recycle_step(unknown, false), recycle_step::close);
  session_facts pipeline;
  pipeline.pipeline_mode = true;
  EXPECT_EQ(next_recycle_step(pipeline, false), recycle_step::close);
}

TEST(PostgresRecycle, DiscardAllRunsOnceAfterRollback) {
  session_facts f;
  f.transaction = transaction_state::in_transaction;
  EXPECT_EQ(next_recycle_step(f, true), recycle_step::rollback);  // DISCARD ALL can't run in a tx
  f.rolled_back = true;
  f.transaction = transaction_state::idle;
  EXPECT_EQ(next_recycle_step(f, true), recycle_step::discard_all);
  f.discarded = true;
  EXPECT_EQ(next_recycle_step(f, true), recycle_step::done);
}

TEST(PostgresConfig, BackendAddressAndPortAlwaysWin) {
  pg::config cfg;
  cfg.user = "app";
  cfg.password = "s3cret";
  cfg.database = "appdb";
  cfg.options = "-c search_path=app";
  cfg.sslmode = "disable";
  cfg.application_name = "svc";
  cfg.parameters = {{"hostaddr", "10.0.0.1"}, {"port", "1"}, {"sslrootcert", "/ca.pem"}};
  const auto params = as_map(pg::detail::connection_parameters(cfg, backend_at("127.0.0.2", 6543)));
  EXPECT_EQ(params.at("hostaddr"), "127.0.0.2");
  EXPECT_EQ(params.at("host"), "127.0.0.2");
  EXPECT_EQ(params.at("port"), "6543");
  EXPECT_EQ(params.at("user"), "app");
  EXPECT_EQ(params.at("password"), "s3cret");
  EXPECT_EQ(params.at("dbname"), "appdb");
  EXPECT_EQ(params.at("options"), "-c search_path=app");
  EXPECT_EQ(params.at("sslmode"), "disable");
  EXPECT_EQ(params.at("application_name"), "svc");
  EXPECT_EQ(params.at("sslrootcert"), "/ca.pem");
  EXPECT_EQ(params.at("gssencmode"), "disable");
}

TEST(PostgresConfig, ExtraParametersOverrideAllButTheAddress) {
  pg::config cfg;
  cfg.parameters = {{"host", "db.example.com"}, {"gssencmode", "prefer"}};
  const auto params = as_map(pg::detail::connection_parameters(cfg, backend_at("::1", 5432)));
  EXPECT_EQ(params.at("host"), "db.example.com");
  EXPECT_EQ(params.at("gssencmode"), "prefer");
  EXPECT_EQ(params.at("hostaddr"), "::1");
}

TEST(PostgresConfig, EmptyFieldsAreLeftToLibpqDefaults) {
  pg::config cfg;
  cfg.password.clear();
  cfg.options.clear();
  const auto params = as_map(pg::detail::connection_parameters(cfg, backend_at("127.0.0.1", 1)));
  EXPECT_EQ(params.count("password"), 0u);
  EXPECT_EQ(params.count("options"), 0u);
}

TEST(PostgresConfig, TcpSettingsBecomeLibpqKeywords) {
  pg::config cfg;
  const auto defaults = as_map(pg::detail::connection_parameters(cfg, backend_at("127.0.0.1", 1)));
  for (const char* key : {"keepalives", "keepalives_idle", "keepalives_interval",
                          "keepalives_count", "tcp_user_timeout"}) {
    EXPECT_EQ(defaults.count(key), 0u) << key << ": libpq's default is kept";
  }
  cfg.tcp.keepalive_idle = std::chrono::seconds(5);
  cfg.tcp.keepalive_interval = std::chrono::seconds(2);
  cfg.tcp.keepalive_count = 3;
  cfg.tcp.user_timeout = std::chrono::milliseconds(1500);
  auto params = as_map(pg::detail::connection_parameters(cfg, backend_at("127.0.0.1", 1)));
  EXPECT_EQ(params.at("keepalives_idle"), "5");
  EXPECT_EQ(params.at("keepalives_interval"), "2");
  EXPECT_EQ(params.at("keepalives_count"), "3");
  EXPECT_EQ(params.at("tcp_user_timeout"), "1500");
  cfg.tcp.keepalive = false;
  params = as_map(pg::detail::connection_parameters(cfg, backend_at("127.0.0.1", 1)));
  EXPECT_EQ(params.at("keepalives"), "0");
  EXPECT_EQ(params.count("keepalives_idle"), 0u);
  EXPECT_EQ(params.at("tcp_user_timeout"), "1500");  // not a keep-alive setting
}

TEST(PostgresConfig, BadTcpSettingsNameTheField) {
  pg::config cfg;
  cfg.tcp.keepalive_count = 0;
  try {
    pg::connector connector(cfg);
    ADD_FAILURE() << "a keepalive_count of 0 was taken";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("postgres::config::tcp.keepalive_count"),
              std::string::npos)
        << e.what();
  }
  cfg.tcp.keepalive_count = std::nullopt;
  cfg.tcp.user_timeout = std::chrono::milliseconds(-1);
  EXPECT_THROW(pg::connector{cfg}, std::invalid_argument);
}

TEST(PostgresConfig, DescriptionNeverShowsThePassword) {
  pg::config cfg;
  cfg.user = "app";
  cfg.password = "hunter22";
  cfg.database = "appdb";
  const std::string d = pg::detail::describe(cfg, backend_at("::1", 5432));
  EXPECT_EQ(d, "postgres://app@[::1]:5432/appdb");
  EXPECT_EQ(d.find("hunter22"), std::string::npos);
}

TEST(PostgresMessages, PasswordIsMaskedAndNewlinesTrimmed) {
  EXPECT_EQ(pg::detail::sanitize_message("bad pw hunter22 and hunter22\n", "hunter22"),
            "bad pw ******** and ********");
  EXPECT_EQ(pg::detail::sanitize_message("FATAL: x\n", ""), "FATAL: x");
}

TEST(PostgresMessages, ServerErrorCarriesSqlstateAndFields) {
  const pg::error e(pg::errc::server_error,
                    pg::error::server_fields{"42P01", "ERROR", "relation \"t\" does not exist",
                                             "some detail", "some hint"});
  EXPECT_EQ(e.code(), pg::errc::server_error);
  EXPECT_EQ(e.sqlstate(), "42P01");
  EXPECT_EQ(e.server_message(), "relation \"t\" does not exist");
  const std::string what = e.what();
  EXPECT_NE(what.find("ERROR 42P01: relation \"t\" does not exist"), std::string::npos) << what;
  EXPECT_NE(what.find("DETAIL: some detail"), std::string::npos) << what;
  EXPECT_NE(what.find("HINT: some hint"), std::string::npos) << what;
  EXPECT_STREQ(e.code().category().name(), "qorb.postgres");
}

TEST(PostgresMessages, AffectedRows) {
  EXPECT_EQ(pg::detail::parse_affected_rows("42"), 42u);
  EXPECT_EQ(pg::detail::parse_affected_rows(""), 0u);
  EXPECT_EQ(pg::detail::parse_affected_rows("x1"), 0u);
}

TEST(PostgresParams, ValuesBecomeText) {
  EXPECT_EQ(pg::to_param(42), "42");
  EXPECT_EQ(pg::to_param(-7LL), "-7");
  EXPECT_EQ(pg::to_param(true), "true");
  EXPECT_EQ(pg::to_param(0.5), "0.5");
  EXPECT_EQ(pg::to_param("abc"), "abc");
  EXPECT_EQ(pg::to_param(std::string("x")), "x");
  EXPECT_EQ(pg::to_param(std::nullopt), std::nullopt);
  EXPECT_EQ(pg::to_param(std::optional<int>()), std::nullopt);
  EXPECT_EQ(pg::to_param(std::optional<int>(3)), "3");
  EXPECT_EQ(pg::to_param(static_cast<const char*>(nullptr)), std::nullopt);
}

TEST(PostgresResult, ScalarIsTheFirstValueAndThrowsWhenThereIsNone) {
  pg::result r;
  EXPECT_THROW((void)r.scalar(), pg::error);
  r.rows.push_back({std::string("1"), std::nullopt});
  EXPECT_EQ(r.scalar(), "1");
}

// --- why a connect failed (qorb::permanent_error) ----------------------------
// The texts are libpq 15's PQerrorMessage after connects made with
// PQERRORS_VERBOSE to a PostgreSQL 15 server.

using pg::detail::is_permanent;
using pg::detail::is_permanent_sqlstate;
using pg::detail::read_connect_failure;

TEST(PostgresConnectFailure, VerboseTextIsReadBackToTheDefaultText) {
  const auto f = read_connect_failure(
      "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  28P01: password "
      "authentication failed for user \"postgres\"\nLOCATION:  auth_failed, auth.c:334\n");
  EXPECT_EQ(f.message,
            "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  password "
            "authentication failed for user \"postgres\"\n");
  EXPECT_EQ(f.sqlstates, std::vector<std::string>{"28P01"});
  EXPECT_TRUE(is_permanent(f, false));
}

TEST(PostgresConnectFailure, AuthenticationAndUnknownDatabaseArePermanent) {
  for (const char* state : {"28000", "28P01", "3D000"}) {
    EXPECT_TRUE(is_permanent_sqlstate(state)) << state;
  }
  // Starting up or shutting down, too many clients, terminated, a lost
  // connection, an unknown SQLSTATE: worth retrying.
  for (const char* state : {"57P03", "53300", "57P01", "08006", "XX000", "", "28"}) {
    EXPECT_FALSE(is_permanent_sqlstate(state)) << state;
  }
  const auto busy = read_connect_failure(
      "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  53300: too many "
      "connections for role \"limited\"\nLOCATION:  InitializeSessionUserId, miscinit.c:842\n");
  EXPECT_EQ(busy.sqlstates, std::vector<std::string>{"53300"});
  EXPECT_FALSE(is_permanent(busy, false));
  const auto starting = read_connect_failure(
      "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  57P03: the database "
      "system is starting up\nLOCATION:  ProcessStartupPacket, postmaster.c:2352\n");
  EXPECT_FALSE(is_permanent(starting, false));
}

TEST(PostgresConnectFailure, NoServerErrorIsNotPermanentUnlessAPasswordIsMissing) {
  const std::string refused =
      "connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n\tIs the "
      "server running on that host and accepting TCP/IP connections?\n";
  const auto f = read_connect_failure(refused);
  EXPECT_EQ(f.message, refused);
  EXPECT_TRUE(f.sqlstates.empty());
  EXPECT_FALSE(is_permanent(f, false));
  // "fe_sendauth: no password supplied": the server wants a password the
  // configuration does not have.
  EXPECT_TRUE(is_permanent(read_connect_failure("fe_sendauth: no password supplied\n"), true));
}

TEST(PostgresConnectFailure, EveryAttemptMustBeRefusedPermanently) {
  // sslmode=prefer: libpq tries again without TLS after a refusal.
  const std::string tls =
      "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  57P03: the database "
      "system is starting up\nLOCATION:  ProcessStartupPacket, postmaster.c:2352\n";
  const std::string plain =
      "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  28P01: password "
      "authentication failed for user \"u\"\nLOCATION:  auth_failed, auth.c:334\n";
  const auto mixed = read_connect_failure(tls + plain);
  EXPECT_EQ(mixed.sqlstates, (std::vector<std::string>{"57P03", "28P01"}));
  EXPECT_FALSE(is_permanent(mixed, false));
  EXPECT_TRUE(is_permanent(read_connect_failure(plain + plain), false));
}

TEST(PostgresConnectFailure, LocalizedServerMessagesAreReadByTheirSqlstate) {
  // lc_messages = 'fr_FR': only the SQLSTATE is the same in every language.
  const auto f = read_connect_failure(
      "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  3D000: la base de "
      "donn\xc3\xa9"
      "es \xc2\xab nodb \xc2\xbb n'existe pas\nLOCATION:  InitPostgres, "
      "postinit.c:948\n");
  EXPECT_EQ(f.sqlstates, std::vector<std::string>{"3D000"});
  EXPECT_TRUE(is_permanent(f, false));
  EXPECT_EQ(f.message.find("3D000"), std::string::npos) << f.message;
  EXPECT_EQ(f.message.find("LOCATION"), std::string::npos) << f.message;
}

TEST(PostgresConnectFailure, DetailAndHintLinesAreKept) {
  const auto f = read_connect_failure(
      "FATAL:  28000: role \"x\" is not permitted to log in\nDETAIL:  kept: as it "
      "is\nHINT:  ask: someone\nLOCATION:  InitializeSessionUserId, miscinit.c:727\n");
  EXPECT_EQ(f.message,
            "FATAL:  role \"x\" is not permitted to log in\nDETAIL:  kept: as it "
            "is\nHINT:  ask: someone\n");
  EXPECT_EQ(f.sqlstates, std::vector<std::string>{"28000"});
}
