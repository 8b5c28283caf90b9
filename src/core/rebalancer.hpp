// How many slots the pool wants in all, and how many each backend gets.
//
// The budget is min(claimed + waiting + spares_wanted, max_slots): claims
// that wait are demand too, so a pool whose claims queue grows at once
// instead of at the next periodic rebalance. Event-driven rebalances only
// raise the budget; the periodic one may lower it, so a burst of claims
// does not make the pool close and reopen connections over and over.
//
// The budget is what the pool *wants*; max_slots is held where slots are
// made (pool_state), whatever the wanted counts add up to.
#pragma once

#include <qorb/policy.hpp>

#include <cstddef>
#include <vector>

namespace qorb::core {

/// What the rebalancer knows of one backend.
struct rebalance_input {
  bool online = false;
  std::size_t slots = 0;  // slots it has now
};

/// min(claimed + waiting + spares_wanted, max_slots), without overflow.
std::size_t slot_budget(const policy& p, std::size_t claimed, std::size_t waiting) noexcept;

/// Wanted slot counts, one per input, in the same order. Offline backends
/// are "questionable" and get one probing slot; the rest of `budget` is
/// split evenly over online backends, each capped at set_config.max_count
/// and at least 1, so an online backend never closes its last connection
/// only to come back online as a probe. The remainder of the split goes to
/// the backends that have the most slots already, so repeated rebalances do
/// not move a slot back and forth between backends.
std::vector<std::size_t> plan(const policy& p, const std::vector<rebalance_input>& inputs,
                              std::size_t budget);

/// Decides when a plan is needed: the budget rose (or, periodically,
/// changed), or a backend appeared, vanished, or went online or offline.
/// Otherwise a rebalance costs O(1), however many backends there are.
class rebalancer {
 public:
  /// A backend appeared, vanished, or went online or offline.
  void membership_changed() noexcept { stale_ = true; }
  /// Whether to plan again, given the demand now; updates the budget.
  bool due(const policy& p, std::size_t claimed, std::size_t waiting, bool periodic) noexcept;
  std::size_t budget() const noexcept { return budget_; }

 private:
  std::size_t budget_ = 0;
  bool stale_ = true;
};

}  // namespace qorb::core
