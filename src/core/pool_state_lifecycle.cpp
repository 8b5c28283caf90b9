// SPDX-License-Identifier: BSL-1.0
// pool_state, continued: the pool's life — idle connections closed when
// spare too long, evict_all, a drain, a new policy, connects taking turns
// under max_connecting, and the pool's status (status_tracker decides it).
#include "core/pool_state.hpp"
#include "core/pool_state_event.hpp"

#include <algorithm>

namespace qorb::core {

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
  rebalancer_.lower_to(policy_, demand);
  return true;
}

void pool_state::evict_all(effects& fx) {
  in_event(
      fx, [&]() __attribute__((always_inline)) {
        if (terminated_) return;
        for (const auto& [name, set] : sets_) {
          set->for_each([&](slot& s) { handle(s, s.evict(*this)); });
          finish(*set);
        }
      });
}

void pool_state::begin_drain(effects& fx) {
  in_event(
      fx, [&]() __attribute__((always_inline)) {
        if (terminated_ || drain_) return;
        drain_ = true;
        no_new_claims_ = true;
        due_ |= due_status;
        while (claim_node* c = queue_.pop_front()) complete(*c, claim_outcome::terminated);
      });
}

// The sets are planned again as by a periodic rebalance, under the new
// sizes; a cap below the slots open now is held by closing idle slots now
// and busy ones as they settle (cap() says how far above it the pool is).
void pool_state::set_policy(const policy& p, effects& fx) {
  in_event(
      fx, [&]() __attribute__((always_inline)) {
        if (terminated_) return;
        cap_ = total_slots_;
        policy_ = p;
        time_holds_ = p.time_holds || p.hold_warning;
        holds_.rewind();  // a new hold_warning looks at every hold not warned about
        fx.rearm = true;
        rebalance_at_ = after(now(), p.rebalance_interval);
        due_ |= due_status;
        rebalance(true);
        make_room();
        due_ |= due_turns;  // max_connecting may have grown
      });
}

// (Claims out are counted over the removed sets still draining: those
// already forgotten had none.)
void pool_state::lifecycle_due() {
  if (due_ & due_turns) start_connect_turns();  // connects waiting under max_connecting
  if (due_ & due_status) update_status();       // the pool's status, a drain's end
}

void pool_state::start_connect_turns() {
  while (connects_running_ < policy_.max_connecting && !connect_turns_.empty()) {
    const op_id id = connect_turns_.front();
    connect_turns_.pop_front();
    const auto it = ops_.find(id);
    if (it == ops_.end() || !it->second.waiting) continue;  // cancelled while it waited
    it->second.waiting = false;
    --connects_waiting_;
    ++connects_running_;
    slot& s = *it->second.s;
    emit_start(s, id, op_kind::connect, nullptr);
    s.connect_began(*this);
  }
  if (connects_waiting_ == 0) connect_turns_.clear();
  due_ &= std::uint8_t(~due_turns);  // until a connect ends with others waiting
}

void pool_state::note_connect(slot_set& set, verdict v) {
  const bool failing = v != verdict::ok;
  const bool refused = v == verdict::refused;
  if (!set.removed) {
    if (failing != set.connect_failing) failing ? ++failing_sets_ : --failing_sets_;
    if (refused != set.connect_refused) refused ? ++refused_sets_ : --refused_sets_;
  }
  set.connect_failing = failing;
  set.connect_refused = refused;
  due_ |= due_status;
}

// A drain watches every event until its claims are back.
void pool_state::update_status() {
  const std::size_t out = claims_out();
  const bool watching_drain = drain_ && !drain_reported_;
  due_ &= std::uint8_t(~due_status);
  if (watching_drain) due_ |= due_status;
  if (watching_drain && out == 0) {
    drain_reported_ = true;
    due_ &= std::uint8_t(~due_status);
    observe({.what = observation::kind::drained});
  }
  const status_inputs in{online_,       sets_.size(),           failing_sets_,
                         refused_sets_, drain_ && !terminated_, terminated_,
                         out > 0};
  if (const auto was = status_.update(policy_, in, now())) {
    observe({.what = observation::kind::status_changed,
             .status_from = *was,
             .status_to = status_.status(),
             .seq = ++status_seq_});
    if (status_.status() == pool_status::failed && !policy_.wait_when_failed) {
      while (claim_node* c = queue_.pop_front()) complete(*c, claim_outcome::pool_failed);
    }
  }
  auto at = status_.deadline(policy_);
  // Past it, what could still make the pool failed is a connect's failure:
  // an event of its own (no timer needed).
  if (at && *at <= now()) at.reset();
  if (at != status_at_) {
    status_at_ = at;
    fx_->rearm = true;
  }
}

}  // namespace qorb::core
