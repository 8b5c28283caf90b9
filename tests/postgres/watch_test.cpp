// SPDX-License-Identifier: BSL-1.0
// The PostgreSQL connector's watch of an idle session, called directly (no
// pool) against real PostgreSQL servers started by the test on loopback.
#include <qorb/connectors/postgres.hpp>
#include <qorb/error.hpp>

#include "support/postgres_server.hpp"
#include "support/wait.hpp"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <future>
#include <iostream>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace pg = qorb::connectors::postgres;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using strand_type = asio::strand<asio::io_context::executor_type>;
using qorb::test::postgres_server;
using qorb::test::wait_until;

namespace {

// The descriptors of this process open on libpq's socket (itself, and any
// duplicate of it): exact, whatever else the process (or a sanitizer's
// runtime) opens or closes meanwhile.
std::size_t descriptors_on(const pg::connection& conn) {
  const std::string path = "/proc/self/fd/" + std::to_string(PQsocket(conn.native_handle()));
  const auto target = std::filesystem::read_symlink(path);
  std::size_t n = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    std::error_code gone;  // a descriptor closed while we look
    if (std::filesystem::read_symlink(entry.path(), gone) == target) ++n;
  }
  return n;
}

// Whether libpq's socket has bytes the kernel holds (never reads them).
bool socket_readable(const pg::connection& conn) {
  pollfd p{PQsocket(conn.native_handle()), POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

// An executor that counts what is handed to it and forwards it to `Inner`
// (a strand): how a test knows a completion is queued on the strand.
template <class Inner>
class counting_executor {
 public:
  counting_executor(Inner inner, std::atomic<int>* count) noexcept
      : inner_(std::move(inner)), count_(count) {}

  template <class F>
  void execute(F&& f) const {
    count_->fetch_add(1);
    inner_.execute(std::forward<F>(f));
  }
  template <class Property>
  requires asio::can_query<const Inner&, Property>::value decltype(auto) query(
      const Property& p) const {
    return asio::query(inner_, p);
  }
  template <class Property>
  requires asio::can_require<const Inner&, Property>::value auto require(const Property& p) const {
    return counting_executor<std::decay_t<decltype(asio::require(inner_, p))>>(
        asio::require(inner_, p), count_);
  }
  template <class Property>
  requires asio::can_prefer<const Inner&, Property>::value auto prefer(const Property& p) const {
    return counting_executor<std::decay_t<decltype(asio::prefer(inner_, p))>>(
        asio::prefer(inner_, p), count_);
  }
  friend bool operator==(const counting_executor& a, const counting_executor& b) noexcept {
    return a.inner_ == b.inner_ && a.count_ == b.count_;
  }
  friend bool operator!=(const counting_executor& a, const counting_executor& b) noexcept {
    return !(a == b);
  }

 private:
  Inner inner_;
  std::atomic<int>* count_;
};

// How a watch ended, and when.
struct failure {
  std::string what;
  std::error_code code;
  std::string sqlstate;  // when it is a pg::error
  bool cancelled = false;
};

// Read on the thread the watch ended on: the exception never crosses to
// the test's thread (its reference counts live in the uninstrumented
// libstdc++, where TSan cannot see them).
failure failure_of(const std::exception_ptr& error) {
  if (!error) return {"returned normally", {}, {}, false};
  try {
    std::rethrow_exception(error);
  } catch (const pg::error& x) {
    return {x.what(), x.code(), x.sqlstate(), false};
  } catch (const std::system_error& x) {
    return {x.what(), x.code(), {}, false};
  } catch (const boost::system::system_error& x) {
    return {x.what(), x.code(), {}, x.code() == asio::error::operation_aborted};
  }
}

struct ended {
  failure how;
  clock_type::time_point at;
};

failure failure_of(const ended& e) { return e.how; }

bool is_cancelled(const ended& e) { return failure_of(e).cancelled; }

double ms(clock_type::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

class PostgresWatch : public ::testing::Test {
 protected:
  PostgresWatch() {
    // Two threads: one may hold the strand while the other runs the reactor.
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~PostgresWatch() override {
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }

  // Runs `op` on the strand (as the pool runs hooks) and waits, bounded.
  template <class T>
  T run(asio::awaitable<T> op, std::chrono::milliseconds limit = 20s) {
    auto future = asio::co_spawn(strand_, std::move(op), asio::use_future);
    if (future.wait_for(limit) != std::future_status::ready) {
      throw std::runtime_error("operation did not complete in time");
    }
    return future.get();
  }

  // Runs `f` on the strand and waits for it: what ran there before has run.
  template <class F>
  auto on_strand(F f) {
    return run([&]() -> asio::awaitable<decltype(f())> { co_return f(); }());
  }

  // One server for the tests that do not stop theirs.
  static postgres_server& shared_server() {
    static postgres_server server;
    return server;
  }

  pg::connection connect(const postgres_server& server) {
    return run(connector_.connect({qorb::to_string(server.endpoint()), server.endpoint()}));
  }

  // Starts `c.watch(conn)` on the strand; once this returns, the watch has
  // taken its first step and waits for the socket.
  std::future<ended> start_watch(pg::connection& conn) {
    auto done = std::make_shared<std::promise<ended>>();
    auto future = done->get_future();
    asio::co_spawn(strand_, connector_.watch(conn),
                   asio::bind_cancellation_slot(cancel_.slot(), [done](std::exception_ptr e) {
                     done->set_value({failure_of(e), clock_type::now()});
                   }));
    on_strand([] { return 0; });
    return future;
  }

  // Cancels the watch from the strand, as the pool does on a claim.
  void cancel_watch() {
    asio::post(inner_, [this] { cancel_.emit(asio::cancellation_type::terminal); });
  }

  std::string backend_pid(const pg::connection& conn) {
    return std::to_string(PQbackendPID(conn.native_handle()));
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::vector<std::thread> threads_;
  strand_type inner_ = asio::make_strand(io_);
  std::atomic<int> executed_{0};
  counting_executor<strand_type> strand_{inner_, &executed_};
  asio::cancellation_signal cancel_;
  pg::connector connector_{
      pg::config{.password = postgres_server::password, .sslmode = "disable", .logger = nullptr}};
};

TEST_F(PostgresWatch, TerminatedBackendEndsTheWatchWithTheServersReason) {
  std::vector<double> after_request;
  std::vector<double> after_return;
  for (int round = 0; round < 10; ++round) {
    pg::connection conn = connect(shared_server());
    auto watch = start_watch(conn);
    const auto requested = clock_type::now();
    shared_server().query("SELECT pg_terminate_backend(" + backend_pid(conn) + ")");
    const auto returned = clock_type::now();
    ASSERT_EQ(watch.wait_for(2s), std::future_status::ready) << "round " << round;
    const ended e = watch.get();
    after_request.push_back(ms(e.at - requested));
    after_return.push_back(ms(std::max(e.at, returned) - returned));
    const failure f = failure_of(e);
    EXPECT_EQ(f.code, pg::errc::connection_broken) << f.what;
    EXPECT_EQ(f.sqlstate, "57P01") << f.what;
    EXPECT_NE(f.what.find("terminating connection due to administrator command"), std::string::npos)
        << f.what;
    EXPECT_TRUE(conn.is_broken());
  }
  std::sort(after_request.begin(), after_request.end());
  std::sort(after_return.begin(), after_return.end());
  std::cout << "pg_terminate_backend -> watch ended, ms after the request (10 runs): min "
            << after_request.front() << " median " << after_request[5] << " max "
            << after_request.back() << "; after pg_terminate_backend returned: median "
            << after_return[5] << " max " << after_return.back() << "\n";
}

TEST_F(PostgresWatch, FastServerStopEndsTheWatch) {
  postgres_server server;
  pg::connection conn = connect(server);
  auto watch = start_watch(conn);
  const auto stopping = clock_type::now();
  server.stop();  // SIGINT: fast shutdown, by PID
  ASSERT_EQ(watch.wait_for(2s), std::future_status::ready);
  const ended e = watch.get();
  std::cout << "fast stop -> watch ended after " << ms(e.at - stopping) << " ms\n";
  const failure f = failure_of(e);
  EXPECT_EQ(f.code, pg::errc::connection_broken) << f.what;
  EXPECT_NE(f.what.find("terminating connection due to administrator command"), std::string::npos)
      << f.what;
}

TEST_F(PostgresWatch, ImmediateServerStopEndsTheWatch) {
  postgres_server server;
  // The postmaster's PID: the first line of postmaster.pid.
  const pid_t postmaster =
      std::stoi(server.query("SELECT split_part(pg_read_file('postmaster.pid'), E'\\n', 1)"));
  pg::connection conn = connect(server);
  auto watch = start_watch(conn);
  const auto stopping = clock_type::now();
  ASSERT_EQ(::kill(postmaster, SIGQUIT), 0);  // immediate shutdown
  ASSERT_EQ(watch.wait_for(2s), std::future_status::ready);
  const ended e = watch.get();
  std::cout << "immediate stop -> watch ended after " << ms(e.at - stopping) << " ms\n";
  const failure f = failure_of(e);
  EXPECT_EQ(f.code, pg::errc::connection_broken) << f.what;
  // The server warns, then closes: the warning is the reason. The warning
  // is its best effort (about 1 run in 3 here sees only the close).
  EXPECT_TRUE(f.what.find("terminating connection due to immediate shutdown command") !=
                  std::string::npos ||
              f.what.find("server closed the connection unexpectedly") != std::string::npos)
      << f.what;
  server.stop();  // reaps it
}

TEST_F(PostgresWatch, LiveIdleSessionKeepsTheWatchPendingUntilCancelled) {
  pg::connection conn = connect(shared_server());
  ASSERT_EQ(descriptors_on(conn), 1u);
  auto watch = start_watch(conn);
  EXPECT_EQ(descriptors_on(conn), 2u);  // its own duplicate of the socket
  EXPECT_EQ(watch.wait_for(500ms), std::future_status::timeout);
  cancel_watch();
  ASSERT_EQ(watch.wait_for(2s), std::future_status::ready);
  const ended e = watch.get();
  EXPECT_TRUE(is_cancelled(e)) << failure_of(e).what;
  EXPECT_EQ(descriptors_on(conn), 1u);  // the duplicate is closed, libpq's socket is not
  EXPECT_FALSE(conn.is_broken());
  const pg::result r =
      run([&]() -> asio::awaitable<pg::result> { co_return co_await conn.query("SELECT 1"); }());
  EXPECT_EQ(r.scalar(), "1");
}

TEST_F(PostgresWatch, NotificationsDoNotEndTheWatchAndStayQueued) {
  pg::connection conn = connect(shared_server());
  run(conn.execute("LISTEN qorb_watch"));
  auto watch = start_watch(conn);
  // 20 notifications of 7000 bytes: more than one read, so the watch must
  // wait again for what is still in the socket.
  shared_server().query(
      "SELECT count(pg_notify('qorb_watch', repeat('x', 7000) || i)) FROM generate_series(1, 20) "
      "i");
  std::vector<std::string> payloads;
  // Between the watch's steps, on the strand (as `on_acquire` would run).
  const auto take_notifications = [&] {
    while (PGnotify* n = PQnotifies(conn.native_handle())) {
      payloads.emplace_back(n->extra);
      PQfreemem(n);
    }
    return payloads.size();
  };
  EXPECT_TRUE(wait_until([&] { return on_strand(take_notifications) == 20; }, 5s))
      << payloads.size() << " notifications read by the watch";
  EXPECT_EQ(watch.wait_for(0s), std::future_status::timeout) << failure_of(watch.get()).what;
  ASSERT_EQ(payloads.size(), 20u);
  EXPECT_EQ(payloads.back(), std::string(7000, 'x') + "20");
  cancel_watch();
  ASSERT_EQ(watch.wait_for(2s), std::future_status::ready);
  EXPECT_TRUE(is_cancelled(watch.get()));
  const pg::result r =
      run([&]() -> asio::awaitable<pg::result> { co_return co_await conn.query("SELECT 1"); }());
  EXPECT_EQ(r.scalar(), "1");
}

TEST_F(PostgresWatch, WatchStartedAfterTheBackendEndedEndsAtOnce) {
  pg::connection conn = connect(shared_server());
  const std::string pid = backend_pid(conn);
  shared_server().query("SELECT pg_terminate_backend(" + pid + ")");
  ASSERT_TRUE(wait_until(
      [&] {
        return shared_server().query("SELECT count(*) FROM pg_stat_activity WHERE pid = " + pid) ==
               "0";
      },
      5s));
  ASSERT_TRUE(socket_readable(conn));
  const auto start = clock_type::now();
  auto watch = start_watch(conn);
  ASSERT_EQ(watch.wait_for(2s), std::future_status::ready);
  const ended e = watch.get();
  std::cout << "watch of an already terminated backend ended after " << ms(e.at - start) << " ms\n";
  const failure f = failure_of(e);
  EXPECT_EQ(f.sqlstate, "57P01") << f.what;
  EXPECT_NE(f.what.find("terminating connection due to administrator command"), std::string::npos)
      << f.what;
}

TEST_F(PostgresWatch, IdleSessionTimeoutIsAnOrdinaryEnd) {
  pg::connection conn = connect(shared_server());
  run(conn.execute("SET idle_session_timeout = '200ms'"));
  auto watch = start_watch(conn);
  ASSERT_EQ(watch.wait_for(5s), std::future_status::ready);
  const failure f = failure_of(watch.get());
  EXPECT_EQ(f.code, qorb::errc::connection_ended) << f.what;
  EXPECT_NE(f.what.find("idle-session timeout"), std::string::npos) << f.what;
}

// A watch whose wait completed (bytes arrived) but that was cancelled before
// it resumed must not read them: the session may be claimed by then.
TEST_F(PostgresWatch, CancelledWatchLeavesTheSessionAlone) {
  pg::connection conn = connect(shared_server());
  run(conn.execute("LISTEN qorb_watch_cancel"));
  auto watch = start_watch(conn);
  std::promise<bool> queued;
  // Holds the strand while the other thread's reactor completes the wait.
  asio::post(inner_, [&] {
    const int before = executed_.load();
    shared_server().query("NOTIFY qorb_watch_cancel, 'late'");
    queued.set_value(wait_until([&] { return executed_.load() > before; }, 5s));
    cancel_.emit(asio::cancellation_type::terminal);
  });
  auto was_queued = queued.get_future();
  ASSERT_EQ(was_queued.wait_for(10s), std::future_status::ready);
  ASSERT_TRUE(was_queued.get()) << "the watch's completion never reached the strand";
  ASSERT_EQ(watch.wait_for(2s), std::future_status::ready);
  EXPECT_TRUE(is_cancelled(watch.get()));
  // The notification is still in the kernel, unread by libpq.
  EXPECT_TRUE(socket_readable(conn));
  EXPECT_EQ(PQnotifies(conn.native_handle()), nullptr);
  ASSERT_EQ(PQconsumeInput(conn.native_handle()), 1);
  PGnotify* n = PQnotifies(conn.native_handle());
  ASSERT_NE(n, nullptr);
  EXPECT_STREQ(n->extra, "late");
  PQfreemem(n);
}

// A claimer may wait on libpq's socket before a cancelled watch has
// unwound (its resumption is queued behind the claim on the strand): the two
// waits must not meet in the reactor (epoll refuses one descriptor twice).
TEST_F(PostgresWatch, ClaimerWaitsWhileACancelledWatchHasNotUnwound) {
  pg::connection conn = connect(shared_server());
  auto watch = start_watch(conn);
  std::promise<std::string> answered;
  asio::post(inner_, [&] {
    cancel_.emit(asio::cancellation_type::terminal);
    // The claimer's query, on the other thread, while this holds the strand.
    auto query = asio::co_spawn(
        io_.get_executor(),
        [&]() -> asio::awaitable<std::string> {
          const pg::result r = co_await conn.query("SELECT 1");
          co_return r.scalar().value_or("NULL");
        },
        asio::use_future);
    try {
      if (query.wait_for(5s) != std::future_status::ready) throw std::runtime_error("no answer");
      answered.set_value(query.get());
    } catch (...) {
      answered.set_exception(std::current_exception());
    }
  });
  auto answer = answered.get_future();
  ASSERT_EQ(answer.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(answer.get(), "1");
  ASSERT_EQ(watch.wait_for(2s), std::future_status::ready);
  EXPECT_TRUE(is_cancelled(watch.get()));
}

TEST_F(PostgresWatch, BrokenOrBusySessionEndsTheWatchAtOnce) {
  pg::connection conn = connect(shared_server());
  ASSERT_EQ(PQsendQuery(conn.native_handle(), "SELECT pg_sleep(0.2)"), 1);
  auto busy = start_watch(conn);
  ASSERT_EQ(busy.wait_for(2s), std::future_status::ready);
  EXPECT_EQ(failure_of(busy.get()).code, pg::errc::busy);
  run(connector_.on_recycle(conn));  // drains it

  conn.mark_broken();
  auto broken = start_watch(conn);
  ASSERT_EQ(broken.wait_for(2s), std::future_status::ready);
  EXPECT_EQ(failure_of(broken.get()).code, pg::errc::connection_broken);
}

}  // namespace
