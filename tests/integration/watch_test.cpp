// SPDX-License-Identifier: BSL-1.0
// The pool runs a connector's `watch` on every idle connection (issue 20)
// against real TCP echo servers on loopback: a server's close is seen
// while the connection is idle, so no claim meets it; a claim cancels the
// watch without waiting for it and the claimer's traffic is no loss; a
// close, a check and terminate cancel it too. The watch here is this
// file's own (readability, then a peek): the library's connectors have
// their own tests.
#include <qorb/connectors/tcp.hpp>
#include <qorb/error.hpp>
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <sys/socket.h>

#include <atomic>
#include <memory>
#include <string>

#include "support/echo_client.hpp"
#include "support/echo_server.hpp"
#include "support/io_threads.hpp"
#include "support/test_policy.hpp"
#include "support/wait.hpp"

namespace qorb::test {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;

// Counts its watches: started, cancelled (ended by operation_aborted) and
// ended by a loss.
struct watch_counts {
  std::atomic<int> started{0}, cancelled{0}, lost{0}, running{0}, other{0};
};

// tcp_connector's connect, and a watch: wait until readable, then peek
// (never consuming): EOF or an error is a loss, data is none of ours.
struct watching_connector {
  using connection_type = tcp::socket;
  asio::awaitable<tcp::socket> connect(const backend& b) { return inner.connect(b); }
  asio::awaitable<void> watch(tcp::socket& s) {
    ++counts->started;
    ++counts->running;
    struct running_guard {
      std::atomic<int>& n;
      ~running_guard() { --n; }
    } guard{counts->running};
    for (int i = 0; i < 1000; ++i) {
      try {
        co_await s.async_wait(tcp::socket::wait_read, asio::use_awaitable);
      } catch (const boost::system::system_error& e) {
        if (e.code() == asio::error::operation_aborted) {
          ++counts->cancelled;
        } else {
          ++counts->other;
        }
        throw;
      }
      char byte;
      const auto n = ::recv(s.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n == 0) {
        ++counts->lost;
        throw std::system_error(std::make_error_code(std::errc::connection_reset),
                                "peer closed the idle connection");
      }
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        ++counts->lost;
        throw std::system_error(errno, std::generic_category(), "idle connection failed");
      }
      if (n > 0) {
        ++counts->lost;
        throw std::runtime_error("unexpected data on an idle connection");
      }
    }
  }
  tcp_connector inner;
  std::shared_ptr<watch_counts> counts = std::make_shared<watch_counts>();
};
static_assert(connector_with_watch<watching_connector>);

using tcp_pool = pool<tcp::socket>;

policy small(std::size_t slots = 4, std::size_t spares = 4) {
  policy p = quick_policy();
  p.max_slots = slots;
  p.spares_wanted = spares;
  p.rebalance_interval = 200ms;
  return p;
}

std::size_t idle_of(const pool_stats& s) {
  std::size_t n = 0;
  for (const auto& [name, b] : s.backends) n += b.unclaimed;
  return n;
}

class watch_test : public ::testing::Test, protected echo_servers {
 protected:
  io_threads io{2};
};

TEST_F(watch_test, every_idle_connection_is_watched) {
  start_servers(1);
  watching_connector c;
  tcp_pool p(io.executor(), "watched", resolver(), c, small());
  ASSERT_TRUE(wait_until([&] { return idle_of(p.stats()) == 4 && c.counts->running == 4; }));
  EXPECT_EQ(c.counts->lost, 0);
}

