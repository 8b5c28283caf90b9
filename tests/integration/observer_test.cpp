// SPDX-License-Identifier: BSL-1.0
// pool::set_observer (issue 21, item 5) through the public API, on real TCP
// echo servers on loopback: the exact events of a claim served at once, one
// that waits, one that times out and one that is cancelled; connect
// failures; terminate; a throwing observer; removing it; and the order of
// each claim's events when two threads claim at once.
#include <qorb/connectors/tcp.hpp>
#include <qorb/error.hpp>
#include <qorb/observer.hpp>
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/echo_client.hpp"
#include "support/echo_server.hpp"
#include "support/io_threads.hpp"
#include "support/test_policy.hpp"
#include "support/wait.hpp"

namespace qorb::test {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
using tcp_pool = pool<tcp::socket>;

// One event as the observer heard it.
struct heard {
  std::string what;
  std::uint64_t claim = 0;
  std::uint64_t slot = 0;
  std::string backend;
  error_code error;
  std::string text;  // connect_failed: the error; discarded: the reason
  close_reason closed = close_reason::terminated;
  pool_status from = pool_status::starting, to = pool_status::starting;
  std::chrono::steady_clock::time_point at;
  std::uint_least32_t site_line = 0;  // claim events: the claim site's line
};

class recorder : public pool_observer {
 public:
  std::vector<heard> events() {
    std::lock_guard lock(m_);
    return events_;
  }
  std::size_t count() {
    std::lock_guard lock(m_);
    return events_.size();
  }
  // The kinds of the events about claims and returns, in order.
  std::vector<std::string> claim_story() {
    std::vector<std::string> out;
    for (const auto& e : events()) {
      if (e.what.starts_with("claim_") || e.what == "released" || e.what == "discarded")
        out.push_back(e.what);
    }
    return out;
  }
  bool saw(const std::string& what, std::size_t n = 1) {
    std::size_t seen = 0;
    for (const auto& e : events()) seen += e.what == what ? 1 : 0;
    return seen >= n;
  }

  void on_claim_started(const claim_started_event& e) override { add("claim_started", e); }
  void on_claim_served(const claim_served_event& e) override { add("claim_served", e); }
  void on_claim_failed(const claim_failed_event& e) override {
    add("claim_failed", e, [&](heard& h) { h.error = e.error; });
  }
  void on_released(const released_event& e) override { add("released", e); }
  void on_discarded(const discarded_event& e) override {
    add("discarded", e, [&](heard& h) { h.text = e.reason; });
  }
  void on_connect_started(const connect_started_event& e) override { add("connect_started", e); }
  void on_connect_succeeded(const connect_succeeded_event& e) override {
    add("connect_succeeded", e);
  }
  void on_connect_failed(const connect_failed_event& e) override {
    add("connect_failed", e, [&](heard& h) { h.text = e.error; });
  }
  void on_connection_closed(const connection_closed_event& e) override {
    add("connection_closed", e, [&](heard& h) { h.closed = e.reason; });
  }
  void on_backend_online(const backend_event& e) override { add("backend_online", e); }
  void on_backend_offline(const backend_event& e) override { add("backend_offline", e); }
  void on_status_changed(const status_changed_event& e) override {
    add("status_changed", e, [&](heard& h) {
      h.from = e.from;
      h.to = e.to;
    });
  }

  std::atomic<int> wrong_pool{0};
  std::string pool_name = "obs";

