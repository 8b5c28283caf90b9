// SPDX-License-Identifier: BSL-1.0
// The slot state machine:
//
//   backing_off --timer--> connecting --ok--> [ready] --> idle | claimed | closed
//        ^                    |  fail/timeout                 (the pool decides)
//        +--------------------+
//   idle --claim--> acquiring --ok--> claimed --release--> recycling --ok--> [ready]
//     |  (on_acquire)   | fail: the claim retries; recycle, then cooling
//     |                 | the claim went away: abandoned, then as a failure without a retry
//     |                 |       (holds the connection for a backoff) --timer--> [ready]
//     +--timer--> checking --ok--> [ready]
//   idle runs the connector's watch (if it has one): its end is a loss; a
//   claim, a check, a close or a retirement cancels it first.
//   checking/recycling fail, discard, lost: drop the connection, reconnect
//   (at once if it had been up for max_connection_backoff, else backing off).
//   checking/recycling/acquiring end normally (the connector says the server
//   ended the connection, e.g. an idle keep-alive close): drop it and go
//   replacing (connecting, still online) at once, counting no failure;
//   unless a check or on_acquire found it young (normal_end_min_age): then
//   as a failure.
//
// Every operation has an id; a result for another id is stale (the slot
// gave up on it) and its connection is closed.
#include "core/slot.hpp"

#include "core/environment.hpp"

#include <algorithm>
#include <chrono>

namespace qorb::core {

void slot::open(slot_port& port) { begin_connect(port); }

slot_result slot::resume(slot_port& port, slot_event ev) {
  using kind = slot_event::kind;
  switch (ev.what) {
    case kind::op_ok:
    case kind::op_failed:
      if (op_ == 0 || ev.op != op_) {
        if (ev.box) port.close(std::move(ev.box));  // an answer to an operation we gave up on
        return {};
      }
      op_ = 0;
      if (state_ == slot_state::idle) return lost(port, ev.why);  // the watch ended
      disarm(slot_timer::step);
      return finished(port, ev.what == kind::op_ok, std::move(ev.box), ev.why, ev.permanent);
    case kind::op_ended:
      if (op_ == 0 || ev.op != op_) {
        if (ev.box) port.close(std::move(ev.box));
        return {};
      }
      op_ = 0;
      disarm(slot_timer::step);
      return ended_normally(port, std::move(ev.box), ev.why);
    case kind::timer: {
      slot_result r = on_timer(port);
      if (state_ != slot_state::closed) port.arm(*this);  // the timers still armed
      return r;
    }
    case kind::claim:
      // Idle, or ready (see slot_result) and handed on within the event.
      if (state_ != slot_state::idle && state_ != slot_state::ready) return {};
      // The idle state's timers (health check, idle_timeout) stay armed:
      // firing in another state they do nothing, and a claim does not pay
      // to disarm them.
      unwatch(port);
      claim_ = ev.claim;
      if (port.rules().has_on_acquire) {
        start_check(port, slot_state::acquiring, op_kind::on_acquire);
        return {};
      }
      to(port, slot_state::claimed);
      return {slot_result::next::handed_over};
    case kind::release:
    case kind::discard:
      if (state_ != slot_state::claimed) return {};
      claim_ = nullptr;
      if (ev.what == kind::release) return recycle(port);
      port.close(std::move(conn_));
      port.closed(*this, close_reason::discarded);
      port.dropped(*this, true, ev.why);
      reconnect_after_loss(port);
      return {};
    case kind::cancel:
      // The operation keeps running until it answers (cancelled, we hope):
      // then the connection it gives back is recycled, not lost.
      if (state_ == slot_state::acquiring) {
        claim_ = nullptr;
        to(port, slot_state::abandoned);
        port.cancel(op_, false);
      }
      return {};
  }
  return {};
}

slot_result slot::finished(slot_port& port, bool ok, detail::box_ptr box, const std::string& why,
                           bool permanent) {
  const slot_rules& rules = port.rules();
  switch (state_) {
    case slot_state::connecting:
    case slot_state::replacing:
      if (ok && box) {
        port.ended(*this, op_kind::connect, verdict::ok, {}, {});
        conn_ = std::move(box);
        up_since_ = last_used_ = port.now();
        retire_why_ = close_reason::lifetime;
        retire_at_ = never;
        if (const auto life = draw_lifetime(*rules.cfg, port.random01())) {
          retire_at_ = after(port.now(), *life);
          wake(port, retire_at_, slot_timer::lifetime);
        }
        return ready(port);
      }
      {
        const bool refused = !ok && permanent;
        const duration delay = refused ? retry_.give_up(*rules.cfg, port.random01())
                                       : retry_.next(*rules.cfg, port.random01());
        port.ended(*this, op_kind::connect, refused ? verdict::refused : verdict::failed,
                   ok ? "no connection returned" : why, delay);
        to(port, slot_state::backing_off);
        wake(port, after(port.now(), delay));
      }
      return {};
    case slot_state::checking:
    case slot_state::recycling: {
      const op_kind kind = state_ == slot_state::checking ? op_kind::is_valid : op_kind::on_recycle;
      if (ok && box) {
        port.ended(*this, kind, verdict::ok, {}, {});
        conn_ = std::move(box);
        return ready_or_hold(port);
      }
      if (box) port.close(std::move(box));
      port.closed(*this, kind == op_kind::is_valid ? close_reason::check_failed
                                                   : close_reason::recycle_failed);
      port.ended(*this, kind, verdict::failed, why, {});
      reconnect_after_loss(port);
      return {};
    }
    case slot_state::acquiring:
    case slot_state::abandoned:
      return acquire_over(port, ok, std::move(box), why, false);
    default:
      if (box) port.close(std::move(box));
      return {};
  }
}

// A hook said the server ended the connection normally: it is replaced at
// once and the backend stays online; the claim on_acquire ran for is served
// by another connection. Seen by a health check or on_acquire on a young
// connection, it is a failure (see normal_end_min_age); seen by on_recycle
// it never is: the connection served a claim, so the reconnects it costs
// are bounded by the claims (a server that answers `Connection: close`).
slot_result slot::ended_normally(slot_port& port, detail::box_ptr box, const std::string& why) {
  const set_config& cfg = *port.rules().cfg;
  const bool watched = state_ == slot_state::idle;  // the watch saw the end
  if (watched) {
    if (port.now() - up_since_ < std::min(normal_end_min_age, cfg.max_connection_backoff)) {
      return lost(port, why + " (right after it connected: too young)");
    }
    box = std::move(conn_);
    disarm(slot_timer::idle);
  } else if (state_ != slot_state::checking && state_ != slot_state::recycling &&
             state_ != slot_state::acquiring && state_ != slot_state::abandoned) {
    return finished(port, false, std::move(box), why);  // a connect cannot end normally
  }
  const duration up = port.now() - up_since_;
  const bool judged_by_age = state_ != slot_state::recycling || port.rules().recycle_is_is_valid;
  if (judged_by_age && up < std::min(normal_end_min_age, cfg.max_connection_backoff)) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(up).count();
    return finished(port, false, std::move(box),
                    why + " (" + std::to_string(ms) + " ms after it connected: too young)");
  }
  if (box) port.close(std::move(box));
  port.closed(*this, close_reason::ended);
  const op_kind kind = watched                           ? op_kind::watch
                       : state_ == slot_state::checking  ? op_kind::is_valid
                       : state_ == slot_state::recycling ? op_kind::on_recycle
                                                         : op_kind::on_acquire;
  slot_result result;
  result.retry = std::exchange(claim_, nullptr);
  result.retry_after_end = result.retry != nullptr;
  port.ended(*this, kind, verdict::ended, why, {});
  // On its way back from a failed on_acquire the slot was to hold its
  // connection for a backoff: an end found then keeps that backoff (else a
  // backend whose connections end at once would be reconnected at once,
  // around the storm guard).
  if (state_ == slot_state::recycling && hold_until_ != time_point{} && hold_until_ > port.now()) {
    reconnect_in(port, hold_until_ - port.now());
    return result;
  }
  if (up >= cfg.max_connection_backoff) retry_.reset();
  hold_until_ = {};
  begin_connect(port, slot_state::replacing);
  return result;
}

