// SPDX-License-Identifier: BSL-1.0
// tls_connector against a real nginx serving TLS with certificates the test
// makes (a throwaway CA), and against servers that must be refused.
#include <boost/asio/any_io_executor.hpp>

#include "support/io_threads.hpp"
#include "support/nginx_server.hpp"
#include "support/require_tool.hpp"
#include "support/test_policy.hpp"
#include "support/tls_certs.hpp"
#include "support/wait.hpp"

#include <qorb/connectors/tls.hpp>
#include <qorb/error.hpp>
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using qorb::test::nginx_server;
using qorb::test::test_pki;

using qorb::test::backend_of;

using qorb::test::run;
using qorb::test::tls_options;

// One HTTP/1.1 request written by hand over the stream; the response's text.
asio::awaitable<std::string> get(qorb::tls_stream& s, std::string target) {
  std::string req = "GET ";
  req.append(target).append(" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  co_await asio::async_write(s, asio::buffer(req), asio::use_awaitable);
  std::string text;
  char buf[1024];
  for (;;) {
    boost::system::error_code ec;
    const auto n = co_await s.async_read_some(asio::buffer(buf),
                                              asio::redirect_error(asio::use_awaitable, ec));
    text.append(buf, n);
    if (ec) break;
  }
  co_return text;
}

// How a connect failed, read on the thread that ran it (as data: see
// qorb::test::run_failure): `permanent` when it threw qorb::permanent_error.
struct connect_outcome {
  bool failed = false;
  bool permanent = false;
  std::error_code code;
  std::string what;
};

asio::awaitable<connect_outcome> try_connect(qorb::tls_connector connector, qorb::backend b) {
  connect_outcome out;
  try {
    co_await connector.connect(b);
  } catch (const qorb::permanent_error& e) {
    out = {true, true, e.code(), e.what()};
  } catch (const std::system_error& e) {
    out = {true, false, e.code(), e.what()};
  } catch (const boost::system::system_error& e) {  // the TCP connect's
    out = {true, false, e.code(), e.what()};
  }
  co_return out;
}

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!qorb::test::have_nginx()) return;
    pki_ = std::make_unique<test_pki>();
    tls_server_ = std::make_unique<nginx_server>(tls_options(*pki_));
  }
  static void TearDownTestSuite() {
    tls_server_.reset();
    pki_.reset();
  }
  void SetUp() override {
    if (!tls_server_) QORB_MISSING_TOOL("nginx");
  }

  qorb::tls_connector_config trusting() const {
    qorb::tls_connector_config c;
    c.ca_file = pki_->ca_file();
    return c;
  }

  // The error connect fails with; `last_permanent_` says whether it was a
  // qorb::permanent_error (retrying will not help).
  std::error_code connect_error(qorb::tls_connector connector, const qorb::backend& b) {
    const auto outcome = run(io_, try_connect(std::move(connector), b));
    last_message_ = outcome.what;
    last_permanent_ = outcome.permanent;
    return outcome.code;
  }

  // The error connect to the TLS server fails with when its certificate is
  // checked against `name`.
  std::error_code connect_as(const std::string& name) {
    auto config = trusting();
    config.server_name = name;
    return connect_error(qorb::tls_connector(config), backend_of(tls_server_->endpoint()));
  }

  static std::unique_ptr<test_pki> pki_;
  static std::unique_ptr<nginx_server> tls_server_;
  qorb::test::io_threads io_;
  std::string last_message_;
  bool last_permanent_ = false;
};

std::unique_ptr<test_pki> TlsTest::pki_;
std::unique_ptr<nginx_server> TlsTest::tls_server_;

TEST_F(TlsTest, HandshakeVerifiesTheServersIpAddressAndCarriesData) {
  qorb::tls_connector connector(trusting());
  auto stream = run(io_, connector.connect(backend_of(tls_server_->endpoint())));
  EXPECT_TRUE(stream.protocol() == "TLSv1.3" || stream.protocol() == "TLSv1.2")
      << stream.protocol();
  const auto text = run(io_, get(stream, "/tls-ip"));
  EXPECT_NE(text.find("200 OK"), std::string::npos) << text;
  EXPECT_NE(text.find("hello"), std::string::npos) << text;
  const auto log = tls_server_->log();
  ASSERT_FALSE(log.empty());
  EXPECT_EQ(log.back().uri, "/tls-ip");
  EXPECT_EQ(log.back().server_name, "-");  // no SNI for an IP address
}

TEST_F(TlsTest, ConfiguredServerNameIsSentAsSniAndVerified) {
  auto config = trusting();
  config.server_name = "localhost";
  qorb::tls_connector connector(config);
  auto stream = run(io_, connector.connect(backend_of(tls_server_->endpoint())));
  run(io_, get(stream, "/tls-sni"));
  const auto log = tls_server_->log();
  ASSERT_FALSE(log.empty());
  EXPECT_EQ(log.back().uri, "/tls-sni");
  EXPECT_EQ(log.back().server_name, "localhost");
}

