#include <qorb/detail/sansio.hpp>

#include <algorithm>

namespace qorb::detail {

duration backoff::next(const set_config& cfg, double random01) noexcept {
  ++failures_;
  duration delay = cfg.min_connection_backoff;
  for (unsigned i = 1; i < failures_ && delay < cfg.max_connection_backoff; ++i) {
    if (delay > cfg.max_connection_backoff / 2) {
      delay = cfg.max_connection_backoff;  // doubling would pass it (or overflow)
      break;
    }
    delay *= 2;
  }
  delay = std::min(delay, cfg.max_connection_backoff);
  const auto spread = std::chrono::duration_cast<duration>(
      std::chrono::duration<double, duration::period>(double(cfg.spread.count()) * random01));
  return delay + spread;
}

failure_window::failure_window(duration span) noexcept
    : bucket_width_(std::max(duration(1), span / std::int64_t(bucket_count))) {
  index_.fill(-1);
}

std::int64_t failure_window::bucket_index(time_point now) const noexcept {
  return now.time_since_epoch() / bucket_width_;
}

void failure_window::add(time_point now) noexcept {
  const auto index = bucket_index(now);
  auto& slot = counts_[std::size_t(index) % bucket_count];
  auto& held = index_[std::size_t(index) % bucket_count];
  if (held != index) {
    held = index;
    slot = 0;
  }
  ++slot;
}

std::size_t failure_window::count(time_point now) const noexcept {
  const auto current = bucket_index(now);
  std::size_t total = 0;
  for (std::size_t i = 0; i < bucket_count; ++i) {
    if (index_[i] > current - std::int64_t(bucket_count) && index_[i] <= current)
      total += counts_[i];
  }
  return total;
}

std::size_t slot_budget(const policy& p, const std::vector<rebalance_input>& inputs) {
  std::size_t claimed = 0;
  for (const auto& in : inputs) {
    if (in.online) claimed += in.claimed;
  }
  return std::min(claimed + p.spares_wanted, p.max_slots);
}

std::vector<std::size_t> rebalance(const policy& p, const std::vector<rebalance_input>& inputs,
                                   std::size_t budget) {
  std::vector<std::size_t> wanted(inputs.size(), 0);
  std::size_t questionable = 0, online = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].online) {
      ++online;
    } else {
      ++questionable;
      wanted[i] = 1;
    }
  }
  if (online == 0) return wanted;
  budget = std::min(budget, p.max_slots);
  const std::size_t total = budget > questionable ? budget - questionable : 0;
  const std::size_t base = total / online;
  std::size_t extra = total % online;
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].online) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return inputs[a].slots > inputs[b].slots; });
  for (std::size_t i : order) {
    std::size_t w = base;
    if (extra > 0) {
      ++w;
      --extra;
    }
    wanted[i] = std::clamp<std::size_t>(w, 1, p.set_config.max_count);
  }
  return wanted;
}

}  // namespace qorb::detail
