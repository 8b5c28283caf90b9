// SPDX-License-Identifier: BSL-1.0
// Which backend serves the next claim: the sets that have an unclaimed slot,
// lowest score first. A set that serves a claim scores +1 (claims spread);
// one that runs out of unclaimed slots scores +20 and leaves the list until
// it has one again (busy backends are tried last); the periodic rebalance
// rescores every set as its recent failures plus a random jitter in [0, 5).
//
// qorb walks every set on every claim and sorts the list again; here a set
// without an unclaimed slot is never looked at, and a pick is O(1) with an
// O(log n) adjustment, however many backends there are.
#pragma once

#include "core/indexed_heap.hpp"
#include "core/slot_set.hpp"

#include <cstddef>

namespace qorb::core {

class priority_list {
 public:
  static constexpr double serve_penalty = 1;
  static constexpr double exhausted_penalty = 20;
  static constexpr double jitter = 5;

  bool empty() const noexcept { return heap_.empty(); }
  std::size_t size() const noexcept { return heap_.size(); }
  /// The best set with an unclaimed slot, or null.
  slot_set* best() const noexcept { return heap_.top(); }

  /// `set` has an unclaimed slot again (or for the first time).
  void insert(slot_set& set);
  /// `set` left the pool, or has no unclaimed slot for another reason.
  void remove(slot_set& set) noexcept;
  /// `set` served a claim.
  void served(slot_set& set) noexcept;
  /// `set` gave its last unclaimed slot.
  void exhausted(slot_set& set) noexcept;
  /// Rebuilds the order after scores were set anew (priority.score of every
  /// set, in the list or not).
  void rescored() noexcept;

 private:
  struct position {
    static std::size_t& of(slot_set& set) noexcept { return set.priority.pos; }
  };
  using heap = indexed_heap<slot_set, double, position>;
  static_assert(priority_hook::absent == heap::absent);
  heap heap_;
};

}  // namespace qorb::core
