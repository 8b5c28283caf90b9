// SPDX-License-Identifier: BSL-1.0
#include "core/rebalancer.hpp"

#include <algorithm>

namespace qorb::core {

std::vector<std::size_t> plan(const policy& p, const std::vector<rebalance_input>& inputs,
                              std::size_t budget) {
  std::vector<std::size_t> wanted(inputs.size(), 0);
  std::size_t questionable = 0;
  std::vector<std::size_t> online;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].online) {
      online.push_back(i);
    } else {
      ++questionable;
      wanted[i] = 1;
    }
  }
  if (online.empty()) return wanted;
  budget = std::min(budget, p.max_slots);
  const std::size_t total = budget > questionable ? budget - questionable : 0;
  const std::size_t base = total / online.size();
  const std::size_t extra = total % online.size();
  // The `extra` backends with the most slots get one more (stable: ties go
  // to the earlier input).
  if (extra > 0) {
    std::stable_sort(online.begin(), online.end(), [&](std::size_t a, std::size_t b) {
      return inputs[a].slots > inputs[b].slots;
    });
  }
  for (std::size_t k = 0; k < online.size(); ++k) {
    const std::size_t w = base + (k < extra ? 1 : 0);
    wanted[online[k]] = std::clamp<std::size_t>(w, 1, p.set_config.max_count);
  }
  return wanted;
}

std::optional<std::size_t> uniform_share(const policy& p, std::size_t budget, std::size_t online,
                                         std::size_t questionable) noexcept {
  if (online == 0) return 1;  // nobody online: every backend is a probe
  budget = std::min(budget, p.max_slots);
  const std::size_t total = budget > questionable ? budget - questionable : 0;
  const std::size_t base = total / online;
  const std::size_t low = std::clamp<std::size_t>(base, 1, p.set_config.max_count);
  const std::size_t high = std::clamp<std::size_t>(base + 1, 1, p.set_config.max_count);
  if (total % online != 0 && low != high) return std::nullopt;
  return low;
}

rebalancer::step rebalancer::next(const policy& p, std::size_t claimed, std::size_t waiting,
                                  std::size_t online, std::size_t questionable, bool some_changed,
                                  bool periodic) noexcept {
  const std::size_t needed = slot_budget(p, claimed, waiting);
  // The common case, a claim or a return within the budget: O(1).
  if (planned_ && !periodic && !some_changed && needed <= budget_ && online == online_ &&
      questionable == questionable_) {
    return step::nothing;
  }
  const std::size_t budget = periodic ? needed : std::max(needed, budget_);
  const auto share = uniform_share(p, budget, online, questionable);
  const bool same =
      planned_ && budget == budget_ && online == online_ && questionable == questionable_;
  const bool same_share = planned_ && share && share == share_;
  budget_ = budget;
  set_quiet_limit(p);
  online_ = online;
  questionable_ = questionable;
  share_ = share;
  if (periodic || !planned_) {
    planned_ = true;
    return step::everything;
  }
  if (same_share || (same && !some_changed)) {
    return some_changed ? step::changed_only : step::nothing;
  }
  return step::everything;
}

// The most claimed + waiting whose budget stays within budget_: any, once
// the budget is max_slots (the budget never passes it); else budget_ minus
// the idle target (negative: none).
void rebalancer::set_quiet_limit(const policy& p) noexcept {
  if (budget_ >= p.max_slots) {
    quiet_limit_ = std::numeric_limits<std::ptrdiff_t>::max();
    return;
  }
  const std::size_t idle = p.spares_wanted > p.min_idle ? p.spares_wanted : p.min_idle;
  quiet_limit_ = std::ptrdiff_t(budget_) - std::ptrdiff_t(idle > budget_ ? budget_ + 1 : idle);
}

}  // namespace qorb::core
