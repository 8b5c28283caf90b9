// SPDX-License-Identifier: BSL-1.0
// Runs a connector's `watch` on a strand, as the pool does, so that a test
// can wait for it to end or cancel it (terminal per-operation cancellation)
// and read how it ended.
#pragma once

#include "support/io_threads.hpp"

#include <qorb/backend.hpp>

#include <gtest/gtest.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>

#include <poll.h>

namespace qorb::test {

class watch_run {
 public:
  /// Starts `watch` (e.g. `connector.watch(conn)`) on a new strand of `io`.
  watch_run(io_threads& io, boost::asio::awaitable<void> watch)
      : strand_(boost::asio::make_strand(io.io)), state_(std::make_shared<state>()) {
    // The coroutine and its completion handler own the state: they may
    // still wind down after this object is gone.
    boost::asio::co_spawn(strand_, run(state_, std::move(watch)),
                          boost::asio::bind_cancellation_slot(
                              state_->signal.slot(), [keep = state_](std::exception_ptr) {}));
  }
  watch_run(const watch_run&) = delete;
  watch_run& operator=(const watch_run&) = delete;
  ~watch_run() {
    if (!ended_within(std::chrono::milliseconds(0))) cancel();
  }

  /// Whether the watch ended within `limit` (waits at most that long).
  bool ended_within(std::chrono::milliseconds limit) {
    std::unique_lock lock(state_->mu);
    return state_->cv.wait_for(lock, limit, [&] { return state_->done; });
  }

  /// Cancels it as the pool does (on its strand) and waits for its end
  /// (at most 10 s); true when it ended as cancelled (operation_aborted):
  /// it was still pending.
  bool cancel() {
    boost::asio::post(strand_,
                      [s = state_] { s->signal.emit(boost::asio::cancellation_type::terminal); });
    if (!ended_within(std::chrono::seconds(10))) return false;
    return aborted();
  }

  /// How it ended (valid once it ended): the code and what() of what it
  /// threw; `aborted()` for operation_aborted.
  std::error_code code() {
    std::lock_guard lock(state_->mu);
    return state_->code;
  }
  std::string what() {
    std::lock_guard lock(state_->mu);
    return state_->what;
  }
  bool aborted() {
    std::lock_guard lock(state_->mu);
    return state_->aborted;
  }

 private:
  struct state {
    boost::asio::cancellation_signal signal;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    bool aborted = false;
    std::error_code code;
    std::string what;
  };

  static boost::asio::awaitable<void> run(std::shared_ptr<state> s,
                                          boost::asio::awaitable<void> watch) {
    std::error_code code;
    std::string what = "returned normally";
    bool aborted = false;
    try {
      co_await std::move(watch);
    } catch (const boost::system::system_error& e) {
      code = e.code();
      what = e.what();
      aborted = e.code() == boost::asio::error::operation_aborted;
    } catch (const std::system_error& e) {
      code = e.code();
      what = e.what();
    } catch (const std::exception& e) {
      what = e.what();
    }
    std::lock_guard lock(s->mu);
    s->code = code;
    s->what = what;
    s->aborted = aborted;
    s->done = true;
    s->cv.notify_all();
  }

  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  std::shared_ptr<state> state_;
};

/// A listener on 127.0.0.1 (a free port) and the server's end of the one
/// connection a test makes to it, which the test closes, resets or writes
/// on (blocking calls on the test's thread).
struct loopback_peer {
  loopback_peer() {
    acceptor.open(boost::asio::ip::tcp::v4());
    acceptor.bind({boost::asio::ip::make_address("127.0.0.1"), 0});
    acceptor.listen();
  }
  qorb::backend target() const {
    const auto e = acceptor.local_endpoint();
    return {qorb::to_string(e), e};
  }
  void accept() { acceptor.accept(socket); }
  /// Closes with an RST (SO_LINGER 0).
  void reset() {
    socket.set_option(boost::asio::socket_base::linger(true, 0));
    socket.close();
  }

  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acceptor{io};
  boost::asio::ip::tcp::socket socket{io};
};

/// Expects `watch` to be still pending after `bound`, then cancels it and
/// expects it to end as cancelled.
inline void expect_pending_then_cancel(watch_run& watch, std::chrono::milliseconds bound) {
  EXPECT_FALSE(watch.ended_within(bound)) << watch.what();
  EXPECT_TRUE(watch.cancel()) << "it had ended: " << watch.what();
}

/// Expects `watch` to be pending, resets the connection from `peer`'s side,
/// and expects the watch to end with `connection_reset` (a loss).
inline void expect_reset_ends_it(watch_run& watch, loopback_peer& peer) {
  EXPECT_FALSE(watch.ended_within(std::chrono::milliseconds(50))) << watch.what();
  peer.reset();
  ASSERT_TRUE(watch.ended_within(std::chrono::seconds(5)));
  EXPECT_EQ(watch.code(), std::errc::connection_reset) << watch.what();
}

/// Waits (poll, at most `limit`) until `fd` shows `events` (e.g. POLLIN for
/// bytes that arrived, POLLRDHUP for the peer's FIN); true when it does.
inline bool fd_shows(int fd, short events, std::chrono::milliseconds limit) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, static_cast<int>(limit.count())) > 0 && (p.revents & events) != 0;
}

}  // namespace qorb::test
