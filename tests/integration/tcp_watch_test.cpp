// SPDX-License-Identifier: BSL-1.0
// tcp_connector::watch on real loopback connections: a peer's close or
// reset, or bytes nobody asked for, end it at once; an idle connection to a
// live peer keeps it pending, and a cancelled watch leaves the connection
// as it was (no byte read).
#include <qorb/connectors/tcp.hpp>

#include "support/io_threads.hpp"
#include "support/nginx_server.hpp"
#include "support/watch_run.hpp"

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>

namespace qorb::test {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;

// A connection made with tcp_connector to a listener of the test's own,
// and the server's end of it, which the test closes, resets or writes on.
class TcpWatch : public ::testing::Test {
 protected:
  void SetUp() override {
    client_.emplace(run(io_, connector_.connect(peer_.target())));
    peer_.accept();
  }

  io_threads io_;
  tcp_connector connector_;
  loopback_peer peer_;
  tcp::socket& server_ = peer_.socket;
  std::optional<tcp::socket> client_;
};

TEST_F(TcpWatch, PeerCloseEndsItAtOnce) {
  watch_run watch(io_, connector_.watch(*client_));
  EXPECT_FALSE(watch.ended_within(100ms)) << watch.what();
  const auto closed = std::chrono::steady_clock::now();
  server_.close();  // FIN
  ASSERT_TRUE(watch.ended_within(5s));
  EXPECT_FALSE(watch.aborted());
  EXPECT_NE(watch.what().find("peer closed the idle connection"), std::string::npos)
      << watch.what();
  const auto latency = std::chrono::steady_clock::now() - closed;
  EXPECT_LT(latency, 1s);
  std::printf("FIN -> watch ended: %lld us\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::microseconds>(latency).count()));
}

TEST_F(TcpWatch, ResetEndsItWithTheError) {
  watch_run watch(io_, connector_.watch(*client_));
  expect_reset_ends_it(watch, peer_);
}

TEST_F(TcpWatch, UnexpectedBytesEndItWithoutBeingRead) {
  watch_run watch(io_, connector_.watch(*client_));
  EXPECT_FALSE(watch.ended_within(50ms));
  asio::write(server_, asio::buffer("x", 1));
  ASSERT_TRUE(watch.ended_within(5s));
  EXPECT_EQ(watch.code(), std::errc::protocol_error) << watch.what();
  EXPECT_NE(watch.what().find("unexpected data on an idle connection"), std::string::npos);
  // The byte is still there for whoever reads the socket.
  ASSERT_TRUE(fd_shows(client_->native_handle(), POLLIN, 1s)) << "the watch read it";
  char byte = 0;
  asio::read(*client_, asio::buffer(&byte, 1));
  EXPECT_EQ(byte, 'x');
}

TEST_F(TcpWatch, IdleConnectionToALivePeerKeepsItPendingAndTheConnectionWorks) {
  {
    watch_run watch(io_, connector_.watch(*client_));
    expect_pending_then_cancel(watch, 300ms);
  }
  // The cancelled watch left the connection as it was: a round trip works
  // and sees every byte.
  asio::write(*client_, asio::buffer("ping", 4));
  std::array<char, 4> got{};
  asio::read(server_, asio::buffer(got));
  asio::write(server_, asio::buffer("pong", 4));
  asio::read(*client_, asio::buffer(got));
  EXPECT_EQ(std::string(got.data(), got.size()), "pong");
  // And a new watch on it works as the first did.
  watch_run again(io_, connector_.watch(*client_));
  EXPECT_FALSE(again.ended_within(50ms));
  server_.close();
  EXPECT_TRUE(again.ended_within(5s));
}

TEST_F(TcpWatch, StartedAfterThePeerClosedItEndsAtOnce) {
  server_.close();
  ASSERT_TRUE(fd_shows(client_->native_handle(), POLLRDHUP, 5s));
  watch_run watch(io_, connector_.watch(*client_));
  ASSERT_TRUE(watch.ended_within(1s));
  EXPECT_NE(watch.what().find("peer closed the idle connection"), std::string::npos)
      << watch.what();
}

TEST_F(TcpWatch, StartedAfterAResetItEndsAtOnce) {
  peer_.reset();
  ASSERT_TRUE(fd_shows(client_->native_handle(), POLLERR | POLLHUP, 5s));
  watch_run watch(io_, connector_.watch(*client_));
  ASSERT_TRUE(watch.ended_within(1s));
  EXPECT_EQ(watch.code(), std::errc::connection_reset) << watch.what();
}

TEST_F(TcpWatch, AnIdleWatchCostsNoCpu) {
  // It waits for an event: no timer, no polling.
  const auto cpu = [] {
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return std::chrono::seconds(t.tv_sec) + std::chrono::nanoseconds(t.tv_nsec);
  };
  watch_run watch(io_, connector_.watch(*client_));
  const auto before = cpu();
  EXPECT_FALSE(watch.ended_within(500ms));
  EXPECT_LT(cpu() - before, 50ms);
}

TEST(TcpConnectorConfig, KeepaliveAndUserTimeoutOutOfRangeNameTheField) {
  const auto message = [](tcp_connector_config c) -> std::string {
    try {
      tcp_connector connector(std::move(c));
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  tcp_connector_config c;
  c.keepalive_idle = 0s;
  EXPECT_NE(message(c).find("keepalive_idle"), std::string::npos) << message(c);
  c = {};
  c.keepalive_interval = 40000s;
  EXPECT_NE(message(c).find("keepalive_interval"), std::string::npos) << message(c);
  c = {};
  c.keepalive_count = 128;
  EXPECT_NE(message(c).find("keepalive_count"), std::string::npos) << message(c);
  c = {};
  c.user_timeout = 0ms;
  EXPECT_NE(message(c).find("user_timeout"), std::string::npos) << message(c);
  c = {};
  c.keepalive_idle = 1s;
  c.keepalive_interval = 32767s;
  c.keepalive_count = 1;
  c.user_timeout = 1ms;
  EXPECT_EQ(message(c), "");
}

TEST(TcpConnectorConfig, KeepaliveSettingsReachTheSocket) {
  io_threads io;
  asio::io_context server_io;
  tcp::acceptor acceptor(server_io, {asio::ip::make_address("127.0.0.1"), 0});
  tcp_connector_config c;
  c.keepalive_idle = 7s;
  c.keepalive_interval = 3s;
  c.keepalive_count = 4;
  c.user_timeout = 1500ms;
  tcp_connector connector(c);
  auto socket = run(io, connector.connect(backend_of(acceptor.local_endpoint())));
  const auto get = [&](int option) {
    int value = -1;
    socklen_t size = sizeof value;
    ::getsockopt(socket.native_handle(), IPPROTO_TCP, option, &value, &size);
    return value;
  };
  EXPECT_EQ(get(TCP_KEEPIDLE), 7);
  EXPECT_EQ(get(TCP_KEEPINTVL), 3);
  EXPECT_EQ(get(TCP_KEEPCNT), 4);
  EXPECT_EQ(get(TCP_USER_TIMEOUT), 1500);
  asio::socket_base::keep_alive on;
  socket.get_option(on);
  EXPECT_TRUE(on.value());
}

}  // namespace
}  // namespace qorb::test
