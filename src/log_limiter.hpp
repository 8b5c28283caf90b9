// SPDX-License-Identifier: BSL-1.0
// Rate limits for repeated log lines: a server that drops every connection,
// or a client that floods the stats port, must not turn the log into a
// firehose. Internal; used by the pool's driver and by the stats server.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace qorb::detail {

/// Lets one line through per interval and counts the ones it held back.
/// Not thread-safe: used under its owner's lock or on one strand.
struct log_limiter {
  std::optional<std::chrono::steady_clock::time_point> last;
  std::uint64_t held_back = 0;

  /// Whether to log now (at `now`); `skipped` gets how many were held back
  /// since the last line let through.
  bool admit(std::chrono::steady_clock::duration interval, std::uint64_t& skipped,
             std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now()) {
    if (last && now - *last < interval) {
      ++held_back;
      return false;
    }
    last = now;
    skipped = std::exchange(held_back, 0);
    return true;
  }
};

/// One `log_limiter` per key (e.g. a backend and a kind of event), with its
/// own lock. Holds at most `max_keys` keys: past that it forgets them all
/// (a pool has that many backends only briefly, and forgetting only lets a
/// line through early).
class keyed_log_limiter {
 public:
  explicit keyed_log_limiter(std::chrono::steady_clock::duration interval,
                             std::size_t max_keys = 4096)
      : interval_(interval), max_keys_(max_keys) {}

  /// Whether a line under `key` may be logged now; `skipped` gets how many
  /// under the same key were held back since the last one let through.
  bool admit(std::string_view key, std::uint64_t& skipped) {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mu_);
    auto it = limiters_.find(key);
    if (it == limiters_.end()) {
      if (limiters_.size() >= max_keys_) limiters_.clear();
      it = limiters_.emplace(std::string(key), log_limiter{}).first;
    }
    return it->second.admit(interval_, skipped, now);
  }

  std::chrono::steady_clock::duration interval() const noexcept { return interval_; }

 private:
  const std::chrono::steady_clock::duration interval_;
  const std::size_t max_keys_;
  std::mutex mu_;
  std::map<std::string, log_limiter, std::less<>> limiters_;
};

}  // namespace qorb::detail
