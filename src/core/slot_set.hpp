// SPDX-License-Identifier: BSL-1.0
// One backend's slots: counts by state, the idle list, the wanted count and
// the changes the pool reacts to (online, has unclaimed slots).
#pragma once

#include <qorb/backend.hpp>
#include <qorb/stats.hpp>

#include "core/effects.hpp"
#include "core/failure_window.hpp"
#include "core/intrusive_list.hpp"
#include "core/slot.hpp"

#include <array>
#include <cstddef>
#include <cstdint>

namespace qorb::core {

/// Where a set sits in the priority list (src/core/priority_list.hpp).
struct priority_hook {
  static constexpr std::size_t absent = SIZE_MAX;
  double score = 0;
  std::size_t pos = absent;
};

class slot_set {
 public:
  slot_set(std::uint16_t id, backend b, duration failure_span);
  slot_set(const slot_set&) = delete;
  slot_set& operator=(const slot_set&) = delete;

  std::uint16_t id() const noexcept { return id_; }
  const backend& target() const noexcept { return backend_; }
  const label_ptr& label() const noexcept { return label_; }
  /// The next slot's id: upper 16 bits the set, lower 48 a number.
  std::uint64_t next_slot_id() noexcept;

  void adopt(slot& s) noexcept;
  void forget(slot& s) noexcept;
  /// Keeps the counts and the idle list in step with a slot's state.
  void moved(slot& s, slot_state from) noexcept;

  std::size_t size() const noexcept { return slots_.size(); }
  std::size_t count(slot_state st) const noexcept { return by_state_[std::size_t(st)]; }
  std::size_t unclaimed() const noexcept { return count(slot_state::idle); }
  std::size_t claimed() const noexcept {
    return count(slot_state::claimed) + count(slot_state::acquiring) + count(slot_state::abandoned);
  }
  /// Online: some slot holds a connection (idle, being checked or claimed)
  /// or replaces one that ended normally (a server's idle close is no
  /// reason to call the backend offline).
  /// (Every slot is counted in exactly one state: online is "not all of
  /// them are without a connection", three loads on the claim path.)
  bool online() const noexcept {
    return size() > count(slot_state::backing_off) + count(slot_state::connecting) +
                        count(slot_state::closed);
  }
  std::size_t connecting() const noexcept {
    return count(slot_state::connecting) + count(slot_state::replacing) +
           count(slot_state::backing_off);
  }
  std::size_t checking() const noexcept {
    return count(slot_state::checking) + count(slot_state::recycling) + count(slot_state::cooling);
  }
  set_counts counts() const noexcept;

  /// The most recently used idle slot (warm connections first).
  slot* idle_front() const noexcept { return idle_.front(); }
  /// A slot to close when the set shrinks: one not connected first (one
  /// replacing a connection after those), then the idle one unused the longest (claims take the
  /// warmest); none while only busy slots are left (they settle first).
  slot* shrink_victim() const noexcept;
  /// Calls `f` on every slot; `f` may remove it.
  template <class F>
  void for_each(F&& f) const {
    slots_.for_each(f);
  }

  backend_stats stats(time_point now) const;

  std::size_t wanted = 0;
  bool removed = false;
  bool reported_online = false;
  bool reported_unclaimed = false;
  /// Online or has-unclaimed differ from what was last reported.
  bool unreported() const noexcept {
    return online() != reported_online || (unclaimed() > 0) != reported_unclaimed;
  }
  bool plan_pending = false;     // in the pool's list of sets whose wanted count is due
  bool connect_failing = false;  // its last connect failed
  bool connect_refused = false;  // ... permanently
  time_point offline_since{};    // when it went offline (or was added); read while not online
  failure_window failures;
  std::uint64_t total_claims = 0, connect_failures = 0, check_failures = 0;
  // Said by the callers: handles discarded, failures reported.
  std::uint64_t discards = 0, failures_reported = 0;
  connection_counts connections;
  priority_hook priority;
  list_hook<slot_set> in_short;  // the pool's queue of sets waiting for room under max_slots

 private:
  const std::uint16_t id_;
  const backend backend_;
  const label_ptr label_;
  std::uint64_t next_slot_ = 0;
  intrusive_list<slot, &slot::in_set> slots_;
  intrusive_list<slot, &slot::in_idle> idle_;  // most recently used first
  std::array<std::size_t, std::size_t(slot_state::count_)> by_state_{};
};

}  // namespace qorb::core