TEST_F(TlsTest, DnsBackendNamesGiveTheHostToVerify) {
  // A DNS backend is named "target.@address"; its target is what TLS verifies.
  const auto e = tls_server_->endpoint();
  const qorb::backend b{"localhost.@" + qorb::to_string(e), e};
  EXPECT_EQ(qorb::backend_host(b), "localhost");
  qorb::tls_connector connector(trusting());
  auto stream = run(io_, connector.connect(b));
  run(io_, get(stream, "/tls-dns"));
  EXPECT_EQ(tls_server_->log().back().server_name, "localhost");
}

TEST_F(TlsTest, WrongCaIsRejected) {
  auto config = trusting();
  config.ca_file = pki_->other_ca_file();
  const auto ec = connect_error(qorb::tls_connector(config), backend_of(tls_server_->endpoint()));
  EXPECT_EQ(ec, qorb::tls_errc::certificate_untrusted) << last_message_;
  EXPECT_NE(last_message_.find("certificate verification failed"), std::string::npos)
      << last_message_;
  EXPECT_TRUE(last_permanent_) << "an untrusted certificate stays untrusted";
}

TEST_F(TlsTest, SystemStoreDoesNotTrustTheTestCa) {
  const auto ec = connect_error(qorb::tls_connector(), backend_of(tls_server_->endpoint()));
  EXPECT_EQ(ec, qorb::tls_errc::certificate_untrusted) << last_message_;
  EXPECT_TRUE(last_permanent_);
}

TEST_F(TlsTest, WrongHostNameIsRejected) {
  const auto ec = connect_as("db.example.com");
  EXPECT_EQ(ec, qorb::tls_errc::host_name_mismatch) << last_message_;
  EXPECT_NE(last_message_.find("db.example.com"), std::string::npos) << last_message_;
  EXPECT_TRUE(last_permanent_) << "a certificate for another name stays so";
}

TEST_F(TlsTest, WrongIpAddressIsRejected) {
  // The certificate names 127.0.0.1 and ::1, not 127.0.0.2.
  const auto ec = connect_as("127.0.0.2");
  EXPECT_EQ(ec, qorb::tls_errc::host_name_mismatch) << last_message_;
  EXPECT_TRUE(last_permanent_);
}

TEST_F(TlsTest, NameThatCannotBeCheckedIsPermanent) {
  // An IPv6 address with a zone: an IP address to asio, none OpenSSL can
  // verify a certificate against.
  const auto ec = connect_as("fe80::1%1");
  EXPECT_EQ(ec, qorb::tls_errc::handshake_failed) << last_message_;
  EXPECT_NE(last_message_.find("cannot verify against the name"), std::string::npos)
      << last_message_;
  EXPECT_TRUE(last_permanent_);
}

TEST_F(TlsTest, VerificationCanBeTurnedOff) {
  qorb::tls_connector_config config;
  config.verify = false;
  config.server_name = "db.example.com";
  qorb::tls_connector connector(config);
  auto stream = run(io_, connector.connect(backend_of(tls_server_->endpoint())));
  EXPECT_NE(run(io_, get(stream, "/unverified")).find("200 OK"), std::string::npos);
}

TEST_F(TlsTest, PlainTcpServerIsRecognised) {
  nginx_server plain;
  const auto ec = connect_error(qorb::tls_connector(trusting()), backend_of(plain.endpoint()));
  EXPECT_EQ(ec, qorb::tls_errc::not_tls) << last_message_;
  EXPECT_NE(last_message_.find("plain TCP"), std::string::npos) << last_message_;
  EXPECT_FALSE(last_permanent_) << "the server may speak TLS after a restart";
}

TEST_F(TlsTest, ServerThatClosesDuringTheHandshake) {
  // Accepts, then closes without a word.
  asio::ip::tcp::acceptor acceptor(io_.io, {asio::ip::make_address("127.0.0.1"), 0});
  std::thread closer([&] {
    asio::ip::tcp::socket s(io_.io);
    acceptor.accept(s);
  });
  const auto ec =
      connect_error(qorb::tls_connector(trusting()), backend_of(acceptor.local_endpoint()));
  closer.join();
  EXPECT_EQ(ec, qorb::tls_errc::handshake_closed) << last_message_;
  EXPECT_FALSE(last_permanent_) << "a closed handshake may pass on the next try";
}

TEST_F(TlsTest, RefusedTcpConnectIsNotPermanent) {
  const asio::ip::tcp::endpoint closed(asio::ip::make_address("127.0.0.1"),
                                       qorb::test::free_port());
  const auto ec = connect_error(qorb::tls_connector(trusting()), backend_of(closed));
  EXPECT_TRUE(ec) << "connected to a closed port";
  EXPECT_FALSE(last_permanent_) << last_message_;
}

TEST_F(TlsTest, SessionsAreResumed) {
  qorb::tls_connector connector(trusting());
  const auto b = backend_of(tls_server_->endpoint());
  {
    auto first = run(io_, connector.connect(b));
    EXPECT_FALSE(first.session_reused());
    run(io_, get(first, "/first"));  // reads the server's session tickets
  }
  auto second = run(io_, connector.connect(b));
  EXPECT_TRUE(second.session_reused());
  run(io_, get(second, "/second"));
  EXPECT_EQ(tls_server_->log().back().reused, "r");

  auto config = trusting();
  config.session_resumption = false;
  qorb::tls_connector fresh(config);
  {
    auto first = run(io_, fresh.connect(b));
    run(io_, get(first, "/first"));
  }
  auto again = run(io_, fresh.connect(b));
  EXPECT_FALSE(again.session_reused());
}