slot_result slot::acquire_over(slot_port& port, bool ok, detail::box_ptr box, std::string_view why,
                               bool timed_out) {
  claim_node* claim = std::exchange(claim_, nullptr);
  if (ok && box && claim) {
    claim_ = claim;
    conn_ = std::move(box);
    port.ended(*this, op_kind::on_acquire, verdict::ok, {}, {});
    to(port, slot_state::claimed);
    return {slot_result::next::handed_over};
  }
  slot_result result;
  duration delay = duration::zero();
  if (!claim) {
    // The claim went away while on_acquire ran: no fault of the backend's.
    port.ended(*this, op_kind::on_acquire, verdict::cancelled, {}, {});
  } else {
    result.retry = claim;
    // Repeated failures back off: the slot holds its connection, unclaimed,
    // for as long as a reconnect would wait.
    delay = loss_delay(port);
    port.ended(*this, op_kind::on_acquire, timed_out ? verdict::timed_out : verdict::failed, why,
               delay);
  }
  if (!box) {
    // Timed out: the operation still holds the connection. Start over.
    port.closed(*this, close_reason::check_failed);
    reconnect_in(port, delay);
    return result;
  }
  hold_until_ = after(port.now(), delay);
  conn_ = std::move(box);
  result.then = recycle(port).then;
  return result;
}