 private:
  // Records what every event of its kind says, and what `more` adds.
  template <class Event, class More = void (*)(heard&)>
  void add(
      const char* what, const Event& e, More more = [](heard&) {}) {
    if (e.pool != pool_name) ++wrong_pool;
    heard h;
    h.what = what;
    h.at = e.at;
    if constexpr (requires { e.claim; }) h.claim = e.claim;
    if constexpr (requires { e.site; }) h.site_line = e.site.line();
    if constexpr (requires { e.slot; }) h.slot = e.slot;
    if constexpr (requires { e.address; }) h.backend = std::string(e.address);
    more(h);
    std::lock_guard lock(m_);
    events_.push_back(std::move(h));
  }
  std::mutex m_;
  std::vector<heard> events_;
};

policy sized(std::size_t max_slots, std::size_t spares) {
  policy p = test::quick_policy();
  p.max_slots = max_slots;
  p.spares_wanted = spares;
  p.set_config.health_check_timeout = 1s;
  return p;
}

std::size_t idle_of(const tcp_pool& p) {
  std::size_t n = 0;
  for (const auto& [name, b] : p.stats().backends) n += b.unclaimed;
  return n;
}

class observer_test : public ::testing::Test, protected echo_servers {
 protected:
  // A pool of one backend and `max_slots` connections, all idle, with a
  // recorder set once they are (so only what the test does is heard).
  std::unique_ptr<tcp_pool> ready_pool(std::size_t max_slots) {
    start_servers(1);
    auto p = std::make_unique<tcp_pool>(io.executor(), "obs", resolver(), tcp_connector{},
                                        sized(max_slots, max_slots));
    EXPECT_TRUE(wait_until([&] { return idle_of(*p) == max_slots; }));
    p->set_observer(rec);
    return p;
  }
  std::shared_ptr<recorder> rec = std::make_shared<recorder>();
  io_threads io{2};
};

TEST_F(observer_test, a_claim_served_at_once_starts_is_served_and_is_released) {
  auto p = ready_pool(1);
  auto h = p->claim();
  const unsigned line = __LINE__ - 1;
  ASSERT_TRUE(h);
  h.reset();
  ASSERT_TRUE(wait_until([&] { return rec->saw("released"); }));
  const auto ev = rec->events();
  ASSERT_EQ(rec->claim_story(),
            (std::vector<std::string>{"claim_started", "claim_served", "released"}));
  std::map<std::string, heard> by;
  for (const auto& e : ev) by.emplace(e.what, e);
  EXPECT_EQ(by["claim_started"].claim, by["claim_served"].claim);
  EXPECT_EQ(by["claim_started"].site_line, line) << "the claim's site";
  EXPECT_EQ(by["claim_served"].site_line, line);
  EXPECT_EQ(by["claim_served"].slot, by["released"].slot);
  EXPECT_EQ(by["claim_served"].backend, by["released"].backend);
  EXPECT_FALSE(by["claim_served"].backend.empty());
  EXPECT_LE(by["claim_started"].at, by["claim_served"].at);
  EXPECT_LE(by["claim_served"].at, by["released"].at);
  EXPECT_EQ(rec->wrong_pool.load(), 0);
}

TEST_F(observer_test, a_claim_that_waits_is_served_after_the_return_it_waited_for) {
  auto p = ready_pool(1);
  auto first = p->claim();
  ASSERT_TRUE(first);
  auto waiting = p->async_claim(10s, asio::use_future);
  ASSERT_TRUE(wait_until([&] { return p->stats().claims_waiting == 1; }));
  first.reset();
  auto second = waiting.get();
  ASSERT_TRUE(second);
  second.reset();
  ASSERT_TRUE(wait_until([&] { return rec->saw("released", 2); }));
  EXPECT_EQ(rec->claim_story(),
            (std::vector<std::string>{"claim_started", "claim_served", "claim_started", "released",
                                      "claim_served", "released"}));
  const auto ev = rec->events();
  std::vector<heard> story;
  for (const auto& e : ev) {
    if (e.what.starts_with("claim_") || e.what == "released") story.push_back(e);
  }
  ASSERT_EQ(story.size(), 6u);
  EXPECT_EQ(story[2].claim, story[4].claim) << "the waiting claim is the one served";
  EXPECT_NE(story[0].claim, story[2].claim);
  EXPECT_EQ(story[3].slot, story[4].slot) << "served with the slot just returned";
}

TEST_F(observer_test, a_claim_that_times_out_fails_with_its_error) {
  auto p = ready_pool(1);
  auto held = p->claim();
  error_code ec;
  auto h = p->claim(150ms, ec);
  EXPECT_FALSE(h);
  EXPECT_EQ(ec, errc::all_claims_used);
  ASSERT_TRUE(wait_until([&] { return rec->saw("claim_failed"); }));
  EXPECT_EQ(rec->claim_story(), (std::vector<std::string>{"claim_started", "claim_served",
                                                          "claim_started", "claim_failed"}));
  const auto ev = rec->events();
  const heard& failed = ev.back().what == "claim_failed" ? ev.back() : ev[3];
  EXPECT_EQ(failed.error, errc::all_claims_used);
  heard started;
  for (const auto& e : ev) {
    if (e.what == "claim_started" && e.claim == failed.claim) started = e;
  }
  ASSERT_EQ(started.claim, failed.claim);
  EXPECT_GE(failed.at - started.at, 150ms) << "failed at its deadline";
}

TEST_F(observer_test, a_cancelled_claim_fails_with_operation_aborted) {
  auto p = ready_pool(1);
  auto held = p->claim();
  // The claim and its cancellation on one strand (a cancellation signal
  // is not thread-safe).
  auto strand = asio::make_strand(io.executor());
  asio::cancellation_signal signal;
  std::promise<error_code> done;
  asio::post(strand, [&] {
    p->async_claim(
        10s, asio::bind_cancellation_slot(
                 signal.slot(), [&](error_code ec, handle<tcp::socket>) { done.set_value(ec); }));
  });
  ASSERT_TRUE(wait_until([&] { return p->stats().claims_waiting == 1; }));
  asio::post(strand, [&] { signal.emit(asio::cancellation_type::terminal); });
  auto result = done.get_future();
  ASSERT_EQ(result.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(result.get(), asio::error::operation_aborted);
  ASSERT_TRUE(wait_until([&] { return rec->saw("claim_failed"); }));
  EXPECT_EQ(rec->claim_story(), (std::vector<std::string>{"claim_started", "claim_served",
                                                          "claim_started", "claim_failed"}));
  EXPECT_EQ(rec->events().back().error, asio::error::operation_aborted);
}

// A pool whose io_context runs only once the observer is set: every
// connect's result is heard (the first connects start in the pool's
// constructor, before set_observer).
class observed_from_the_start : public ::testing::Test, protected echo_servers {
 protected:
  void run_io() {
    for (int i = 0; i < 2; ++i) threads.emplace_back([this] { io.run(); });
  }
  void TearDown() override {
    work.reset();
    for (auto& t : threads) t.join();
  }
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work{io.get_executor()};
  std::vector<std::thread> threads;
  std::shared_ptr<recorder> rec = std::make_shared<recorder>();
};

TEST_F(observed_from_the_start, a_refused_port_gives_connect_failed_with_the_error) {
  const unsigned short port = free_port();
  auto res = std::make_shared<fixed_resolver>(
      std::vector<tcp::endpoint>{{asio::ip::make_address("127.0.0.1"), port}});
  tcp_pool p(io.get_executor(), "obs", res, tcp_connector{}, sized(1, 1));
  p.set_observer(rec);
  run_io();
  ASSERT_TRUE(wait_until([&] { return rec->saw("connect_failed", 3); }));
  p.terminate();
  // The first connect started in the pool's constructor, before the
  // observer was set; the retries are heard whole: started, then failed.
  const auto ev = rec->events();
  ASSERT_GE(ev.size(), 3u);
  EXPECT_EQ(ev[0].what, "connect_failed");
  EXPECT_EQ(ev[1].what, "connect_started");
  EXPECT_EQ(ev[2].what, "connect_failed");
  EXPECT_EQ(ev[1].slot, ev[2].slot);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  for (std::size_t i : {0, 2}) {
    EXPECT_EQ(ev[i].backend, address);
    EXPECT_NE(ev[i].text.find("refused"), std::string::npos) << ev[i].text;
  }
  for (const auto& e : ev) {
    EXPECT_NE(e.what, "connect_succeeded");
    EXPECT_NE(e.what, "backend_online");
  }
}

TEST_F(observed_from_the_start, terminate_closes_each_connection_and_changes_the_status) {
  start_servers(1);
  tcp_pool p(io.get_executor(), "obs", resolver(), tcp_connector{}, sized(2, 2));
  p.set_observer(rec);
  run_io();
  ASSERT_TRUE(wait_until([&] { return rec->saw("connect_succeeded", 2); }));
  ASSERT_TRUE(wait_until([&] { return idle_of(p) == 2; }));
  p.terminate();
  ASSERT_TRUE(wait_until([&] { return rec->saw("connection_closed", 2); }));
  std::vector<std::uint64_t> connected, closed;
  std::vector<std::pair<pool_status, pool_status>> changes;
  for (const auto& e : rec->events()) {
    if (e.what == "connect_succeeded") connected.push_back(e.slot);
    if (e.what == "connection_closed") {
      EXPECT_EQ(e.closed, close_reason::terminated);
      closed.push_back(e.slot);
    }
    if (e.what == "status_changed") changes.emplace_back(e.from, e.to);
  }
  std::sort(connected.begin(), connected.end());
  std::sort(closed.begin(), closed.end());
  EXPECT_EQ(connected, closed) << "each connection opened is closed, terminated";
  ASSERT_GE(changes.size(), 2u);
  EXPECT_EQ(changes.front(), std::make_pair(pool_status::starting, pool_status::running));
  EXPECT_EQ(changes.back().second, pool_status::stopped);
  const auto ev = rec->events();
  EXPECT_TRUE(rec->saw("backend_online"));
  for (std::size_t i = 1; i < ev.size(); ++i) EXPECT_LE(ev[i - 1].at, ev[i].at) << i;
}

// Throws from every hook it has.
struct throwing_observer : pool_observer {
  std::atomic<int> calls{0};
  void on_claim_started(const claim_started_event&) override { boom(); }
  void on_claim_served(const claim_served_event&) override { boom(); }
  void on_released(const released_event&) override { boom(); }
  void boom() {
    ++calls;
    throw std::runtime_error("observer failure (test)");
  }
};

TEST_F(observer_test, an_observer_that_throws_does_not_break_the_pool) {
  auto p = ready_pool(1);
  auto thrower = std::make_shared<throwing_observer>();
  p->set_observer(thrower);
  for (int i = 0; i < 5; ++i) {
    auto h = p->claim(2s);
    ASSERT_TRUE(h) << i;
    EXPECT_TRUE(echo_once(*h, "still works"));
  }
  ASSERT_TRUE(wait_until([&] { return thrower->calls.load() >= 15; }));
  EXPECT_EQ(p->stats().claim_failures.all_claims_used, 0u);
}

TEST_F(observer_test, removing_the_observer_stops_its_events) {
  auto p = ready_pool(1);
  p->claim().reset();
  ASSERT_TRUE(wait_until([&] { return rec->saw("released"); }));
  ASSERT_TRUE(wait_until([&] { return idle_of(*p) == 1; }));
  p->set_observer(nullptr);
  const std::size_t before = rec->count();
  for (int i = 0; i < 5; ++i) {
    auto h = p->claim(2s);
    ASSERT_TRUE(h);
  }
  p->terminate();
  EXPECT_EQ(rec->count(), before) << "nothing after set_observer(nullptr)";
  EXPECT_EQ(rec.use_count(), 1) << "the pool let go of it";
}

TEST_F(observer_test, each_claims_events_are_in_order_when_two_threads_claim_at_once) {
  auto p = ready_pool(2);
  constexpr int per_thread = 200;
  std::atomic<int> served{0};
  auto work = [&] {
    for (int i = 0; i < per_thread; ++i) {
      auto h = p->claim(5s);
      if (h) ++served;
    }
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  ASSERT_EQ(served.load(), 2 * per_thread);
  ASSERT_TRUE(wait_until([&] { return rec->saw("released", 2 * per_thread); }));
  // Per claim: started, then served. Per slot: served, released, served,
  // released, ... (a slot's claim ends before the next one on it begins).
  std::map<std::uint64_t, std::string> claim_state;
  std::map<std::uint64_t, std::string> slot_state;
  std::chrono::steady_clock::time_point last{};
  for (const auto& e : rec->events()) {
    EXPECT_LE(last, e.at) << "event times never go backwards";
    last = e.at;
    if (e.what == "claim_started") {
      EXPECT_EQ(claim_state[e.claim], "") << e.claim;
      claim_state[e.claim] = "started";
    } else if (e.what == "claim_served") {
      EXPECT_EQ(claim_state[e.claim], "started") << e.claim;
      claim_state[e.claim] = "served";
      EXPECT_NE(slot_state[e.slot], "served") << "slot " << e.slot << " served twice";
      slot_state[e.slot] = "served";
    } else if (e.what == "released") {
      EXPECT_EQ(slot_state[e.slot], "served") << "slot " << e.slot << " released unserved";
      slot_state[e.slot] = "released";
    }
  }
  EXPECT_EQ(claim_state.size(), std::size_t(2 * per_thread));
}

}  // namespace
}  // namespace qorb::test
