// SPDX-License-Identifier: BSL-1.0
// "Never more than max_slots", checked at every slot the pool opens instead
// of sampled now and then: every new slot starts a connect, the fake
// connector calls `on_connect` at each one, and the watch reads the pool's
// stats there (taken under the pool's lock, so between two events) and keeps
// the most slots it saw. The core itself asserts the cap at the end of every
// event in debug builds (pool_state::end_event); this watch checks it in
// release builds too, through the public API.
#pragma once

#include <qorb/stats.hpp>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <mutex>

#include "support/fake_connector.hpp"

namespace qorb::test {

/// The slots a snapshot shows, every state and every backend (removed ones
/// draining claimed slots included).
inline std::size_t slots_of(const pool_stats& s) {
  std::size_t n = 0;
  for (const auto& [name, b] : s.backends) n += b.connecting + b.unclaimed + b.checking + b.claimed;
  return n;
}

/// Watches `pool` at every connect its fake connector sees, from
/// construction to destruction: declare it after the pool (it must go first)
/// and before the pool can connect (before the resolver publishes).
class slot_watch {
 public:
  template <class Pool>
  slot_watch(std::shared_ptr<fake_state> state, const Pool& pool) : state_(std::move(state)) {
    std::lock_guard lock(state_->watch_mu);
    state_->on_connect = [this, &pool] {
      most_ = std::max(most_, slots_of(pool.stats()));
      ++looks_;
    };
  }
  slot_watch(const slot_watch&) = delete;
  slot_watch& operator=(const slot_watch&) = delete;
  ~slot_watch() {
    std::lock_guard lock(state_->watch_mu);
    state_->on_connect = nullptr;
  }

  /// The most slots any look saw.
  std::size_t most() const {
    std::lock_guard lock(state_->watch_mu);
    return most_;
  }
  /// How many connects it looked at.
  int looks() const {
    std::lock_guard lock(state_->watch_mu);
    return looks_;
  }

 private:
  std::shared_ptr<fake_state> state_;
  std::size_t most_ = 0;  // under state_->watch_mu
  int looks_ = 0;         // under state_->watch_mu
};

}  // namespace qorb::test