slot_result slot::timed_out(slot_port& port) {
  const set_config& cfg = *port.rules().cfg;
  switch (state_) {
    case slot_state::backing_off:
      begin_connect(port);
      return {};
    case slot_state::cooling:
      return ready(port);
    case slot_state::idle:  // time for a health check
      unwatch(port);
      start_check(port, slot_state::checking, op_kind::is_valid);
      return {};
    case slot_state::connecting:
    case slot_state::replacing: {
      port.cancel(std::exchange(op_, 0), true);
      const duration delay = retry_.next(cfg, port.random01());
      port.ended(*this, op_kind::connect, verdict::timed_out, "timed out", delay);
      to(port, slot_state::backing_off);
      wake(port, after(port.now(), delay));
      return {};
    }
    case slot_state::checking:
    case slot_state::recycling:
      port.cancel(std::exchange(op_, 0), true);
      port.closed(*this, state_ == slot_state::checking ? close_reason::check_failed
                                                        : close_reason::recycle_failed);
      port.ended(*this, state_ == slot_state::checking ? op_kind::is_valid : op_kind::on_recycle,
                 verdict::timed_out, "timed out", {});
      reconnect_after_loss(port);
      return {};
    case slot_state::acquiring:
    case slot_state::abandoned:
      port.cancel(std::exchange(op_, 0), true);
      return acquire_over(port, false, nullptr, "timed out", true);
    default:
      return {};
  }
}

// (A connection past its lifetime or evicted is retired by ready(); with
// on_recycle, before the check, which it would not need.)
slot_result slot::recycle(slot_port& port) {
  if (port.rules().has_on_recycle) {
    if (retire_due(port)) return retire(port);
    start_check(port, slot_state::recycling, op_kind::on_recycle);
    return {};
  }
  return ready_or_hold(port);
}

slot_result slot::ready_or_hold(slot_port& port) {
  if (hold_until_ != time_point{} && hold_until_ > port.now()) {
    to(port, slot_state::cooling);
    wake(port, hold_until_);
    return {};
  }
  return ready(port);
}

void slot::make_idle(slot_port& port) {
  // Back from a claim (not from a health check or a hold): used now. The
  // clock is read only for idle_timeout: a return must not pay for it.
  const bool returned = counted_ == slot_state::claimed || counted_ == slot_state::recycling;
  to(port, slot_state::idle);
  const slot_rules& rules = port.rules();
  if (rules.cfg->idle_timeout) {
    if (returned) last_used_ = port.now();
    wake(port, after(last_used_, *rules.cfg->idle_timeout), slot_timer::idle);
  }
  if (rules.has_is_valid && rules.cfg->health_interval) {
    // Two saturating steps: either may be duration::max() ("never").
    wake(port, after(after(port.now(), *rules.cfg->health_interval),
                     scaled(rules.cfg->spread, port.random01())));
  }
  if (rules.has_watch && op_ == 0) op_ = port.start(*this, op_kind::watch, nullptr);
}

void slot::close(slot_port& port, close_reason why) {
  if (holds_connection()) port.closed(*this, why);
  if (op_ != 0) port.cancel(std::exchange(op_, 0), true);
  if (conn_) port.close(std::move(conn_));
  claim_ = nullptr;
  timers_.fill(never);
  retire_at_ = never;
  to(port, slot_state::closed);
}

void slot::begin_connect(slot_port& port, slot_state st) {
  // A new connection is coming: the old one's timers and lifetime are over
  // (a health check still armed from before a claim, too: connect_began
  // arms the connect's own bound).
  disarm(slot_timer::step);
  disarm(slot_timer::lifetime);
  disarm(slot_timer::idle);
  retire_at_ = never;
  to(port, st);
  op_ = port.start(*this, op_kind::connect, nullptr);
  if (port.running(op_)) connect_began(port);  // else when its turn comes
}

void slot::connect_began(slot_port& port) {
  connect_began_ = port.now();
  if (const auto& limit = port.rules().cfg->connect_timeout) wake(port, after(port.now(), *limit));
}

void slot::start_check(slot_port& port, slot_state st, op_kind kind) {
  to(port, st);
  op_ = port.start(*this, kind, std::move(conn_));
  wake(port, after(port.now(), port.rules().cfg->health_check_timeout));
}

void slot::reconnect_in(slot_port& port, duration delay) {
  hold_until_ = {};
  if (delay <= duration::zero()) {
    begin_connect(port);
    return;
  }
  to(port, slot_state::backing_off);
  wake(port, after(port.now(), delay));
}

void slot::wake(slot_port& port, time_point at, slot_timer t) {
  timers_[std::size_t(t)] = at;
  port.arm(*this);
}

slot_result slot::ready(slot_port& port) {
  if (retire_due(port)) return retire(port);
  to(port, slot_state::ready);
  return {slot_result::next::ready};
}

void slot::to(slot_port& port, slot_state st) {
  state_ = st;
  if (st == slot_state::ready || st == counted_) return;
  const slot_state from = counted_;
  counted_ = st;
  port.moved(*this, from);
}

}  // namespace qorb::core
