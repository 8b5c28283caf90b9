// SPDX-License-Identifier: BSL-1.0
// A server's normal end of a connection through a real pool and the HTTP
// connector, on loopback: an HTTP/1.1 server that closes idle keep-alive
// connections after 300 ms (as Apache after its KeepAliveTimeout, nginx
// after keepalive_timeout), one that answers `Connection: close`, and one
// that breaks off in the middle of a response. The first two are normal
// ends (replaced without a failure, the backend never offline); the last
// stays a failure.
#include <qorb/connectors/http.hpp>
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "support/io_threads.hpp"
#include "support/nginx_server.hpp"

namespace qorb::test {
namespace {

namespace http = connectors::http;
using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;
using http_pool = pool<http::connection>;

// An HTTP/1.1 server on 127.0.0.1, on its own thread, answering every
// request `200 ok` as `how` says; a connection left idle for `idle` (from
// its accept or its last response) is closed, as servers' keep-alive
// timeouts do.
class closing_server {
 public:
  enum class mode { keep_alive, connection_close, mid_response, error_close, error_keep_alive };

  closing_server(mode how, std::chrono::milliseconds idle) : how_(how), idle_(idle) {
    acceptor_.open(tcp::v4());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~closing_server() {
    work_.reset();
    io_.stop();
    thread_.join();
  }
  closing_server(const closing_server&) = delete;
  closing_server& operator=(const closing_server&) = delete;

  tcp::endpoint endpoint() const { return acceptor_.local_endpoint(); }
  int accepted() const { return accepted_.load(); }
  int idle_closes() const { return idle_closes_.load(); }
  int requests() const { return requests_.load(); }

 private:
  struct session : std::enable_shared_from_this<session> {
    session(closing_server& server, tcp::socket s)
        : owner(server), socket(std::move(s)), idle(socket.get_executor()) {}

    void start() {
      arm_idle();
      read();
    }
    void arm_idle() {
      idle.expires_after(owner.idle_);
      idle.async_wait([self = shared_from_this()](boost::system::error_code ec) {
        if (ec || !self->socket.is_open()) return;
        ++self->owner.idle_closes_;
        boost::system::error_code ignored;
        self->socket.close(ignored);
      });
    }
    void read() {
      asio::async_read_until(
          socket, asio::dynamic_buffer(in, 65536), "\r\n\r\n",
          [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
            if (ec) return;
            self->in.erase(0, n);
            self->idle.cancel();
            ++self->owner.requests_;
            self->respond();
          });
    }
    void respond() {
      switch (owner.how_) {
        case mode::keep_alive:
          out = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
          break;
        case mode::connection_close:
          out = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
          break;
        case mode::mid_response:
          out = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b";
          break;
        case mode::error_keep_alive:
          out = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\nno";
          break;
        case mode::error_close:
          out =
              "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\nConnection: "
              "close\r\n\r\nno";
          break;
      }
      asio::async_write(socket, asio::buffer(out),
                        [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                          if (ec) return;
                          if (self->owner.how_ != mode::keep_alive &&
                              self->owner.how_ != mode::error_keep_alive) {
                            boost::system::error_code ignored;
                            self->socket.shutdown(tcp::socket::shutdown_both, ignored);
                            self->socket.close(ignored);
                            return;
                          }
                          self->arm_idle();
                          self->read();
                        });
    }

    closing_server& owner;
    tcp::socket socket;
    asio::steady_timer idle;
    std::string in, out;
  };

  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec) return;
      ++accepted_;
      std::make_shared<session>(*this, std::move(s))->start();
      accept();
    });
  }

  const mode how_;
  const std::chrono::milliseconds idle_;
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  tcp::acceptor acceptor_{io_};
  std::atomic<int> accepted_{0}, idle_closes_{0}, requests_{0};
  std::thread thread_;
};

struct captured_log {
  captured_log() {
    sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(10000);
    logger = std::make_shared<spdlog::logger>("keepalive", sink);
    logger->set_level(spdlog::level::debug);
    logger->set_pattern("%l %v");
  }
  std::size_t lines_with(std::string_view level, std::string_view needle) const {
    std::size_t n = 0;
    for (const auto& line : sink->last_formatted()) {
      n += line.starts_with(level) && line.find(needle) != std::string::npos;
    }
    return n;
  }
  std::string warnings() const {
    std::string out;
    for (const auto& line : sink->last_formatted()) {
      if (line.starts_with("warning")) out.append(line).append("\n");
    }
    return out;
  }
  /// Warnings other than a backend coming online.
  std::size_t problems() const {
    std::size_t n = 0;
    for (const auto& line : sink->last_formatted()) {
      n += line.starts_with("warning") && line.find(": online") == std::string::npos;
    }
    return n;
  }
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink;
  std::shared_ptr<spdlog::logger> logger;
};

