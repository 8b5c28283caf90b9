// SPDX-License-Identifier: BSL-1.0
// pool_state, continued: serving claims and the slots' port (the slot sets'
// sizes are in pool_state_sizes.cpp).
#include "core/claim_outcomes.hpp"
#include "core/pool_state.hpp"

#include <algorithm>
#include <utility>

namespace qorb::core {

// ----- claims ------------------------------------------------------------------

slot* pool_state::pick() {
  slot_set* set = priority_.best();
  return set ? set->idle_front() : nullptr;
}

time_point pool_state::deadline_of(const claim_node& c) {
  return after(now(), c.timeout > duration::zero() ? c.timeout : policy_.claim_timeout);
}

// `s` is idle, or ready and about to be: it goes to `c`. The set scores +1
// before the claim takes the slot, so if that was its last unclaimed slot
// it leaves the priority list with +20 on top.
void pool_state::serve(claim_node& c, slot& s) {
  slot_set& set = s.set();
  priority_.served(set);
  ++set.total_claims;
  ++total_claims_;
  if (slot_rules_.has_on_acquire) {
    if (c.deadline.at == time_point{}) c.deadline.at = deadline_of(c);
    c.where = claim_node::phase::acquiring;
    c.acquiring_on = &s;
    queue_.watch(c);
    fx_->rearm = true;
  }
  handle(s, s.resume(*this, {.what = slot_event::kind::claim, .claim = &c}));
  finish(set);
}

// The claim's on_acquire failed (or its connection ended normally): it
// tries again, first in line. Should its deadline pass before another
// on_acquire lets it through, it fails saying on_acquire failed: that, not
// the pool's size, is why it got no connection.
void pool_state::retry(claim_node& c, bool after_end) {
  c.acquiring_on = nullptr;
  c.where = claim_node::phase::fresh;
  c.acquire_failed = !after_end;
  observe({.what = observation::kind::acquire_failed,
           .flag = after_end,
           .claim = c.id,
           .reason = after_end ? "the connection ended normally" : "on_acquire failed"});
  if (c.deadline.at <= now()) return complete(c, timeout_reason(c));
  if (slot* s = pick()) return serve(c, *s);
  if (no_new_claims_) return complete(c, claim_outcome::terminated);
  if (status_.status() == pool_status::failed && !policy_.wait_when_failed) {
    return complete(c, claim_outcome::pool_failed);
  }
  if (published_ && sets_.empty() && policy_.fail_fast_without_backends) {
    return complete(c, claim_outcome::no_backends);
  }
  if (!c.waited) {
    c.waited = true;
    c.waiting_since = now();
  }
  queue_.push(c, true);
  queue_.watch(c);
  fx_->rearm = true;
}

void pool_state::expire(claim_node& c) {
  if (c.where == claim_node::phase::queued) {
    queue_.remove(c);
  } else if (slot* s = std::exchange(c.acquiring_on, nullptr)) {
    handle(*s, s->resume(*this, {.what = slot_event::kind::cancel}));
  }
  complete(c, timeout_reason(c));
}

void pool_state::complete(claim_node& c, claim_outcome outcome, slot* s) {
  c.where = claim_node::phase::done;
  queue_.unwatch(c);
  const double waited =
      c.waited ? std::chrono::duration<double>(now() - c.waiting_since).count() : 0.0;
  claim_wait_.record(waited);
  if (outcome == claim_outcome::served) {
    hold_begins(*s, c.id, c.site, waited);
    trace([&] {
      return observation{.what = observation::kind::claim_served,
                         .claim = c.id,
                         .slot = s->id(),
                         .set = s->set().label(),
                         .site = c.site};
    });
  } else {
    sites_.waited(sites_.index(c.site), waited);
    ++(claim_failures_.*info(outcome).counter);
    trace([&] {
      return observation{.what = observation::kind::claim_failed,
                         .claim = c.id,
                         .count = std::size_t(outcome),
                         .site = c.site};
    });
  }
  fx_->completions.push_back({&c, outcome, s, s ? s->connection() : nullptr});
}

claim_outcome pool_state::timeout_reason(const claim_node& c) const noexcept {
  // No backend at all is the bigger reason (its backend may have left).
  return c.acquire_failed && !sets_.empty() ? claim_outcome::acquire_failed : timeout_reason();
}

claim_outcome pool_state::timeout_reason() const noexcept {
  if (sets_.empty()) return claim_outcome::no_backends;
  return online_ > 0 ? claim_outcome::all_claims_used : claim_outcome::no_backends_online;
}

// ----- after a slot's event ----------------------------------------------------

void pool_state::handle(slot& s, slot_result r) {
  if (r.retry) retry(*r.retry, r.retry_after_end);
  switch (r.then) {
    case slot_result::next::ready:
      return settle(s);
    case slot_result::next::handed_over:
      return complete(*s.claim(), claim_outcome::served, &s);
    case slot_result::next::nothing:
      if (doomed(s.set()) && !is_claimed(s.state()) && s.state() != slot_state::closed) {
        close_slot(s);
      }
      return;
  }
}

// A healthy connection and no operation: the first waiting claim gets it
// (claims wait only while no slot is idle), else it becomes idle, unless
// the set is to shrink or go.
void pool_state::settle(slot& s) {
  slot_set& set = s.set();
  if (doomed(set) || set.size() > set.wanted) return close_slot(s);
  if (claim_node* c = queue_.pop_front()) return serve(*c, s);
  s.make_idle(*this);
}

// Reports a set's online and has-unclaimed changes; online changes move
// the rebalance.
void pool_state::finish(slot_set& set) {
  // A claim or a return that changes neither costs two comparisons here.
  if (set.removed || !set.unreported()) return;
  report(set);
  conform(set);
}

bool pool_state::report(slot_set& set) {
  if (!set.unreported()) return false;
  const bool online = set.online();
  const bool unclaimed = set.unclaimed() > 0;
  const bool went = online != set.reported_online;
  if (went) {
    online ? ++online_ : --online_;
    if (!online) set.offline_since = now();  // a connect's or a loss's event, not a claim's
    mark_changed(set);
    due_ |= due_status;
  }
  set.reported_online = online;
  set.reported_unclaimed = unclaimed;
  // Going online or offline is news (logged); a flip of has-unclaimed
  // alone happens on claims and returns, so only a tracer hears of it.
  observation o{.what = online ? observation::kind::set_online : observation::kind::set_offline,
                .flag = unclaimed,
                .first = went,
                .count = online_,
                .set = set.label()};
  if (went || fx_->trace) observe(std::move(o));
  return true;
}

// ----- the slot port -----------------------------------------------------------

// A connect beyond max_connecting (or behind others waiting) waits for a
// turn: it has an id, but the driver hears of it only when it starts.
op_id pool_state::start(slot& s, op_kind kind, detail::box_ptr box) {
  const op_id id = ++op_ids_;
  const bool connect = kind == op_kind::connect;
  const bool wait =
      connect && (connects_running_ >= policy_.max_connecting || connects_waiting_ > 0);
  ops_.emplace(id, op_entry{&s, connect, wait});
  if (wait) {
    connect_turns_.push_back(id);
    ++connects_waiting_;
    due_ |= due_turns;
    return id;
  }
  if (connect) ++connects_running_;
  emit_start(s, id, kind, std::move(box));
  return id;
}

bool pool_state::running(op_id op) const noexcept {
  const auto it = ops_.find(op);
  return it != ops_.end() && !it->second.waiting;
}

void pool_state::emit_start(slot& s, op_id id, op_kind kind, detail::box_ptr box) {
  fx_->starts.push_back({&s, id, kind, std::move(box),
                         kind == op_kind::connect ? s.set().target() : backend{},
                         kind == op_kind::watch ? s.connection() : nullptr});
  trace([&] {
    return observation{
        .what = observation::kind::op_started, .op = kind, .slot = s.id(), .set = s.set().label()};
  });
}

void pool_state::cancel(op_id op, bool abandon) {
  const auto it = ops_.find(op);
  if (it != ops_.end() && it->second.waiting) {  // never started: nothing to cancel
    --connects_waiting_;
    ops_.erase(it);
    return;
  }
  fx_->cancels.push_back(op);
  if (abandon && it != ops_.end()) {
    if (it->second.connect) connect_ended();
    ops_.erase(it);
  }
}

void pool_state::close(detail::box_ptr box) { fx_->closing.push_back(std::move(box)); }

// Lazy: a later wake time leaves the heap entry where it is (it fires
// early and re-arms), so a return costs no heap work.
void pool_state::arm(slot& s) {
  const auto at = s.wake_at();
  if (at && (!s.timer.queued() || *at < s.timer.at)) {
    slot_timers_.schedule(s, *at);
    fx_->rearm = true;
  }
}

void pool_state::moved(slot& s, slot_state from) {
  slot_set& set = s.set();
  set.moved(s, from);
  if (!set.removed) {
    if (is_claimed(from) != is_claimed(s.state()))
      is_claimed(from) ? --claimed_live_ : ++claimed_live_;
    if (from == slot_state::idle) {
      --idle_live_;
      if (set.unclaimed() == 0) priority_.exhausted(set);
    } else if (s.state() == slot_state::idle) {
      ++idle_live_;
      if (set.unclaimed() == 1) priority_.insert(set);
    }
  }
  trace([&] {
    return observation{.what = observation::kind::state_changed,
                       .from = from,
                       .to = s.state(),
                       .slot = s.id(),
                       .counts = set.counts(),
                       .set = set.label()};
  });
}

void pool_state::ended(slot& s, op_kind kind, verdict v, std::string_view why, duration retry) {
  slot_set& set = s.set();
  if (kind == op_kind::connect && v != verdict::cancelled) note_connect(set, v);
  if (v == verdict::ok) {
    if (kind == op_kind::connect) {
      ++set.connections.opened;
      ++connections_.opened;
      connect_time_.record(std::chrono::duration<double>(now() - s.connect_started()).count());
    }
    trace([&] {
      return observation{
          .what = observation::kind::op_succeeded, .op = kind, .slot = s.id(), .set = set.label()};
    });
    return;
  }
  if (v == verdict::cancelled) return;
  if (v == verdict::ended) {
    observe({.what = observation::kind::ended,
             .op = kind,
             .slot = s.id(),
             .set = set.label(),
             .reason = std::string(why)});
    return;
  }
  set.failures.add(now());
  kind == op_kind::connect ? ++set.connect_failures : ++set.check_failures;
  // (refused: a connect that failed permanently, observed as a failure.)
  observe({.what = observation::kind::op_failed,
           .op = kind,
           .flag = v == verdict::timed_out,
           .first = s.retries().failures() <= 1 || v == verdict::refused,
           .slot = s.id(),
           .count = v == verdict::refused ? 1u : 0u,
           .delay = retry,
           .set = set.label(),
           .reason = std::string(why)});
}

void pool_state::dropped(slot& s, bool discarded, std::string_view why) {
  slot_set& set = s.set();
  set.failures.add(now());
  ++set.check_failures;
  if (discarded) ++set.discards;
  observe({.what = discarded ? observation::kind::discarded : observation::kind::lost,
           .slot = s.id(),
           .set = set.label(),
           .reason = std::string(why)});
}

void pool_state::observe(observation o) { fx_->seen.push_back(std::move(o)); }

}  // namespace qorb::core
