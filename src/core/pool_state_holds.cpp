// SPDX-License-Identifier: BSL-1.0
// pool_state, continued: who holds the connections (claim sites, holds in
// claim order, the warning for a hold past policy::hold_warning).
#include "core/pool_state.hpp"

namespace qorb::core {

namespace {
double seconds(duration d) { return std::chrono::duration<double>(d).count(); }
}  // namespace

void pool_state::hold_begins(slot& s, std::uint64_t id, const std::source_location& site,
                             double waited, time_point at) {
  const std::uint16_t row = sites_.index(site);
  sites_.waited(row, waited);
  holds_.begin(s, at, id, row);
  // The first hold not warned about sets the next wake-up; later ones wait
  // behind it.
  if (policy_.hold_warning &&
      holds_.next_warning(policy_.hold_warning) == after(at, *policy_.hold_warning)) {
    fx_->rearm = true;
  }
}

void pool_state::hold_ends(slot& s) {
  if (!holds_.holds(s)) return;
  const duration held = holds_.end(s, hold_clock());
  sites_.held(s.held.site, seconds(held));
}

void pool_state::warn_long_holds() {
  if (!policy_.hold_warning) return;
  holds_.warn_due(now(), policy_.hold_warning, [&](slot& s) {
    ++hold_warnings_;
    observe({.what = observation::kind::hold_warning,
             .claim = s.held.claim,
             .slot = s.id(),
             .delay = now() - s.held.since,
             .set = s.set().label(),
             .site = sites_.where(s.held.site)});
  });
}

std::vector<claim_holder> pool_state::holders(std::size_t limit) const {
  std::vector<claim_holder> out;
  if (limit == 0 || holds_.size() == 0) return out;
  const time_point t = env_.now();
  out.reserve(std::min(limit, holds_.size()));
  holds_.each([&](const slot& s) {
    claim_holder h;
    h.slot = s.id();
    h.claim = s.held.claim;
    h.backend = s.set().target().name;
    h.address = s.set().target().address;
    h.age = t > s.held.since ? t - s.held.since : duration::zero();
    h.site = sites_.site_of(s.held.site);
    h.warned = s.held.warned;
    out.push_back(std::move(h));
    return out.size() < limit;
  });
  return out;
}

}  // namespace qorb::core
