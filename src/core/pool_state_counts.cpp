// SPDX-License-Identifier: BSL-1.0
// pool_state, continued: what it counts and reports (wanted slots summed,
// connections closed by reason, claims out, the stats snapshot).
#include "core/pool_state.hpp"

namespace qorb::core {

void pool_state::want(slot_set& set, std::size_t n) {
  if (!set.removed) wanted_live_ = wanted_live_ - set.wanted + n;
  set.wanted = n;
}

void pool_state::closed(slot& s, close_reason why) {
  ++s.set().connections.closed[std::size_t(why)];
  ++connections_.closed[std::size_t(why)];
  trace([&] {
    return observation{.what = observation::kind::closed,
                       .slot = s.id(),
                       .set = s.set().label(),
                       .closed_for = why};
  });
}

std::size_t pool_state::claims_out() const noexcept {
  std::size_t n = claimed_live_;
  for (const auto& set : draining_) n += set->claimed();
  return n;
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
  out.status = status_.status();
  out.connects_in_flight = connects_running_;
  out.connects_waiting = connects_waiting_;
  out.connect_time = connect_time_;
  out.terminated = terminated_;
  out.holders = holders(pool_stats::max_holders);
  out.hold_warning = policy_.hold_warning;
  out.hold_warnings = hold_warnings_;
  out.sites = sites_.stats();
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
