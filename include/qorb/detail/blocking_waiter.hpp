// SPDX-License-Identifier: BSL-1.0
// qorb internals: the blocking claim's waiter (pool::claim(timeout)): an
// async_claim completed on the system executor, so that it needs no thread
// of the pool's, and waited for by the calling thread up to its deadline.
#pragma once

#include <qorb/claim.hpp>
#include <qorb/error.hpp>
#include <qorb/policy.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/system_executor.hpp>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <utility>

namespace qorb::detail {

// Shared by the waiting thread and the claim's handler. If the pool's
// executor cannot run (every thread of a thread_pool blocked in a claim,
// say), the timeout still holds: the caller gives up, and a handle that
// comes later goes back to the pool.
template <class Conn>
class blocking_waiter {
 public:
  // The claim's completion handler (on the system executor), for `w`.
  static auto handler(const std::shared_ptr<blocking_waiter>& w) {
    return boost::asio::bind_executor(boost::asio::system_executor(),
                                      [w](error_code e, handle<Conn> h) {
                                        std::lock_guard lock(w->mu_);
                                        if (w->abandoned_) return;  // h returns
                                        w->ec_ = e;
                                        w->h_ = std::move(h);
                                        w->done_ = true;
                                        w->cv_.notify_one();
                                      });
  }

  // Waits for the handler. The pool fails the claim at its deadline
  // (`limit` from now); past that and a grace, the pool cannot have run:
  // gives up (false; a late handle goes back). Else true, with the claim's
  // error in `ec` and its handle in `h`.
  bool wait(duration limit, error_code& ec, handle<Conn>& h) {
    std::unique_lock lock(mu_);
    constexpr duration grace = std::chrono::milliseconds(50);
    const auto now = std::chrono::steady_clock::now();
    if (limit >= std::chrono::steady_clock::time_point::max() - now - grace) {
      cv_.wait(lock, [&] { return done_; });
    } else if (!cv_.wait_until(lock, now + limit + grace, [&] { return done_; })) {
      abandoned_ = true;
      return false;
    }
    ec = ec_;
    h = std::move(h_);
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  bool abandoned_ = false;  // the caller gave up: a late handle goes back
  error_code ec_;
  handle<Conn> h_;
};

}  // namespace qorb::detail