// One slot, health checks every 50 ms; a connection is "young" (its normal
// end a failure) below min(1 s, max_connection_backoff) = 200 ms, and the
// server's idle timeout is 300 ms.
policy one_slot_policy() {
  policy p;
  p.max_slots = 1;
  p.spares_wanted = 1;
  p.claim_timeout = 2s;
  p.set_config.health_interval = 50ms;
  p.set_config.health_check_timeout = 1s;
  p.set_config.spread = 0ms;
  p.set_config.min_connection_backoff = 10ms;
  p.set_config.max_connection_backoff = 200ms;
  return p;
}

// `ping`: is_valid's request; empty, it only checks the server has not
// closed the connection (a request every 50 ms would keep it from idling).
std::unique_ptr<http_pool> make_pool(io_threads& io, const closing_server& server,
                                     const captured_log& log, const std::string& ping = "",
                                     bool server_errors_fail_backend = false) {
  http::config settings;
  settings.request_timeout = 2s;
  settings.ping_target = ping;
  settings.server_errors_fail_backend = server_errors_fail_backend;
  http::connector connector(settings);
  return std::make_unique<http_pool>(
      io.executor(), "keepalive", std::make_shared<fixed_resolver>(std::vector{server.endpoint()}),
      connector, one_slot_policy(), log.logger);
}

backend_stats the_backend(const http_pool& p) { return p.stats().backends.begin()->second; }

// Claims spaced beyond the server's idle timeout, each making one request.
// Returns how many requests were answered 200 "ok".
int spaced_requests(io_threads& io, http_pool& p, int n, std::chrono::milliseconds gap,
                    int& claim_errors) {
  int answered = 0;
  for (int i = 0; i < n; ++i) {
    std::this_thread::sleep_for(gap);  // the idle time itself is the input
    error_code ec;
    auto h = p.claim(2s, ec);
    if (!h) {
      ++claim_errors;
      ADD_FAILURE() << "claim " << i << " failed: " << ec.message();
      continue;
    }
    try {
      auto res = run(io, h->request({http::verb::get, "/n" + std::to_string(i), 11}));
      answered += res.result_int() == 200 && res.body() == "ok";
    } catch (const std::exception& e) {
      ADD_FAILURE() << "request " << i << " failed: " << e.what();
    }
  }
  return answered;
}

// Hardening: each idle close of a keep-alive connection counted two check
// failures, backed the backend off and marked it offline (with a 5 s idle
// timeout and a request every 6 s, 3 of 9 claims failed with "no backends
// online" while no request failed).
TEST(http_keepalive, idle_closes_are_replaced_without_failures_and_the_backend_stays_online) {
  closing_server server(closing_server::mode::keep_alive, 300ms);
  io_threads io(2);
  captured_log log;
  auto p = make_pool(io, server, log);
  int claim_errors = 0;
  const int answered = spaced_requests(io, *p, 6, 700ms, claim_errors);
  EXPECT_EQ(answered, 6);
  EXPECT_EQ(claim_errors, 0);
  EXPECT_GE(server.idle_closes(), 5) << "the server did close idle connections";
  EXPECT_GE(server.accepted(), 6) << "and the pool replaced them";
  const auto b = the_backend(*p);
  EXPECT_EQ(b.check_failures, 0u) << "an idle close is no failure";
  EXPECT_EQ(b.connect_failures, 0u);
  EXPECT_EQ(b.recent_failures, 0u);
  EXPECT_TRUE(b.online);
  EXPECT_EQ(log.lines_with("warning", "offline"), 0u) << "never offline:\n" << log.warnings();
  EXPECT_EQ(log.problems(), 0u) << "nothing to warn about:\n" << log.warnings();
  EXPECT_GE(log.lines_with("debug", "the connection ended normally"), 5u)
      << "each end is logged at debug level";
  p->terminate();
}

// A server that answers every request with `Connection: close`: the log
// said `on_recycle failed` for each; the connection ended normally.
TEST(http_keepalive, connection_close_after_a_whole_response_is_a_normal_end) {
  closing_server server(closing_server::mode::connection_close, 10s);
  io_threads io(2);
  captured_log log;
  auto p = make_pool(io, server, log);
  int claim_errors = 0;
  // Each claim waits for the connection that replaces the last one and ends
  // it at once: on_recycle's ends are never young (bounded by the claims).
  const int answered = spaced_requests(io, *p, 5, 300ms, claim_errors);
  EXPECT_EQ(answered, 5);
  EXPECT_EQ(claim_errors, 0);
  const auto b = the_backend(*p);
  EXPECT_EQ(b.check_failures, 0u);
  EXPECT_EQ(log.lines_with("warning", "on_recycle failed"), 0u) << log.warnings();
  EXPECT_EQ(log.lines_with("warning", "offline"), 0u) << log.warnings();
  EXPECT_GE(log.lines_with("debug", "the server asked to close it"), 4u);
  EXPECT_EQ(log.problems(), 0u) << log.warnings();
  p->terminate();
}

