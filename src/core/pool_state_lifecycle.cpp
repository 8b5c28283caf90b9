// SPDX-License-Identifier: BSL-1.0
// pool_state, continued: what it counts and reports — connections closed
// by reason, idle ones closed when spare too long — and its stats.
#include "core/pool_state.hpp"

#include <algorithm>

namespace qorb::core {

void pool_state::want(slot_set& set, std::size_t n) {
  if (!set.removed) wanted_live_ = wanted_live_ - set.wanted + n;
  set.wanted = n;
}

void pool_state::closed(slot& s, close_reason why) {
  ++s.set().connections.closed[std::size_t(why)];
  ++connections_.closed[std::size_t(why)];
}

// The idle target is the larger of min_idle and spares_wanted: above it,
// an idle connection unused for idle_timeout goes (the one unused longest
// goes first, as its timer fires first). A backend's last slot stays:
// closing it would take the backend offline, and the rebalance would open
// a probe for it at once; so does one of a set still short of its wanted
// count (it would only open another). The set wants one less, and the
// budget falls to the demand, so demand that grows again rebalances.
bool pool_state::idle_expired(slot& s) {
  slot_set& set = s.set();
  if (doomed(set) || set.size() <= 1 || set.size() < set.wanted) return false;
  if (idle_live_ <= std::max(policy_.min_idle, policy_.spares_wanted)) return false;
  // What the live sets want must still cover the demand (another set may
  // hold the excess, above its wanted count until its busy slots settle).
  const std::size_t demand = slot_budget(policy_, claimed_live_, queue_.size());
  if (set.size() == set.wanted && wanted_live_ <= demand) return false;
  want(set, std::min(set.wanted, set.size() - 1));
  close_slot(s, close_reason::idle);
  rebalancer_.lower_to(demand);
  return true;
}

pool_stats pool_state::stats() const {
  pool_stats out;
  out.total_claims = total_claims_;
  out.claims_waiting = queue_.size();
  out.claim_failures = claim_failures_;
  out.claim_wait = claim_wait_;
  out.connections = connections_;
  out.min_idle = policy_.min_idle;
  out.spares_wanted = policy_.spares_wanted;
  out.max_connecting = policy_.max_connecting;
  out.terminated = terminated_;
  const time_point t = env_.now();
  for (const auto& [name, set] : sets_) out.backends.emplace(name, set->stats(t));
  for (const auto& set : draining_) {
    // Two removed sets of one name (removed, added, removed again) keep
    // their own rows.
    std::string key = set->target().name;
    if (out.backends.contains(key)) key += " (removed)";
    for (int n = 2; out.backends.contains(key); ++n) {
      key = set->target().name + " (removed " + std::to_string(n) + ")";
    }
    out.backends.emplace(std::move(key), set->stats(t));
  }
  return out;
}

}  // namespace qorb::core
