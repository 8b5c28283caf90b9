// SPDX-License-Identifier: BSL-1.0
// The last connect or check error of each backend, as backend_stats
// serves it. Written where the driver turns the core's op_failed
// observations into logs (observe.cpp), read by pool_driver::stats(); a
// leaf lock of its own, so neither waits for the pool's lock.
#pragma once

#include <qorb/stats.hpp>

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace qorb::detail {

class backend_errors {
 public:
  /// `backend`: the backend's name (a key of pool_stats::backends).
  void record(std::string_view backend, std::string_view operation, std::string_view message) {
    backend_error e;
    e.operation = operation;
    e.message = message;
    e.at = std::chrono::system_clock::now();
    std::lock_guard lock(mu_);
    auto it = errors_.find(backend);
    if (it == errors_.end()) {
      errors_.emplace(std::string(backend), std::move(e));
    } else {
      it->second = std::move(e);
    }
  }

  /// Copies each backend's last error into its row of `stats`, and forgets
  /// the errors of backends the pool no longer has (a removed backend that
  /// is still draining keeps its row, under its own name or a suffixed one).
  void fill(pool_stats& stats) {
    std::lock_guard lock(mu_);
    for (auto it = errors_.begin(); it != errors_.end();) {
      bool kept = false;
      for (auto row = stats.backends.lower_bound(it->first);
           row != stats.backends.end() && row->first.starts_with(it->first); ++row) {
        if (row->first.size() == it->first.size() || row->first[it->first.size()] == ' ') {
          row->second.last_error = it->second;
          kept = true;
        }
      }
      it = kept ? std::next(it) : errors_.erase(it);
    }
  }

 private:
  std::mutex mu_;
  std::map<std::string, backend_error, std::less<>> errors_;
};

}  // namespace qorb::detail
