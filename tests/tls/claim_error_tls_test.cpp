// SPDX-License-Identifier: BSL-1.0
// Issue 21 item 7: the TLS connector's "not trusted" and "wrong name"
// reach a claim's error word for word, through the backend's last error,
// against a real nginx serving TLS with a throwaway CA: the exact sentence
// for the blocking claim() and co_claim (times blanked).
#include "support/claim_error_check.hpp"
#include "support/io_threads.hpp"
#include "support/nginx_server.hpp"
#include "support/require_tool.hpp"
#include "support/test_policy.hpp"
#include "support/tls_certs.hpp"
#include "support/wait.hpp"

#include <qorb/claim_error.hpp>
#include <qorb/connectors/tls.hpp>
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace qorb::test {
namespace {

// The nginx every test here uses, made once and stopped (by its PID) at
// exit; none without nginx.
struct tls_backend {
  test_pki pki;
  nginx_server server{tls_options(pki)};
};
tls_backend* shared_backend() {
  static const auto b = have_nginx() ? std::make_unique<tls_backend>() : nullptr;
  return b.get();
}

// A pool with `config` against the server fails its claims with the
// connector's own words (`words` among them) in the sentence, and says the
// backend failed permanently.
void expect_words_reach_the_claim(const tls_connector_config& config, const std::string& words) {
  io_threads io;
  const backend b = backend_of(shared_backend()->server.endpoint());
  const std::string said = connect_failure(io.executor(), tls_connector(config), b);
  ASSERT_NE(said.find(words), std::string::npos) << said;
  policy pol = quick_policy();
  pol.failed_after = std::chrono::hours(1);  // failed for the permanent error alone
  pol.set_config.max_connection_backoff = std::chrono::seconds(60);
  pool<tls_stream> p(
      io.executor(), "tls",
      std::make_shared<fixed_resolver>(std::vector<asio::ip::tcp::endpoint>{b.address}),
      tls_connector(config), pol);
  ASSERT_TRUE(wait_until([&] { return p.status() == pool_status::failed; })) << p.explain();
  const std::string expected =
      "pool 'tls': pool failed after waiting T (failed; 1 backend known, 0 online; 0 of 16 "
      "slots claimed, 0 claims waiting); last error: " +
      b.name + " connect: " + blank_times(said) + ", T ago";
  expect_claim_error(blocking_claim_error(p, std::chrono::seconds(5)), p, errc::pool_failed,
                     expected);
  expect_claim_error(awaited_claim_error(p, std::chrono::seconds(5)), p, errc::pool_failed,
                     expected);
  EXPECT_NE(p.explain().text().find(b.name + "): failed permanently, retry in "), std::string::npos)
      << p.explain();
}

TEST(TlsClaimError, AnUntrustedCertificateIsSaidInTheClaimsError) {
  if (!shared_backend()) QORB_MISSING_TOOL("nginx");
  tls_connector_config config;
  config.ca_file = shared_backend()->pki.other_ca_file();
  expect_words_reach_the_claim(config, "certificate verification failed");
}

TEST(TlsClaimError, ACertificateForAnotherNameIsSaidInTheClaimsError) {
  if (!shared_backend()) QORB_MISSING_TOOL("nginx");
  tls_connector_config config;
  config.ca_file = shared_backend()->pki.ca_file();
  config.server_name = "db.example.com";
  expect_words_reach_the_claim(config, "the certificate is not for 'db.example.com'");
}

}  // namespace
}  // namespace qorb::test