TEST_F(watch_test, a_killed_backends_idle_connections_are_lost_before_any_claim_meets_them) {
  start_servers(2);
  watching_connector c;
  tcp_pool p(io.executor(), "kill", resolver(), c, small(4, 4));
  ASSERT_TRUE(wait_until([&] { return idle_of(p.stats()) == 4 && c.counts->running == 4; }));
  const std::string victim = p.stats().backends.begin()->first;
  const auto victim_port = p.stats().backends.begin()->second.address.port();
  echo_server& server = servers[0]->endpoint().port() == victim_port ? *servers[0] : *servers[1];
  const auto idle_on_victim = p.stats().backends.at(victim).unclaimed;
  ASSERT_GT(idle_on_victim, 0u);
  server.stop();
  // Seen while idle: each connection of the victim is lost, counted, and
  // its backend goes offline with no claim made.
  ASSERT_TRUE(wait_until([&] {
    return p.stats().connections.closed_for(close_reason::lost) >= idle_on_victim &&
           !p.stats().backends.at(victim).online;
  }));
  EXPECT_GE(c.counts->lost, int(idle_on_victim));
  const auto last = p.stats().backends.at(victim).last_error;
  ASSERT_TRUE(last);
  EXPECT_EQ(last->operation, "watch");
  EXPECT_NE(last->message.find("peer closed the idle connection"), std::string::npos)
      << last->message;
  // Every claim now lands on the live server.
  for (int i = 0; i < 20; ++i) {
    auto h = p.claim(5s);
    EXPECT_NE(h->remote_endpoint().port(), victim_port);
    EXPECT_TRUE(echo_once(*h, "ping " + std::to_string(i)));
  }
}

TEST_F(watch_test, a_claim_cancels_the_watch_and_its_traffic_is_no_loss) {
  start_servers(1);
  watching_connector c;
  tcp_pool p(io.executor(), "claims", resolver(), c, small(2, 2));
  ASSERT_TRUE(wait_until([&] { return idle_of(p.stats()) == 2 && c.counts->running == 2; }));
  for (int i = 0; i < 200; ++i) {
    auto h = p.claim(5s);
    // The echo makes the socket readable: a watch still running would
    // take it for a loss.
    ASSERT_TRUE(echo_once(*h, "hello " + std::to_string(i)));
  }
  // Each watch that began was cancelled by a claim (one cancelled before
  // it began never reaches the connector), but the two running at the
  // end. A watch may wake for the echo before its cancellation runs and
  // call it a loss: the pool has given up on it by then (counted by the
  // connector, never by the pool).
  const auto settled = [&] {
    const watch_counts& n = *c.counts;
    return n.running == 2 && n.started - n.cancelled - n.lost == 2 && n.other == 0;
  };
  EXPECT_TRUE(wait_until(settled))
      << "started " << c.counts->started << ", cancelled " << c.counts->cancelled << ", lost "
      << c.counts->lost << ", running " << c.counts->running;
  EXPECT_EQ(p.stats().connections.closed_for(close_reason::lost), 0u);
  EXPECT_FALSE(p.stats().backends.begin()->second.last_error);
  EXPECT_EQ(servers[0]->accepted(), 2u) << "no connection was replaced";
}

TEST_F(watch_test, terminate_and_a_smaller_pool_cancel_watches_without_a_loss) {
  start_servers(1);
  watching_connector c;
  policy pol = small(4, 4);
  tcp_pool p(io.executor(), "shrink", resolver(), c, pol);
  ASSERT_TRUE(wait_until([&] { return idle_of(p.stats()) == 4 && c.counts->running == 4; }));
  pol.max_slots = 1;
  pol.spares_wanted = 1;
  p.set_policy(pol);
  ASSERT_TRUE(
      wait_until([&] { return c.counts->running == 1 && servers[0]->open_connections() == 1; }));
  p.terminate();
  ASSERT_TRUE(
      wait_until([&] { return c.counts->running == 0 && servers[0]->open_connections() == 0; }));
  EXPECT_EQ(c.counts->lost, 0);
  EXPECT_EQ(c.counts->cancelled, 4);
}

TEST_F(watch_test, a_health_check_cancels_the_watch_and_it_starts_again_after) {
  start_servers(1);
  // (The connector is copied into the pool: count through a shared cell.)
  struct counted_checks : watching_connector {
    asio::awaitable<void> is_valid(tcp::socket&) {
      ++*checks;
      co_return;
    }
    std::shared_ptr<std::atomic<int>> checks = std::make_shared<std::atomic<int>>(0);
  };
  counted_checks c;
  policy pol = small(1, 1);
  pol.set_config.health_interval = 50ms;
  tcp_pool p(io.executor(), "checked", resolver(), c, pol);
  ASSERT_TRUE(wait_until([&] { return *c.checks >= 3 && c.counts->running == 1; }));
  EXPECT_GE(c.counts->started, 2) << "watched again after a check";
  EXPECT_EQ(c.counts->lost, 0);
}

