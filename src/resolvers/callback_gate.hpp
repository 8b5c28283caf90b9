// SPDX-License-Identifier: BSL-1.0
// qorb internal: the one gate through which every resolver (DNS, etcd)
// calls its user's callbacks, so that stop() can promise that no callback
// starts after it returns.
#pragma once

#include <atomic>
#include <mutex>
#include <thread>

namespace qorb::detail {

/// Runs user callbacks so that, once `close` has returned, none starts;
/// `close` waits for one in progress (unless called from inside it, which
/// would otherwise deadlock: a listener may stop its own resolver).
class callback_gate {
 public:
  template <class F>
  void run(F&& f) {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    inside_ = std::this_thread::get_id();
    struct reset {
      std::atomic<std::thread::id>& id;
      ~reset() { id = std::thread::id(); }
    } r{inside_};
    f();
  }

  void close() {
    if (inside_.load() == std::this_thread::get_id()) {
      // From inside a callback of ours: the lock is held by this thread.
      closed_ = true;
      return;
    }
    std::lock_guard lock(mutex_);
    closed_ = true;
  }

  bool closed() const { return closed_; }

 private:
  std::mutex mutex_;
  std::atomic<bool> closed_{false};
  std::atomic<std::thread::id> inside_{};
};

}  // namespace qorb::detail
