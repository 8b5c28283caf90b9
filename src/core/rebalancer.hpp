// SPDX-License-Identifier: BSL-1.0
// How many slots the pool wants in all, and how many each backend gets.
//
// The budget is min(claimed + waiting + max(spares_wanted, min_idle),
// max_slots): claims that wait are demand too, so a pool whose claims
// queue grows at once instead of at the next periodic rebalance. Event-driven rebalances only
// raise the budget; the periodic one may lower it, so a burst of claims
// does not make the pool close and reopen connections over and over.
//
// The budget is what the pool *wants*; max_slots is held where slots are
// made (pool_state), whatever the wanted counts add up to.
#pragma once

#include <qorb/policy.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

namespace qorb::core {

/// What the rebalancer knows of one backend.
struct rebalance_input {
  bool online = false;
  std::size_t slots = 0;  // slots it has now
};

/// min(claimed + waiting + max(spares_wanted, min_idle), max_slots), without
/// overflow: the idle target is the larger of the spares and the floor.
inline std::size_t slot_budget(const policy& p, std::size_t claimed, std::size_t waiting) noexcept {
  const auto add = [](std::size_t a, std::size_t b) { return b > SIZE_MAX - a ? SIZE_MAX : a + b; };
  const std::size_t idle = p.spares_wanted > p.min_idle ? p.spares_wanted : p.min_idle;
  const std::size_t demand = add(add(claimed, waiting), idle);
  return demand < p.max_slots ? demand : p.max_slots;
}

/// Wanted slot counts, one per input, in the same order. Offline backends
/// are "questionable" and get one probing slot; the rest of `budget` is
/// split evenly over online backends, each capped at set_config.max_count
/// and at least 1, so an online backend never closes its last connection
/// only to come back online as a probe. The remainder of the split goes to
/// the backends that have the most slots already, so repeated rebalances do
/// not move a slot back and forth between backends.
std::vector<std::size_t> plan(const policy& p, const std::vector<rebalance_input>& inputs,
                              std::size_t budget);

/// The wanted count every online backend gets when the plan gives them all
/// the same (the remainder of the split is clamped away, or there is none);
/// none when backends get different counts.
std::optional<std::size_t> uniform_share(const policy& p, std::size_t budget, std::size_t online,
                                         std::size_t questionable) noexcept;

/// Decides how much of a plan an event needs, so a rebalance costs what
/// changed, not what the pool holds: nothing when the demand and the online
/// backends are as before; only the backends that changed (appeared, went
/// online or offline) when every online backend's share is the same as
/// before; else, and periodically, a whole plan.
class rebalancer {
 public:
  enum class step : std::uint8_t { nothing, changed_only, everything };

  /// Whether nothing is due: the demand is within the budget and the same
  /// backends are online (the common case of a claim or a return).
  /// (slot_budget(p, claimed, waiting) <= budget() is `claimed + waiting
  /// <= quiet_limit_`, worked out when the budget changes: the common case
  /// costs an add and a compare.)
  bool quiet(std::size_t claimed, std::size_t waiting, std::size_t online,
             std::size_t questionable) const noexcept {
    return planned_ && online == online_ && questionable == questionable_ &&
           std::ptrdiff_t(claimed + waiting) <= quiet_limit_;
  }
  step next(const policy& p, std::size_t claimed, std::size_t waiting, std::size_t online,
            std::size_t questionable, bool some_changed, bool periodic) noexcept;
  /// Slots were closed outside a plan (idle_timeout): the budget is at
  /// most `b` now, and the sets' counts are no longer one share, so demand
  /// above it plans every set again.
  void lower_to(const policy& p, std::size_t b) noexcept {
    if (b < budget_) budget_ = b;
    share_.reset();
    set_quiet_limit(p);
  }
  /// What the pool wants in all, after `next`.
  std::size_t budget() const noexcept { return budget_; }
  /// Every online backend's share, after `next`, where it is uniform.
  std::optional<std::size_t> share() const noexcept { return share_; }

 private:
  void set_quiet_limit(const policy& p) noexcept;

  std::size_t budget_ = 0;
  std::ptrdiff_t quiet_limit_ = -1;
  std::size_t online_ = 0;
  std::size_t questionable_ = 0;
  std::optional<std::size_t> share_;
  bool planned_ = false;
};

}  // namespace qorb::core
