#include "core/rebalancer.hpp"

#include <algorithm>

namespace qorb::core {

std::size_t slot_budget(const policy& p, std::size_t claimed, std::size_t waiting) noexcept {
  std::size_t demand = claimed;
  for (std::size_t more : {waiting, p.spares_wanted}) {
    demand = more > SIZE_MAX - demand ? SIZE_MAX : demand + more;
  }
  return std::min(demand, p.max_slots);
}

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

bool rebalancer::due(const policy& p, std::size_t claimed, std::size_t waiting,
                     bool periodic) noexcept {
  const std::size_t needed = slot_budget(p, claimed, waiting);
  const std::size_t next = periodic ? needed : std::max(needed, budget_);
  const bool changed = next != budget_;
  budget_ = next;
  const bool plan_now = periodic || changed || stale_;
  stale_ = false;
  return plan_now;
}

}  // namespace qorb::core
