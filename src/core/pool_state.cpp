// SPDX-License-Identifier: BSL-1.0
// The pool's decisions. Every public event runs in in_event, which points
// the slot port at the event's effects, runs the event's own steps, then
// the named steps of end_event: room freed under max_slots goes to the sets
// waiting for it, a rebalance if the demand or the online backends changed,
// drained sets are forgotten, the lifecycle's due work (connect turns
// under max_connecting, the status, a drain's end) is done, and the slots
// closed during the event are freed.
#include "core/pool_state.hpp"
#include "core/pool_state_event.hpp"

#include <algorithm>
#include <cassert>
#include <type_traits>
#include <utility>

namespace qorb::core {

// What an event may have made due, in this order. A claim or a return
// usually leaves nothing to do: each step is checked here before it is
// taken, so that case costs a few comparisons.
void pool_state::end_event() {
  if (!terminated_) {
    make_room();                                   // 1. room freed under max_slots
    if (rebalance_due()) rebalance_after_event();  // 2. demand or online backends changed
  }
  if (!draining_.empty()) forget_drained_sets();  // 3. removed sets whose slots all came back
  if (due_) lifecycle_due();                      // 4. connect turns, the status, a drain's end
  if (!graveyard_.empty()) graveyard_.clear();    // 6. the slots closed during the event
  now_.reset();
  fx_ = nullptr;
  // The cap, after every event (debug builds; the simulator checks it in all).
  assert(total_slots_ <= cap());
}

bool pool_state::rebalance_due() {
  return !changed_.empty() ||
         !rebalancer_.quiet(claimed_live_, queue_.size(), online_, sets_.size() - online_);
}

void pool_state::rebalance_after_event() {
  rebalance(false);
  make_room();
}

void pool_state::forget_drained_sets() {
  std::erase_if(draining_, [](const auto& set) { return set->size() == 0; });
}

pool_state::pool_state(const policy& p, connector_traits traits, environment& env)
    : slot_port(slot_rules_),  // (its address only: set just below)
      policy_(p),
      slot_rules_{&policy_.set_config,   traits.has_is_valid,        traits.has_on_acquire,
                  traits.has_on_recycle, traits.recycle_is_is_valid, traits.has_watch},
      env_(env),
      status_(env.now()),
      rebalance_at_(after(env.now(), p.rebalance_interval)) {
  status_at_ = status_.deadline(policy_);
  time_holds_ = p.time_holds || p.hold_warning;
}

pool_state::~pool_state() {
  // Slots left (claimed at destruction) belong to nobody now.
  for_each_set([](const slot_set& set) { set.for_each([](slot& s) { delete &s; }); });
}

time_point pool_state::now() {
  if (!now_) now_ = env_.now();
  return *now_;
}

// ----- events ------------------------------------------------------------------

void pool_state::backends_changed(const backend_map& backends, effects& fx) {
  in_event(
      fx, [&]() __attribute__((always_inline)) {
        if (terminated_) return;
        published_ = true;
        for (auto it = sets_.begin(); it != sets_.end();) {
          auto found = backends.find(it->first);
          if (found == backends.end() || !(found->second == it->second->target())) {
            remove_set(it++);
          } else {
            ++it;
          }
        }
        for (const auto& [name, b] : backends) {
          if (!sets_.contains(name)) add_set(name, b);
        }
        fail_fast_if_none();
      });
}

// The same outcome as publishing the changed set whole, at the cost of the
// change: a resolver with 20,000 backends whose one key changes must not
// make every claim on the pool wait for a pass over all of them.
void pool_state::backends_delta(const backend_map& added, const std::vector<std::string>& removed,
                                effects& fx) {
  in_event(
      fx, [&]() __attribute__((always_inline)) {
        if (terminated_) return;
        published_ = true;
        for (const auto& name : removed) {
          if (auto it = sets_.find(name); it != sets_.end()) remove_set(it);
        }
        // Every removal before any addition, as for a whole set: room a moved
        // backend frees is there for the backends added with it.
        for (const auto& [name, b] : added) {
          if (auto it = sets_.find(name); it != sets_.end() && !(it->second->target() == b)) {
            remove_set(it);
          }
        }
        for (const auto& [name, b] : added) {
          if (!sets_.contains(name)) add_set(name, b);
        }
        fail_fast_if_none();
      });
}

void pool_state::add_set(const std::string& name, const backend& b) {
  // 2 x max_connection_backoff, saturating (it may be duration::max()).
  const duration backoff = policy_.set_config.max_connection_backoff;
  const duration window = backoff > duration::max() / 2 ? duration::max() : 2 * backoff;
  auto set = std::make_unique<slot_set>(next_set_id_++, b, window);
  set->priority.score = priority_list::jitter * env_.random01();
  want(*set, 1);  // a probe; the rebalance after the event gives it its share
  // Offline until a connect succeeds (explain() says for how long).
  set->offline_since = env_.now();
  slot_set& ref = *set;
  sets_.emplace(name, std::move(set));
  observe({.what = observation::kind::backend_added, .set = ref.label()});
  due_ |= due_status;
  mark_changed(ref);
  grow(ref);
}

void pool_state::fail_fast_if_none() {
  if (sets_.empty() && policy_.fail_fast_without_backends) {
    while (claim_node* c = queue_.pop_front()) complete(*c, claim_outcome::no_backends);
  }
}

void pool_state::claim(claim_node& c, effects& fx) {
  in_event(
      fx, [&]() __attribute__((always_inline)) {
        c.id = ++claim_ids_;
        trace([&] {
          return observation{
              .what = observation::kind::claim_started, .claim = c.id, .site = c.site};
        });
        if (no_new_claims_) return complete(c, claim_outcome::terminated);
        if (published_ && sets_.empty() && policy_.fail_fast_without_backends) {
          return complete(c, claim_outcome::no_backends);
        }
        if (slot* s = pick()) return serve(c, *s);
        if (status_.status() == pool_status::failed && !policy_.wait_when_failed) {
          return complete(c, claim_outcome::pool_failed);
        }
        c.deadline.at = deadline_of(c);
        if (c.deadline.at <= now()) return complete(c, timeout_reason());
        c.waited = true;
        c.waiting_since = now();
        trace([&] { return observation{.what = observation::kind::claim_queued, .claim = c.id}; });
        queue_.push(c, false);
        queue_.watch(c);
        fx_->rearm = true;
      });
}

slot* pool_state::try_claim(effects& fx, bool quiet, const std::source_location& site) {
  return in_event(
      fx, [&]() __attribute__((always_inline))->slot * {
        slot* s = no_new_claims_ || slot_rules_.has_on_acquire ? nullptr : pick();
        if (!s && quiet) return nullptr;  // not a claim: the caller claims next
        const std::uint64_t id = ++claim_ids_;
        trace([&] {
          return observation{.what = observation::kind::claim_started, .claim = id, .site = site};
        });
        if (!s) {
          trace([&] {
            return observation{.what = observation::kind::claim_failed,
                               .claim = id,
                               .reason = "no idle connection (try_claim)",
                               .site = site};
          });
          return nullptr;
        }
        claim_wait_.record(0.0);
        hold_begins(*s, id, site, 0.0);
        priority_.served(s->set());
        ++s->set().total_claims;
        ++total_claims_;
        // No claim node: the caller holds the slot from here (handed over).
        s->resume(*this, {.what = slot_event::kind::claim});
        finish(s->set());
        trace([&] {
          return observation{.what = observation::kind::claim_served,
                             .claim = id,
                             .slot = s->id(),
                             .set = s->set().label(),
                             .site = site};
        });
        return s;
      });
}

void pool_state::cancel(claim_node& c, effects& fx) {
  in_event(
      fx, [&]() __attribute__((always_inline)) {
        if (c.where == claim_node::phase::queued) {
          queue_.remove(c);
        } else if (c.where == claim_node::phase::acquiring) {
          slot* s = std::exchange(c.acquiring_on, nullptr);
          handle(*s, s->resume(*this, {.what = slot_event::kind::cancel}));
        } else {
          return;  // completed already, or not submitted
        }
        complete(c, claim_outcome::cancelled);
      });
}

void pool_state::release(slot& s, bool discard, effects& fx, std::string_view why) {
  in_event(
      fx, [&]() __attribute__((always_inline)) {
        trace([&] {
          return observation{.what = observation::kind::handle_returned,
                             .flag = discard,
                             .slot = s.id(),
                             .set = s.set().label()};
        });
        hold_ends(s);
        slot_set& set = s.set();
        if (doomed(set)) {
          close_slot(s);
          due_ |= due_status;  // the last claim back: stopped
          return;
        }
        // (No text for a plain return: a string here would cost every return an
        // allocation.)
        handle(s, discard
                      ? s.resume(*this, {.what = slot_event::kind::discard,
                                         .why = why.empty() ? std::string("discarded by its handle")
                                                            : std::string(why)})
                      : s.resume(*this, {.what = slot_event::kind::release}));
        finish(set);
      });
}

void pool_state::op_finished(op_id op, bool ok, detail::box_ptr box, std::string why, effects& fx,
                             bool permanent) {
  in_event(
      fx, [&]() __attribute__((always_inline)) {
        const auto it = ops_.find(op);
        if (it == ops_.end()) {
          if (box) close(std::move(box));  // an operation given up on
          return;
        }
        slot& s = *it->second.s;
        if (it->second.connect) connect_ended();
        ops_.erase(it);
        slot_set& set = s.set();
        handle(s,
               s.resume(*this, {.what = ok ? slot_event::kind::op_ok : slot_event::kind::op_failed,
                                .op = op,
                                .box = std::move(box),
                                .why = std::move(why),
                                .permanent = permanent}));
        finish(set);
      });
}

void pool_state::op_ended(op_id op, detail::box_ptr box, std::string why, effects& fx) {
  in_event(
      fx, [&]() __attribute__((always_inline)) {
        const auto it = ops_.find(op);
        if (it == ops_.end()) {
          if (box) close(std::move(box));
          return;
        }
        slot& s = *it->second.s;
        if (it->second.connect) connect_ended();
        ops_.erase(it);
        slot_set& set = s.set();
        handle(s, s.resume(*this, {.what = slot_event::kind::op_ended,
                                   .op = op,
                                   .box = std::move(box),
                                   .why = std::move(why)}));
        finish(set);
      });
}

void pool_state::failure_reported(slot& s, std::string_view why, effects& fx) {
  in_event(
      fx, [&]() __attribute__((always_inline)) { count_report(s, why); });
}

void pool_state::count_report(slot& s, std::string_view why) {
  slot_set& set = s.set();
  set.failures.add(now());
  ++set.check_failures;
  ++set.failures_reported;
  observe(
      {.what = observation::kind::reported,
       .slot = s.id(),
       .set = set.label(),
       .reason = why.empty() ? std::string("a failure reported by its handle") : std::string(why)});
}

void pool_state::op_reported(op_id op, detail::box_ptr box, std::string why, effects& fx) {
  if (const auto it = ops_.find(op); it != ops_.end() && !it->second.connect) {
    in_event(
        fx, [&]() __attribute__((always_inline)) { count_report(*it->second.s, why); });
  }
  op_finished(op, true, std::move(box), {}, fx);
}

void pool_state::timer_fired(effects& fx) {
  in_event(
      fx, [&]() __attribute__((always_inline)) {
        fx.rearm = true;  // the driver's timer has fired: it needs the next one
        const time_point t = now();
        // Bounded: each pass handles what is due now; what an event re-arms is
        // always later than now.
        for (std::size_t budget = queue_.size() + ops_.size() + 64; budget-- > 0;) {
          claim_node* c = queue_.expired(t);
          if (!c) break;
          expire(*c);
        }
        for (std::size_t budget = slot_timers_.size() + 64; budget-- > 0;) {
          slot* s = slot_timers_.top();
          if (!s || slot_timers_.top_time() > t) break;
          slot_timers_.cancel(*s);
          const auto at = s->wake_at();
          if (!at) continue;
          if (*at > t) {
            slot_timers_.schedule(*s, *at);
            continue;
          }
          slot_set& set = s->set();
          handle(*s, s->resume(*this, {.what = slot_event::kind::timer}));
          finish(set);
        }
        if (status_at_ && *status_at_ <= t) due_ |= due_status;
        warn_long_holds();
        if (!terminated_ && rebalance_at_ && *rebalance_at_ <= t) {
          rebalance_at_ = after(t, policy_.rebalance_interval);
          for (const auto& [name, set] : sets_) {
            set->priority.score =
                double(set->failures.count(t)) + priority_list::jitter * env_.random01();
          }
          priority_.rescored();
          rebalance(true);
        }
      });
}

bool pool_state::terminate(effects& fx) {
  return in_event(
      fx, [&]() __attribute__((always_inline)) {
        if (terminated_) return false;
        terminated_ = true;
        no_new_claims_ = true;
        due_ |= due_status;
        rebalance_at_.reset();
        observe({.what = observation::kind::terminating});
        while (claim_node* c = queue_.pop_front()) complete(*c, claim_outcome::terminated);
        while (!sets_.empty()) remove_set(sets_.begin());
        // Claims whose on_acquire runs lose their slot now.
        for (const auto& set : draining_) {
          set->for_each([&](slot& s) {
            if (s.state() != slot_state::acquiring && s.state() != slot_state::abandoned) return;
            if (claim_node* c = s.claim()) {
              c->acquiring_on = nullptr;
              complete(*c, claim_outcome::terminated);
            }
            close_slot(s);
          });
        }
        assert(short_.empty());  // remove_set took every set out of it
        changed_.clear();
        return true;
      });
}

std::optional<time_point> pool_state::next_wakeup() const noexcept {
  std::optional<time_point> next = queue_.next_deadline();
  auto earlier = [&](time_point t) {
    if (!next || t < *next) next = t;
  };
  if (!slot_timers_.empty()) earlier(slot_timers_.top_time());
  if (rebalance_at_) earlier(*rebalance_at_);
  if (status_at_) earlier(*status_at_);
  if (const auto hold = holds_.next_warning(policy_.hold_warning)) earlier(*hold);
  return next;
}

}  // namespace qorb::core
