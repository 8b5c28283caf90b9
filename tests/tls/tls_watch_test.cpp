// SPDX-License-Identifier: BSL-1.0
// tls_connector::watch on real TLS 1.3 connections over loopback: the
// session tickets a server sends to every new connection do not end it (and
// do not make it spin); a close_notify and a FIN, an RST, or a stopped nginx
// end it at once; a cancelled watch leaves the stream usable.
#include <qorb/connectors/tls.hpp>

#include "support/io_threads.hpp"
#include "support/nginx_server.hpp"
#include "support/require_tool.hpp"
#include "support/tls_certs.hpp"
#include "support/watch_run.hpp"

#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>

#include <openssl/ssl.h>

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>

namespace qorb::test {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;

std::chrono::nanoseconds cpu_time() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return std::chrono::seconds(t.tv_sec) + std::chrono::nanoseconds(t.tv_nsec);
}

// A TLS connection made with tls_connector to a TLS server of the test's
// own (OpenSSL through Asio, TLS 1.3, which sends session tickets right
// after the handshake), and the server's end of it.
class TlsWatch : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pki_ = std::make_unique<test_pki>(); }
  static void TearDownTestSuite() { pki_.reset(); }

  void SetUp() override {
    server_ctx_.use_certificate_chain_file(pki_->server_cert());
    server_ctx_.use_private_key_file(pki_->server_key(), asio::ssl::context::pem);
    acceptor_.open(tcp::v4());
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    server_.emplace(server_io_, server_ctx_);
    std::thread server([this] {
      acceptor_.accept(server_->next_layer());
      server_->handshake(asio::ssl::stream_base::server);
    });
    tls_connector_config config;
    config.ca_file = pki_->ca_file();
    connector_.emplace(config);
    client_.emplace(run(io_, connector_->connect(backend_of(acceptor_.local_endpoint()))));
    server.join();
    ASSERT_EQ(client_->protocol(), "TLSv1.3");
    // The tickets arrive after the client's handshake: unread records.
    ASSERT_TRUE(fd_shows(fd(), POLLIN, 5s)) << "no session tickets came";
  }

  int fd() { return client_->next_layer().native_handle(); }

  // close_notify, then the FIN: how servers close.
  void close_server() {
    SSL_shutdown(server_->native_handle());
    server_->next_layer().close();
  }

  void reset_server() {
    server_->next_layer().set_option(asio::socket_base::linger(true, 0));
    server_->next_layer().close();
  }

  static std::unique_ptr<test_pki> pki_;
  io_threads io_;
  std::optional<tls_connector> connector_;
  asio::io_context server_io_;
  asio::ssl::context server_ctx_{asio::ssl::context::tls_server};
  tcp::acceptor acceptor_{server_io_};
  // Made once the context has its certificate (an SSL object copies it).
  std::optional<asio::ssl::stream<tcp::socket>> server_;
  std::optional<tls_stream> client_;
};

std::unique_ptr<test_pki> TlsWatch::pki_;

TEST_F(TlsWatch, SessionTicketsDoNotEndItNorMakeItSpinAndTheStreamStillWorks) {
  {
    watch_run watch(io_, connector_->watch(*client_));
    const auto before = cpu_time();
    EXPECT_FALSE(watch.ended_within(500ms)) << watch.what();
    // No spinning (nor polling) on the unread records.
    EXPECT_LT(cpu_time() - before, 50ms);
    EXPECT_TRUE(watch.cancel()) << "it had ended: " << watch.what();
  }
  // The watch read nothing: the stream reads the tickets and the answer.
  asio::write(*client_, asio::buffer("ping", 4));
  std::array<char, 4> got{};
  asio::read(*server_, asio::buffer(got));
  asio::write(*server_, asio::buffer("pong", 4));
  asio::read(*client_, asio::buffer(got));
  EXPECT_EQ(std::string(got.data(), got.size()), "pong");
  // With nothing unread, a new watch waits without re-checks, and still
  // sees the close.
  watch_run again(io_, connector_->watch(*client_));
  EXPECT_FALSE(again.ended_within(100ms)) << again.what();
  close_server();
  ASSERT_TRUE(again.ended_within(5s));
  EXPECT_NE(again.what().find("peer closed the idle connection"), std::string::npos)
      << again.what();
}

TEST_F(TlsWatch, CloseNotifyAndFinBehindUnreadTicketsEndItAtOnce) {
  watch_run watch(io_, connector_->watch(*client_));
  EXPECT_FALSE(watch.ended_within(100ms)) << watch.what();
  const auto closed = std::chrono::steady_clock::now();
  close_server();
  ASSERT_TRUE(watch.ended_within(5s));
  const auto latency = std::chrono::steady_clock::now() - closed;
  EXPECT_NE(watch.what().find("peer closed the idle connection"), std::string::npos)
      << watch.what();
  // Seen as an event, not by polling.
  EXPECT_LT(latency, 500ms);
  std::printf("close_notify+FIN (tickets unread) -> watch ended: %lld us\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::microseconds>(latency).count()));
}

TEST_F(TlsWatch, ResetEndsItWithTheError) {
  watch_run watch(io_, connector_->watch(*client_));
  EXPECT_FALSE(watch.ended_within(100ms)) << watch.what();
  reset_server();
  ASSERT_TRUE(watch.ended_within(5s));
  EXPECT_EQ(watch.code(), std::errc::connection_reset) << watch.what();
}

TEST_F(TlsWatch, StartedAfterTheServerClosedItEndsAtOnce) {
  close_server();
  ASSERT_TRUE(fd_shows(fd(), POLLRDHUP, 5s));
  watch_run watch(io_, connector_->watch(*client_));
  ASSERT_TRUE(watch.ended_within(500ms));
  EXPECT_NE(watch.what().find("peer closed the idle connection"), std::string::npos)
      << watch.what();
}

TEST(TlsWatchNginx, AStoppedServerEndsIt) {
  if (!have_nginx()) QORB_MISSING_TOOL("nginx");
  test_pki pki;
  nginx_server server(tls_options(pki));
  io_threads io;
  tls_connector_config config;
  config.ca_file = pki.ca_file();
  tls_connector connector(config);
  auto stream = run(io, connector.connect(backend_of(server.endpoint())));
  watch_run watch(io, connector.watch(stream));
  EXPECT_FALSE(watch.ended_within(200ms)) << watch.what();
  server.stop();
  ASSERT_TRUE(watch.ended_within(5s));
  EXPECT_FALSE(watch.aborted());
  EXPECT_NE(watch.what().find("idle connection"), std::string::npos) << watch.what();
}

}  // namespace
}  // namespace qorb::test
