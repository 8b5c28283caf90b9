// SPDX-License-Identifier: BSL-1.0
// pool_state, continued: the slot sets' sizes (growth under max_slots,
// shrinking, rebalancing).
#include "core/pool_state.hpp"

#include <algorithm>
#include <utility>

namespace qorb::core {

void pool_state::open_slot(slot_set& set) {
  auto* s = new slot(set.next_slot_id(), set);
  set.adopt(*s);
  ++total_slots_;
  s->open(*this);
}

void pool_state::close_slot(slot& s, std::optional<close_reason> why) {
  slot_set& set = s.set();
  if (!why)
    why = terminated_   ? close_reason::terminated
          : set.removed ? close_reason::removed
                        : close_reason::resized;
  s.close(*this, *why);
  slot_timers_.cancel(s);
  set.forget(s);
  graveyard_.emplace_back(&s);
  --total_slots_;
  if (cap_ > total_slots_) cap_ = total_slots_;
  room_freed_ = true;
}

// The set sheds what it does not want (slots not connected first, then idle
// ones; busy ones settle first) and grows while the pool is under max_slots.
void pool_state::conform(slot_set& set) {
  shrink(set);
  grow(set);
}

// Closing a replacing slot may take the set offline: reported here, as
// every change of online is.
void pool_state::shrink(slot_set& set) {
  bool closed = false;
  while (set.size() > set.wanted) {
    slot* victim = set.shrink_victim();
    if (!victim) break;
    close_slot(*victim);
    closed = true;
  }
  if (closed && !set.removed) report(set);
}

// max_slots is held here, the one place slots are made: a set that wants
// more waits, first come first served, for room another set frees.
void pool_state::grow(slot_set& set) {
  while (!doomed(set) && set.size() < set.wanted) {
    if (total_slots_ >= policy_.max_slots) {
      if (!short_.contains(set)) short_.push_back(set);
      return;
    }
    open_slot(set);
  }
  if (short_.contains(set)) short_.remove(set);
}

void pool_state::give_room() {
  room_freed_ = false;
  while (!short_.empty() && total_slots_ < policy_.max_slots) grow(*short_.front());
}

void pool_state::remove_set(
    std::map<std::string, std::unique_ptr<slot_set>, std::less<>>::iterator it) {
  std::unique_ptr<slot_set> set = std::move(it->second);
  sets_.erase(it);
  priority_.remove(*set);
  want(*set, 0);
  grow(*set);  // leaves the queue for room
  set->removed = true;
  claimed_live_ -= set->claimed();
  if (set->connect_failing) --failing_sets_;
  if (set->connect_refused) --refused_sets_;
  due_ |= due_status;
  idle_live_ -= set->unclaimed();
  if (set->reported_online) --online_;
  observe(
      {.what = observation::kind::backend_removed, .count = set->claimed(), .set = set->label()});
  set->for_each([&](slot& s) {
    if (!is_claimed(s.state())) close_slot(s);
  });
  draining_.push_back(std::move(set));
}

// A backend appeared, or went online or offline: its wanted count is due.
void pool_state::mark_changed(slot_set& set) {
  if (set.plan_pending) return;
  set.plan_pending = true;
  changed_.push_back(&set);
}

void pool_state::rebalance(bool periodic) {
  const auto step = rebalancer_.next(policy_, claimed_live_, queue_.size(), online_,
                                     sets_.size() - online_, !changed_.empty(), periodic);
  std::vector<slot_set*> changed = std::exchange(changed_, {});
  for (slot_set* set : changed) set->plan_pending = false;
  if (step == rebalancer::step::nothing) return;
  trace([&] { return observation{.what = observation::kind::rebalance_started}; });
  if (step == rebalancer::step::changed_only) {
    const std::size_t share = *rebalancer_.share();
    for (slot_set* set : changed) {
      if (set->removed) continue;
      want(*set, set->reported_online ? share : 1);
      conform(*set);
    }
  } else {
    plan_all();
  }
  trace([&] { return observation{.what = observation::kind::rebalance_done}; });
}

void pool_state::plan_all() {
  std::vector<rebalance_input> inputs;
  inputs.reserve(sets_.size());
  for (const auto& [name, set] : sets_) inputs.push_back({set->reported_online, set->size()});
  const auto wanted = plan(policy_, inputs, rebalancer_.budget());
  std::size_t i = 0;
  for (const auto& [name, set] : sets_) want(*set, wanted[i++]);
  // Shrink everywhere before growing anywhere, so the room one set frees
  // can go to another in the same rebalance.
  for (const auto& [name, set] : sets_) shrink(*set);
  for (const auto& [name, set] : sets_) grow(*set);
}

}  // namespace qorb::core