// One claim that gets `/error` (a 503) and gives the connection back; then
// waits (bounded) until `counted()` says the pool's recycle saw the 503.
template <class Counted>
void claim_503_and_return(io_threads& io, http_pool& p, Counted counted) {
  error_code ec;
  auto h = p.claim(2s, ec);
  ASSERT_TRUE(h) << ec.message();
  const auto res = run(io, h->request({http::verb::get, "/error", 11}));
  EXPECT_EQ(res.result_int(), 503);
  h.reset();  // the pool's recycle sees the 503
  const auto deadline = clock::now() + 5s;
  while (!counted() && clock::now() < deadline) std::this_thread::sleep_for(5ms);
}

// With server_errors_fail_backend, a 5xx counts against the backend also
// when its response says `Connection: close` (error pages often do): the
// normal end of the connection must not hide the server's error.
TEST(http_keepalive, a_5xx_that_closes_the_connection_still_fails_the_backend) {
  closing_server server(closing_server::mode::error_close, 10s);
  io_threads io(2);
  captured_log log;
  auto p = make_pool(io, server, log, "", true);
  claim_503_and_return(io, *p, [&] { return the_backend(*p).check_failures > 0; });
  EXPECT_EQ(the_backend(*p).check_failures, 1u);
  EXPECT_EQ(the_backend(*p).failures_reported, 0u) << "counted once, as the failed recycle";
  EXPECT_EQ(log.lines_with("debug", "the connection ended normally"), 0u);
  p->terminate();
}

// With server_errors_fail_backend, a 5xx on a keep-alive connection is a
// failed request on a good connection: reported once (the backend's
// failures_reported, last error "report"), and the same connection serves
// the next claim (the server accepted one connection).
TEST(http_keepalive, a_5xx_on_a_kept_alive_connection_is_reported_and_the_connection_kept) {
  closing_server server(closing_server::mode::error_keep_alive, 10s);
  io_threads io(2);
  captured_log log;
  auto p = make_pool(io, server, log, "", true);
  for (std::uint64_t i = 1; i <= 2; ++i) {
    claim_503_and_return(io, *p, [&] { return the_backend(*p).failures_reported >= i; });
  }
  const auto b = the_backend(*p);
  EXPECT_EQ(b.failures_reported, 2u) << "each 5xx counted once";
  EXPECT_EQ(b.check_failures, 2u) << "counted once each (reports count there too)";
  EXPECT_EQ(b.connections.closed_total(), 0u) << "no connection closed";
  EXPECT_EQ(server.accepted(), 1) << "the same connection served both claims";
  EXPECT_EQ(server.requests(), 2);
  ASSERT_TRUE(b.last_error);
  EXPECT_EQ(b.last_error->operation, "report");
  EXPECT_NE(b.last_error->message.find("503"), std::string::npos) << b.last_error->message;
  for (int i = 0; i < 2; ++i) {
    // Claims that make no request do not report the old 5xx again (one
    // slot: the second claim gets the connection after the first's return).
    error_code ec;
    auto h = p->claim(2s, ec);
    ASSERT_TRUE(h) << ec.message();
  }
  EXPECT_EQ(the_backend(*p).failures_reported, 2u);
  EXPECT_EQ(server.accepted(), 1);
  p->terminate();
}

// A close in the middle of a response stays a failure of the backend.
TEST(http_keepalive, a_close_in_the_middle_of_a_response_is_still_a_failure) {
  closing_server server(closing_server::mode::mid_response, 10s);
  io_threads io(2);
  captured_log log;
  auto p = make_pool(io, server, log);
  error_code ec;
  auto h = p->claim(2s, ec);
  ASSERT_TRUE(h) << ec.message();
  std::this_thread::sleep_for(250ms);  // older than the young limit: age is not why
  EXPECT_THROW(run(io, h->request({http::verb::get, "/cut", 11})), std::system_error);
  h.reset();  // the pool's recycle finds it broken
  const auto deadline = clock::now() + 5s;
  while (the_backend(*p).check_failures == 0 && clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(the_backend(*p).check_failures, 1u);
  EXPECT_EQ(log.lines_with("debug", "the connection ended normally"), 0u);
  p->terminate();
}

}  // namespace
}  // namespace qorb::test
