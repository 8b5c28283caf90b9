// SPDX-License-Identifier: BSL-1.0
// connectors::http's watch on real connections over loopback: nginx closing
// an idle keep-alive connection (its keepalive_timeout, a stop) ends it as
// an ordinary end (qorb::errc::connection_ended), plain and over TLS (with
// on_acquire's check, which lets the watch read TLS records, and without);
// an idle connection to a live nginx keeps it pending and still serves a
// request after the cancel. Against a server of the test's own: an RST is a
// loss, bytes that answer no request are a loss unless a close follows.
#include <qorb/connectors/http.hpp>
#include <qorb/error.hpp>

#include "support/io_threads.hpp"
#include "support/nginx_server.hpp"
#include "support/require_tool.hpp"
#include "support/tls_certs.hpp"
#include "support/wait.hpp"
#include "support/watch_run.hpp"

#include <boost/asio/write.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

namespace qorb::test {
namespace {

namespace http = connectors::http;
using namespace std::chrono_literals;
using tcp = asio::ip::tcp;

struct flavour {
  bool tls;
  bool check_on_acquire;
};

std::string name_of(const ::testing::TestParamInfo<flavour>& info) {
  if (!info.param.tls) return "Plain";
  return info.param.check_on_acquire ? "TlsCheckOnAcquire" : "TlsNoCheck";
}

class HttpWatch : public ::testing::TestWithParam<flavour> {
 protected:
  static void SetUpTestSuite() {
    if (have_nginx()) pki_ = std::make_unique<test_pki>();
  }
  static void TearDownTestSuite() { pki_.reset(); }
  void SetUp() override {
    if (!pki_) QORB_MISSING_TOOL("nginx");
  }

  nginx_options options(int keepalive_timeout_s) const {
    if (GetParam().tls) return tls_options(*pki_, keepalive_timeout_s);
    nginx_options o;
    o.keepalive_timeout_s = keepalive_timeout_s;
    return o;
  }
  http::connector connector() const {
    http::config c;
    c.check_on_acquire = GetParam().check_on_acquire;
    if (GetParam().tls) {
      c.tls.emplace();
      c.tls->ca_file = pki_->ca_file();
    }
    return http::connector(c);
  }
  unsigned get() { return run(io_, c_->request({http::verb::get, "/", 11})).result_int(); }
  // nginx (with this keep-alive timeout) and a connection to it.
  void start(int keepalive_timeout_s) {
    server_.emplace(options(keepalive_timeout_s));
    connector_.emplace(connector());
    c_.emplace(run(io_, connector_->connect(backend_of(server_->endpoint()))));
  }
  boost::asio::awaitable<void> watch() { return connector_->watch(*c_); }

  static std::unique_ptr<test_pki> pki_;
  io_threads io_;
  std::optional<nginx_server> server_;
  std::optional<http::connector> connector_;
  std::optional<http::connection> c_;
};

std::unique_ptr<test_pki> HttpWatch::pki_;

INSTANTIATE_TEST_SUITE_P(Flavours, HttpWatch,
                         ::testing::Values(flavour{false, true}, flavour{true, true},
                                           flavour{true, false}),
                         name_of);

TEST_P(HttpWatch, KeepAliveTimeoutEndsItAsAnOrdinaryEnd) {
  start(1);
  ASSERT_EQ(get(), 200u);
  watch_run watch(io_, this->watch());
  EXPECT_FALSE(watch.ended_within(300ms)) << watch.what();
  ASSERT_TRUE(watch.ended_within(10s));  // nginx closes it after 1 s
  EXPECT_EQ(watch.code(), qorb::errc::connection_ended) << watch.what();
}

TEST_P(HttpWatch, IdleConnectionToALiveServerKeepsItPendingAndStillServes) {
  start(60);
  {
    // Fresh: over TLS 1.3, the session tickets arrive while it is watched.
    watch_run watch(io_, this->watch());
    expect_pending_then_cancel(watch, 300ms);
  }
  EXPECT_EQ(get(), 200u);
  {
    watch_run watch(io_, this->watch());
    expect_pending_then_cancel(watch, 100ms);
  }
  EXPECT_EQ(get(), 200u);
}

TEST_P(HttpWatch, StoppedServerEndsIt) {
  start(60);
  ASSERT_EQ(get(), 200u);
  watch_run watch(io_, this->watch());
  EXPECT_FALSE(watch.ended_within(100ms)) << watch.what();
  server_->stop();
  ASSERT_TRUE(watch.ended_within(5s));
  EXPECT_EQ(watch.code(), qorb::errc::connection_ended) << watch.what();
}

// A plain connection made with the HTTP connector to a listener of the
// test's own, and the server's end of it.
class HttpWatchRaw : public ::testing::Test {
 protected:
  void SetUp() override {
    client_.emplace(run(io_, connector_.connect(peer_.target())));
    peer_.accept();
  }
  // The server's FIN, sent and acknowledged by the client's kernel (its
  // state is FIN_WAIT2 then).
  void finish_server() {
    peer_.socket.shutdown(tcp::socket::shutdown_send);
    ASSERT_TRUE(wait_until(
        [&] {
          tcp_info info{};
          socklen_t size = sizeof info;
          ::getsockopt(peer_.socket.native_handle(), IPPROTO_TCP, TCP_INFO, &info, &size);
          return info.tcpi_state == TCP_FIN_WAIT2;
        },
        5s));
  }

  static http::connector plain_connector() {
    http::config c;  // (a default argument of {} trips GCC 12's -Wmaybe-uninitialized)
    return http::connector(c);
  }

  io_threads io_;
  http::connector connector_ = plain_connector();
  loopback_peer peer_;
  std::optional<http::connection> client_;
};

TEST_F(HttpWatchRaw, ResetIsALossNotAnOrdinaryEnd) {
  watch_run watch(io_, connector_.watch(*client_));
  expect_reset_ends_it(watch, peer_);
}

TEST_F(HttpWatchRaw, StartedAfterTheServerClosedItEndsAtOnce) {
  finish_server();
  watch_run watch(io_, connector_.watch(*client_));
  ASSERT_TRUE(watch.ended_within(500ms));
  EXPECT_EQ(watch.code(), qorb::errc::connection_ended) << watch.what();
}

TEST_F(HttpWatchRaw, BytesThatAnswerNoRequestAreALoss) {
  watch_run watch(io_, connector_.watch(*client_));
  asio::write(peer_.socket, asio::buffer(std::string("HTTP/1.1 200 OK\r\n")));
  EXPECT_FALSE(watch.ended_within(500ms)) << "a close may follow: " << watch.what();
  ASSERT_TRUE(watch.ended_within(5s));
  EXPECT_EQ(watch.code(), std::errc::protocol_error) << watch.what();
}

TEST_F(HttpWatchRaw, BytesThenACloseAreAnOrdinaryEnd) {
  // A 408 before the server closes an idle connection.
  watch_run watch(io_, connector_.watch(*client_));
  EXPECT_FALSE(watch.ended_within(50ms));
  asio::write(peer_.socket,
              asio::buffer(std::string("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                                       "Content-Length: 0\r\n\r\n")));
  EXPECT_FALSE(watch.ended_within(100ms)) << watch.what();
  peer_.socket.close();
  ASSERT_TRUE(watch.ended_within(5s));
  EXPECT_EQ(watch.code(), qorb::errc::connection_ended) << watch.what();
}

}  // namespace
}  // namespace qorb::test
