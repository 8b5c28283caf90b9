// SPDX-License-Identifier: BSL-1.0
// pool_state, continued: who holds the connections (claimed slots with
// their claim and site; timed holds in claim order, when policy::time_holds
// or hold_warning asks for the clock; the warning for a hold past
// hold_warning).
#include "core/pool_state.hpp"

#include <algorithm>

namespace qorb::core {

namespace {
double seconds(duration d) { return std::chrono::duration<double>(d).count(); }
}  // namespace

void pool_state::timed_hold_begins(slot& s) {
  const time_point at = hold_clock();
  holds_.begin(s, at);
  // The first hold not warned about sets the next wake-up; later ones wait
  // behind it.
  if (policy_.hold_warning &&
      holds_.next_warning(policy_.hold_warning) == after(at, *policy_.hold_warning)) {
    fx_->rearm = true;
  }
}

void pool_state::timed_hold_ends(slot& s) {
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
  std::vector<const slot*> held;
  bool all_timed = true;
  for_each_set([&](const slot_set& set) {
    set.for_each([&](const slot& s) {
      if (s.state() != slot_state::claimed) return;
      held.push_back(&s);
      all_timed = all_timed && s.held.timed;
    });
  });
  // Oldest first: by when each was handed out if every hold is timed, else
  // by claim id (the order claims were made in).
  const auto older = [&](const slot* a, const slot* b) {
    if (all_timed && a->held.since != b->held.since) return a->held.since < b->held.since;
    return a->held.claim < b->held.claim;
  };
  const std::size_t n = std::min(limit, held.size());
  std::partial_sort(held.begin(), held.begin() + std::ptrdiff_t(n), held.end(), older);
  std::vector<claim_holder> out;
  out.reserve(n);
  const time_point t = n != 0 ? env_.now() : time_point{};
  for (std::size_t i = 0; i < n; ++i) {
    const slot& s = *held[i];
    claim_holder h;
    h.slot = s.id();
    h.claim = s.held.claim;
    h.backend = s.set().target().name;
    h.address = s.set().target().address;
    h.timed = s.held.timed;
    if (s.held.timed && t > s.held.since) h.age = t - s.held.since;
    h.site = sites_.site_of(s.held.site);
    h.warned = s.held.warned;
    out.push_back(std::move(h));
  }
  return out;
}

}  // namespace qorb::core