// ----- the callers say what they saw ---------------------------------------

TEST_F(watch_test, a_discard_with_a_reason_is_counted_and_kept_as_the_last_error) {
  start_servers(1);
  tcp_pool p(io.executor(), "discards", resolver(), tcp_connector{}, small(2, 2));
  auto h = p.claim(5s);
  h.discard("garbled reply to PING");
  EXPECT_FALSE(h);
  const auto b = p.stats().backends.begin()->second;
  EXPECT_EQ(b.discards, 1u);
  EXPECT_EQ(b.failures_reported, 0u);
  ASSERT_TRUE(b.last_error);
  EXPECT_EQ(b.last_error->operation, "discard");
  EXPECT_EQ(b.last_error->message, "garbled reply to PING");
  EXPECT_EQ(p.stats().connections.closed_for(close_reason::discarded), 1u);
}

TEST_F(watch_test, a_reported_failure_keeps_the_connection_and_counts_against_the_backend) {
  start_servers(1);
  tcp_pool p(io.executor(), "reports", resolver(), tcp_connector{}, small(1, 1));
  auto h = p.claim(5s);
  const auto local = h->local_endpoint();
  h.report_failure("HTTP 503 from /orders");
  ASSERT_TRUE(h) << "the handle keeps its connection";
  EXPECT_TRUE(echo_once(*h, "still fine"));
  const auto b = p.stats().backends.begin()->second;
  EXPECT_EQ(b.failures_reported, 1u);
  EXPECT_EQ(b.discards, 0u);
  EXPECT_GE(b.recent_failures, 1u);
  ASSERT_TRUE(b.last_error);
  EXPECT_EQ(b.last_error->operation, "report");
  EXPECT_EQ(b.last_error->message, "HTTP 503 from /orders");
  h.reset();
  auto again = p.claim(5s);
  EXPECT_EQ(again->local_endpoint(), local) << "the same connection, not replaced";
  EXPECT_EQ(servers[0]->accepted(), 1u);
}

TEST_F(watch_test, report_failure_on_an_empty_handle_says_so) {
  handle<tcp::socket> empty;
  EXPECT_THROW(empty.report_failure("x"), std::logic_error);
}

struct reporting_connector {
  using connection_type = tcp::socket;
  asio::awaitable<tcp::socket> connect(const backend& b) { return inner.connect(b); }
  asio::awaitable<void> on_recycle(tcp::socket&) {
    if (fail->exchange(false)) {
      throw std::system_error(make_error_code(errc::request_failed), "HTTP 502 from /pay");
    }
    co_return;
  }
  tcp_connector inner;
  std::shared_ptr<std::atomic<bool>> fail = std::make_shared<std::atomic<bool>>(true);
};

// A hook may say the same: on_recycle throwing errc::request_failed (as
// the HTTP connector does after a 5xx) counts a reported failure and keeps
// the connection.
TEST_F(watch_test, a_hook_that_throws_request_failed_reports_and_keeps_the_connection) {
  start_servers(1);
  reporting_connector c;
  tcp_pool p(io.executor(), "hook-reports", resolver(), c, small(1, 1));
  p.claim(5s).reset();
  ASSERT_TRUE(wait_until([&] { return idle_of(p.stats()) == 1; }));
  const auto b = p.stats().backends.begin()->second;
  EXPECT_EQ(b.failures_reported, 1u);
  ASSERT_TRUE(b.last_error);
  EXPECT_EQ(b.last_error->operation, "report");
  EXPECT_NE(b.last_error->message.find("HTTP 502 from /pay"), std::string::npos)
      << b.last_error->message;
  EXPECT_EQ(p.stats().connections.closed_for(close_reason::recycle_failed), 0u);
  EXPECT_TRUE(echo_once(*p.claim(5s), "kept"));
  EXPECT_EQ(servers[0]->accepted(), 1u) << "the connection was kept";
}

}  // namespace
}  // namespace qorb::test