TEST_F(TlsTest, ClientCertificate) {
  nginx_server mtls(tls_options(*pki_, 60, pki_->ca_file()));
  const auto b = backend_of(mtls.endpoint());
  {
    qorb::tls_connector without(trusting());
    auto s = run(io_, without.connect(b));
    EXPECT_NE(run(io_, get(s, "/anonymous")).find("400"), std::string::npos);
  }
  auto config = trusting();
  config.certificate_file = pki_->client_cert();
  config.private_key_file = pki_->client_key();
  qorb::tls_connector with(config);
  auto s = run(io_, with.connect(b));
  EXPECT_NE(run(io_, get(s, "/authenticated")).find("200 OK"), std::string::npos);
  EXPECT_EQ(mtls.log().back().client_verify, "SUCCESS");
}

TEST_F(TlsTest, BadConfigurationIsRefusedByTheConstructor) {
  qorb::tls_connector_config missing;
  missing.ca_file = pki_->dir() + "/no-such-ca.pem";
  try {
    qorb::tls_connector c(missing);
    FAIL() << "a missing CA file was accepted";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-ca.pem"), std::string::npos) << e.what();
  }
  qorb::tls_connector_config half;
  half.certificate_file = pki_->client_cert();
  EXPECT_THROW(qorb::tls_connector{half}, std::invalid_argument);
}

TEST_F(TlsTest, DestructionSendsCloseNotify) {
  // A TLS server of the test's own: it sees a clean TLS close (eof), not a
  // truncated stream, when the client's stream is destroyed.
  asio::ssl::context server_ctx(asio::ssl::context::tls_server);
  server_ctx.use_certificate_chain_file(pki_->server_cert());
  server_ctx.use_private_key_file(pki_->server_key(), asio::ssl::context::pem);
  asio::io_context server_io;
  asio::ip::tcp::acceptor acceptor(server_io, {asio::ip::make_address("127.0.0.1"), 0});
  boost::system::error_code seen;
  std::thread server([&] {
    asio::ssl::stream<asio::ip::tcp::socket> s(server_io, server_ctx);
    acceptor.accept(s.next_layer());
    s.handshake(asio::ssl::stream_base::server);
    char byte;
    s.read_some(asio::buffer(&byte, 1), seen);
  });
  {
    qorb::tls_connector connector(trusting());
    auto stream = run(io_, connector.connect(backend_of(acceptor.local_endpoint())));
  }
  server.join();
  EXPECT_EQ(seen, asio::error::eof) << seen.message();
}

TEST_F(TlsTest, PoolConnectTimeoutBoundsAHandshakeThatNeverAnswers) {
  // Accepts and then says nothing: the handshake would wait forever.
  asio::ip::tcp::acceptor acceptor(io_.io, {asio::ip::make_address("127.0.0.1"), 0});
  auto policy = qorb::test::quick_policy();
  policy.set_config.connect_timeout = 200ms;
  policy.claim_timeout = 1s;
  qorb::pool<qorb::tls_stream> pool(
      io_.executor(), "tls-timeout",
      std::make_shared<qorb::fixed_resolver>(
          std::vector<asio::ip::tcp::endpoint>{acceptor.local_endpoint()}),
      qorb::tls_connector(trusting()), policy);
  EXPECT_ANY_THROW(pool.claim());
  EXPECT_TRUE(qorb::test::wait_until(
      [&] {
        const auto s = pool.stats();
        return !s.backends.empty() && s.backends.begin()->second.connect_failures > 0;
      },
      10s));
  pool.terminate();
}

TEST_F(TlsTest, StreamsAreCheckedForAClosedPeer) {
  nginx_server stopping(tls_options(*pki_));
  qorb::tls_connector connector(trusting());
  auto stream = run(io_, connector.connect(backend_of(stopping.endpoint())));
  run(io_, connector.is_valid(stream));  // open, maybe with tickets waiting
  stopping.stop();                       // nginx closes its connections
  EXPECT_TRUE(qorb::test::wait_until(
      [&] {
        try {
          qorb::tls_connector::check_open(stream);
          return false;
        } catch (const std::system_error&) {
          return true;
        }
      },
      20s));
  // A close by the server is the normal end of an idle connection (the
  // pool replaces it without counting a failure); found right after a
  // claim returned it, it is a failure (a server dropping each connection).
  try {
    run(io_, connector.is_valid(stream));
    ADD_FAILURE() << "is_valid passed on a closed stream";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), qorb::errc::connection_ended) << e.what();
  }
  try {
    run(io_, connector.on_recycle(stream));
    ADD_FAILURE() << "on_recycle passed on a closed stream";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::connection_reset) << e.what();
  }
}

}  // namespace
