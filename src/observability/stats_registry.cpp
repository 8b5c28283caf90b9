// SPDX-License-Identifier: BSL-1.0
#include "observability/stats_registry.hpp"

#include <algorithm>
#include <utility>

#include "observability/stats_json.hpp"
#include "observability/stats_prometheus.hpp"

namespace qorb::detail {

void stats_registry::attach(std::string name, stats_source source) {
  std::lock_guard lock(mu_);
  const auto id = next_id_++;
  ++generation_;
  for (auto& e : pools_) {
    if (e.name == name) {
      e.source = std::move(source);
      e.id = id;
      return;
    }
  }
  pools_.push_back({std::move(name), std::move(source), id});
}

void stats_registry::detach(const std::string& name) {
  std::lock_guard lock(mu_);
  std::erase_if(pools_, [&](const entry& e) { return e.name == name; });
  ++generation_;
}

bool stats_registry::attached(const std::string& name) const {
  std::lock_guard lock(mu_);
  return std::any_of(pools_.begin(), pools_.end(), [&](const entry& e) { return e.name == name; });
}

std::optional<std::string> stats_registry::first_pool() const {
  std::lock_guard lock(mu_);
  if (pools_.empty()) return std::nullopt;
  return pools_.front().name;
}

// Reads the sources outside the lock (a source may take its pool's lock)
// and drops those whose pool is gone.
std::vector<pool_stats> stats_registry::snapshot() {
  std::vector<entry> entries;
  {
    std::lock_guard lock(mu_);
    entries = pools_;
  }
  std::vector<pool_stats> out;
  for (auto& e : entries) {
    if (auto s = e.source()) {
      s->name = e.name;
      out.push_back(std::move(*s));
    } else {
      forget(e.id);
    }
  }
  return out;
}

void stats_registry::forget(std::uint64_t id) {
  std::lock_guard lock(mu_);
  std::erase_if(pools_, [id](const entry& e) { return e.id == id; });
}

std::shared_ptr<const built_output> stats_registry::build(output_kind kind,
                                                          const std::string& only) {
  const auto now = std::chrono::steady_clock::now();
  std::uint64_t gen = 0;
  {
    std::lock_guard lock(mu_);
    gen = generation_;
  }
  if (!cache_taken_ || now - *cache_taken_ >= snapshot_interval_ || gen != cache_generation_) {
    cache_pools_ = snapshot();
    cache_taken_ = now;
    cache_generation_ = gen;
    cache_built_.clear();
    snapshots_.fetch_add(1, std::memory_order_relaxed);
  }
  auto key = std::string(1, static_cast<char>(kind)).append(only);
  auto& slot = cache_built_[std::move(key)];
  if (slot) return slot;
  auto out = std::make_shared<built_output>();
  std::vector<const pool_stats*> chosen;
  for (const auto& p : cache_pools_) {
    if (only.empty() || p.name == only) chosen.push_back(&p);
  }
  switch (kind) {
    case output_kind::metrics:
      out->body = stats_prometheus::render(chosen);
      break;
    case output_kind::stats:
      out->body = stats_json::render_stats(chosen, std::chrono::system_clock::now());
      break;
    case output_kind::sets:
      out->found = !chosen.empty();
      if (out->found) {
        out->body = stats_json::render_sets(*chosen.front());
        out->total_claims = chosen.front()->total_claims;
      }
      break;
  }
  slot = std::move(out);
  return slot;
}

}  // namespace qorb::detail
