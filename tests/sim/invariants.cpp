// SPDX-License-Identifier: BSL-1.0
// The simulator's invariants (invariants.hpp): what core::pool_state
// promises, checked after every call into it (unless said otherwise), each
// by a function named after it. A failure gives the invariant's name; that
// name is what `qorb_sim --skip NAME` takes. The driver is punctual (it
// fires timer_fired at every next_wakeup, never later), which the timing
// checks rely on. docs/architecture.md lists the same names.
//
// The caps and counts (the scan after every call):
//   max_slots                     slots in all sets <= max_slots
//   total_slots                   total_slots() counts the slots in the sets
//   max_count                     no set holds more than set_config.max_count slots
//   set_counts                    a set's size(), count(state) and idle list match its slots
//   slot_consistent               a slot runs an operation iff connecting/replacing/checking/
//                                 acquiring/abandoned/recycling, holds a connection iff
//                                 idle/claimed/cooling; none is ready between events
//   removed_sets_only_drain       a removed backend keeps only its claimed/acquiring/abandoned
//                                 slots
//   connections_accounted         every open connection is held by a slot or an operation
//   ops_accounted                 ops_running() is no more than the operations outstanding
//   max_connecting                connects in flight <= max_connecting (or what ran when
//                                 set_policy lowered it); the core's count is the driver's
//   status_order                  status changes are numbered in order, each from the last
//   connections_counted           stats' connections opened minus closed (by every reason) is
//                                 the connections slots hold (themselves or in an operation)
// Connections and operations:
//   connections_closed_by_driver  the core never destroys a connection: it hands it to close()
//   observations_complete         traced, each started operation has its op_started, same slot
//   closed_slot_ops_cancelled     an operation started on a slot closed in the same call is
//                                 cancelled
//   time_bounds                   no check outlives health_check_timeout, no connect
//                                 connect_timeout, without being cancelled
//   backoff_bounds                a reconnect after a failed connect comes within [min, max +
//                                 spread); after a loss, at once if the connection had lived
//                                 max_connection_backoff, else within that range
//   normal_end                    a normal end (errc::connection_ended) of a connection younger
//                                 than min(1 s, max_connection_backoff) is a failure, unless
//                                 on_recycle saw it
//   health_check_timing           is_valid on an idle connection health_interval (+ a share of
//                                 spread) after it became idle
//   rearm_when_earlier            next_wakeup moves earlier only in an event that sets rearm
//   timer_fired_progresses        timer_fired makes progress: next_wakeup leaves now
// Claims:
//   claim_completes_once          a claim completes once, never twice; all exactly once at the end
//   claim_deadline                never after the deadline (submit + timeout, or claim_timeout
//                                 when 0); timeouts exactly at it; nothing pending past it;
//                                 next_wakeup no later than the earliest deadline
//   claim_reason                  served; cancelled only by our cancel; terminated only after
//                                 terminate; no_backends when none is published, else
//                                 acquire_failed when an on_acquire failed for it last, else
//                                 all_claims_used when a live set was online, else
//                                 no_backends_online
//   claim_tracked                 a pending claim is queued or acquiring; waiting() is the
//                                 claims queued; one back in the queue had an acquire_failed
//   served_slot_exists            a served claim gets a claimed slot's connection, its own
//   served_from_live_set          from a live backend (or the one its on_acquire ran on)
//   one_claim_per_connection      no slot or connection is held by two live claims
//   claimed_slot_stays            a held slot stays in its set, claimed, by its holder
//   holders_are_claims            holders() lists every claimed slot once, oldest hold first
//   hold_warning_once             a hold_warning names a held slot, at exactly hold_warning
//                                 after its claim, once per claim
//   try_claim                     try_claim gives a claimed slot, never with on_acquire
//   fifo                          a claim is not served while an earlier one still waits (one
//                                 whose on_acquire failed goes first, the latest first)
//   prefer_idle                   a live set with an idle slot means nobody waits; a new claim
//                                 or try_claim takes an idle slot when one exists
//   fail_fast                     with fail_fast_without_backends, nobody waits while the
//                                 published set is empty; claims then fail with no_backends
//   grow_when_room                a set short of its wanted count waits only for room
//   budget                        the live sets want min(claimed + waiting + max(spares,
//                                 min_idle),
//                                 max_slots), as far as they can take it
// Terminate and the end of a run:
//   terminate_once                terminate says "first" once, the first time
//   terminate_completes           after terminate no claim is pending
//   nothing_starts_after_terminate  no operation starts after terminate
//   drain_ends                    operations stop starting after terminate: the drain ends
//   end_no_connections            after the drain no connection is open
//   end_no_operations             ... no operation runs
//   end_no_wakeup                 ... no wakeup is due
//   end_no_slots                  ... no slot is left
//   end_no_waiters                ... no claim waits
//   stats_agree                   stats().claim_failures match what the claimers saw, and
//                                 total_claims covers the claims served
#include "sim/invariants.hpp"

#include "core/claim_outcomes.hpp"

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>

namespace qorb::sim {

using std::chrono::nanoseconds;

// ----- text ----------------------------------------------------------------------

const char* outcome_name(claim_outcome o) {
  return std::size_t(o) < core::claim_outcomes.size() ? core::info(o).name : "?";
}

std::string format(const char* fmt, ...) {
  char buf[512];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, args);
  va_end(args);
  return buf;
}

std::string slot_name(std::uint64_t id) {
  if (id == unknown_slot) return "?";
  return format("%" PRIu64 ".%" PRIu64, std::uint64_t(id >> 48),
                std::uint64_t(id & 0xffffffffffffULL));
}

std::string show(duration d) {
  if (d == duration::max()) return "forever";
  return format("%.3fms", double(std::chrono::duration_cast<nanoseconds>(d).count()) / 1e6);
}

const seen_slot* find_slot(const view& v, const core::slot* s) {
  const auto& by_address = v.mem.by_address;
  const auto it = std::lower_bound(by_address.begin(), by_address.end(),
                                   std::pair<const core::slot*, std::size_t>{s, 0});
  return it != by_address.end() && it->first == s ? &v.mem.slots[it->second] : nullptr;
}

namespace {

// ----- the backoff rules -----------------------------------------------------------

bool backoff_in_bounds(const view& v, duration d) {
  const auto& cfg = v.pol.set_config;
  if (d < cfg.min_connection_backoff) return false;
  if (cfg.spread == duration::zero()) return d <= cfg.max_connection_backoff;
  return d < cfg.max_connection_backoff + cfg.spread;
}

/// A slot's connection ended (or failed) now: the rule its reconnect follows.
retry_rule lost(const view& v, std::uint64_t slot, time_point now) {
  const auto it = v.mem.up_since.find(slot);
  const duration up = it == v.mem.up_since.end() ? duration::zero() : now - it->second;
  v.mem.up_since[slot] = now;
  retry_rule r{now, false, up >= v.pol.set_config.max_connection_backoff, up};
  v.mem.retry[slot] = r;
  return r;
}

// backoff_bounds: a failed connect's delay is within [min, max + spread).
void check_backoff_bounds_of_connect_failure(const view& v, const core::observation& o) {
  const auto& cfg = v.pol.set_config;
  if (!backoff_in_bounds(v, o.delay)) {
    v.report.fail(
        "backoff_bounds",
        format("slot %s: connect failed, delay %s outside [%s, %s + %s)", slot_name(o.slot).c_str(),
               show(o.delay).c_str(), show(cfg.min_connection_backoff).c_str(),
               show(cfg.max_connection_backoff).c_str(), show(cfg.spread).c_str()));
  }
}

// backoff_bounds: a failed on_acquire backs off like a loss (none after a long life).
void check_backoff_bounds_of_acquire_failure(const view& v, const core::observation& o,
                                             const retry_rule& r) {
  if (!(r.immediate ? o.delay == duration::zero() : backoff_in_bounds(v, o.delay))) {
    v.report.fail("backoff_bounds",
                  format("slot %s: on_acquire failed after %s up, delay %s",
                         slot_name(o.slot).c_str(), show(r.up).c_str(), show(o.delay).c_str()));
  }
}

// normal_end: a young connection's normal end is not a clean one (unless on_recycle saw it).
void check_normal_end(const view& v, const core::observation& o, const retry_rule& r) {
  const duration young =
      std::min<duration>(core::normal_end_min_age, v.pol.set_config.max_connection_backoff);
  // An end on_recycle finds is never young, unless is_valid stands in for
  // it (it cannot tell a meant close from a drop).
  const bool judged = o.op != op_kind::on_recycle || v.traits.recycle_is_is_valid;
  if (r.up < young && judged) {
    v.report.fail("normal_end",
                  format("slot %s: ended normally after %s up, younger than %s: not a failure",
                         slot_name(o.slot).c_str(), show(r.up).c_str(), show(young).c_str()));
  }
}

// health_check_timing: is_valid comes health_interval (+ a share of spread) after idle.
void check_health_check_timing(const view& v, std::uint64_t slot,
                               std::optional<time_point> idle_since, time_point now) {
  const auto& cfg = v.pol.set_config;
  if (!v.traits.has_is_valid || !cfg.health_interval) {
    v.report.fail("health_check_timing",
                  format("slot %s: a health check without is_valid and health_interval",
                         slot_name(slot).c_str()));
  }
  if (!idle_since) return;
  const duration d = now - *idle_since;
  const duration lo = *cfg.health_interval;
  if (d < lo || (d > lo && d >= lo + cfg.spread)) {
    v.report.fail("health_check_timing",
                  format("slot %s: is_valid %s after it became idle (interval %s, spread %s)",
                         slot_name(slot).c_str(), show(d).c_str(), show(lo).c_str(),
                         show(cfg.spread).c_str()));
  }
}

}  // namespace

// connections_closed_by_driver: the core hands every connection it is done with to close().
void check_connections_closed_by_driver(const view& v, std::uint64_t destroyed_in_core) {
  if (destroyed_in_core != 0) {
    v.report.fail("connections_closed_by_driver",
                  format("%" PRIu64 " connection(s) destroyed inside the core, not handed to "
                         "close()",
                         destroyed_in_core));
  }
}

// hold_warning_once: a hold_warning names a slot held now, comes exactly
// hold_warning after its claim (the driver is punctual), once per claim.
void check_hold_warning_once(const view& v, const core::observation& o) {
  const auto held = std::find_if(v.held.begin(), v.held.end(),
                                 [&](const held_conn& h) { return h.slot_id == o.slot; });
  if (held == v.held.end()) {
    v.report.fail("hold_warning_once", format("a hold warning for slot %s, which nobody holds",
                                              slot_name(o.slot).c_str()));
  }
  if (!v.pol.hold_warning || o.delay != *v.pol.hold_warning) {
    v.report.fail("hold_warning_once",
                  format("slot %s warned about after %s, the limit is %s",
                         slot_name(o.slot).c_str(), show(o.delay).c_str(),
                         v.pol.hold_warning ? show(*v.pol.hold_warning).c_str() : "none"));
  }
  if (!v.mem.warned_holds.insert({o.slot, o.claim}).second) {
    v.report.fail("hold_warning_once", format("slot %s warned about twice for claim %" PRIu64,
                                              slot_name(o.slot).c_str(), o.claim));
  }
}

void follow_observations(const view& v, const core::effects& fx, time_point now) {
  memory& m = v.mem;
  for (const auto& o : fx.seen) {
    using kind = core::observation::kind;
    switch (o.what) {
      case kind::op_succeeded:
        if (o.op == op_kind::connect) {
          m.up_since[o.slot] = now;
          m.retry.erase(o.slot);
        }
        break;
      case kind::op_failed:
        if (o.op == op_kind::connect) {
          check_backoff_bounds_of_connect_failure(v, o);
          m.retry[o.slot] = {now, true, false, {}};
        } else if (!v.traced) {
          m.retry.erase(o.slot);  // untraced: no connect successes seen, no up times
        } else {
          const retry_rule r = lost(v, o.slot, now);
          if (o.op == op_kind::on_acquire) {
            check_backoff_bounds_of_acquire_failure(v, o, r);
            m.acquire_hold[o.slot] = now + o.delay;
          }
        }
        break;
      case kind::discarded:
      case kind::lost:
        if (v.traced) {
          lost(v, o.slot, now);
        } else {
          m.retry.erase(o.slot);
        }
        break;
      case kind::acquire_failed:
        m.retried.push_back(o.claim);  // in the order the core put them back in line
        // Refused by on_acquire, or passed on because its connection
        // ended normally (flag): that is no refusal.
        if (o.flag) {
          m.refused.erase(o.claim);
        } else {
          m.refused.insert(o.claim);
        }
        break;
      case kind::ended:
        if (v.traced) {
          const retry_rule r = lost(v, o.slot, now);
          check_normal_end(v, o, r);
          // Found on the way back from a failed on_acquire: that
          // failure's backoff holds; else the connection is replaced at once.
          const auto hold = m.acquire_hold.find(o.slot);
          if (o.op == op_kind::on_recycle && hold != m.acquire_hold.end() && hold->second > now) {
            m.retry[o.slot].at = hold->second;
          } else {
            m.retry[o.slot].immediate = true;
          }
          if (hold != m.acquire_hold.end()) m.acquire_hold.erase(hold);
        } else {
          m.retry.erase(o.slot);
        }
        break;
      case kind::state_changed:
        if (o.from == slot_state::idle) {
          const auto it = m.idle_since.find(o.slot);
          if (o.to == slot_state::checking)
            check_health_check_timing(
                v, o.slot, it == m.idle_since.end() ? std::nullopt : std::optional(it->second),
                now);
          if (it != m.idle_since.end()) m.idle_since.erase(it);
        }
        if (o.to == slot_state::idle) m.idle_since[o.slot] = now;
        break;
      case kind::hold_warning:
        check_hold_warning_once(v, o);
        break;
      default:
        break;
    }
  }
}

// observations_complete: traced, each start has its op_started; untraced, none has.
void check_observations_complete_count(const view& v, const core::effects& fx,
                                       std::size_t observed) {
  if (v.traced ? observed != fx.starts.size() : observed != 0) {
    v.report.fatal("observations_complete",
                   format("%zu operations started, %zu op_started observations%s", fx.starts.size(),
                          observed, v.traced ? "" : " (untraced)"));
  }
}

// nothing_starts_after_terminate: a terminated core starts no operation.
void check_nothing_starts_after_terminate(const view& v, const core::effects& fx) {
  if (!fx.starts.empty() && v.state.terminated()) {
    v.report.fail("nothing_starts_after_terminate",
                  format("%s started after terminate", core::to_string(fx.starts.front().kind)));
  }
}

// observations_complete: an operation's op_started names the slot it started on.
void check_observations_complete_slot(const view& v, core::op_id id, std::uint64_t slot,
                                      std::uint64_t observed) {
  if (observed != slot) {
    v.report.fatal("observations_complete",
                   format("op %" PRIu64 " started on slot %s, observed on %s", id,
                          slot_name(slot).c_str(), slot_name(observed).c_str()));
  }
}

// watch_borrows_idle: a watch starts on an idle slot, borrowing its
// connection (the slot keeps it).
void check_watch_borrows_idle(const view& v, const core::op_start& st, const core::slot* alive) {
  if (st.kind != op_kind::watch) return;
  if (st.box || !st.watched) {
    v.report.fail("watch_borrows_idle",
                  format("watch %" PRIu64 " took the connection or was given none", st.id));
  }
  if (alive && alive->state() == core::slot_state::idle && alive->connection() != st.watched) {
    v.report.fail("watch_borrows_idle",
                  format("watch %" PRIu64 " watches another connection than its slot's", st.id));
  }
}

// lost_never_handed_out: when a running watch ends, its connection is
// closed in that call and no claim is served with it. cancelled_watch_no_loss:
// a cancelled watch's late answer counts no loss and closes nothing.
void check_watch_end(const view& v, const call_ctx& ctx, const core::effects& fx) {
  if (ctx.kind != call_kind::lost) return;
  if (ctx.stale_watch) {
    for (const auto& o : fx.seen) {
      if (o.what == core::observation::kind::lost ||
          (o.what == core::observation::kind::ended && o.op == op_kind::watch)) {
        v.report.fail("cancelled_watch_no_loss", "a cancelled watch's answer was counted");
      }
    }
    return;
  }
  if (!ctx.watched) return;
  for (const auto& c : fx.completions) {
    if (c.box == ctx.watched) {
      v.report.fail("lost_never_handed_out", "a claim was served the connection its watch lost");
    }
  }
  bool closed = false;
  for (const auto& b : fx.closing) closed = closed || b.get() == ctx.watched;
  if (!closed) {
    v.report.fail("lost_never_handed_out", "the connection a watch lost was not closed");
  }
}

// closed_slot_ops_cancelled: an operation whose slot closed in the same call is cancelled.
void check_closed_slot_ops_cancelled(const view& v, const core::effects& fx,
                                     const core::op_start& st) {
  if (std::find(fx.cancels.begin(), fx.cancels.end(), st.id) == fx.cancels.end()) {
    v.report.fail(
        "closed_slot_ops_cancelled",
        format("op %" PRIu64 " (%s) started on a slot closed in the same call, not cancelled",
               st.id, core::to_string(st.kind)));
  }
}

// backoff_bounds: a connect comes when the rule its slot's last end set says.
void check_backoff_bounds_on_connect(const view& v, std::uint64_t slot, time_point now) {
  memory& m = v.mem;
  m.acquire_hold.erase(slot);  // a new connection: the old one's hold is over
  const auto it = m.retry.find(slot);
  if (it == m.retry.end()) return;
  const retry_rule r = it->second;
  m.retry.erase(it);
  const duration d = now - r.since;
  const auto& cfg = v.pol.set_config;
  const char* bad = nullptr;
  if (r.connect_failed) {
    if (!backoff_in_bounds(v, d))
      bad = "a reconnect after a failed connect outside [min, max + spread)";
  } else if (r.at) {
    if (now != *r.at)
      bad = "an end after a failed on_acquire not reconnected when its backoff ends";
  } else if (r.immediate) {
    if (d != duration::zero())
      bad = "a connection that lived max_connection_backoff not replaced at once";
  } else if (!backoff_in_bounds(v, d)) {
    bad = "a reconnect after a short-lived connection outside [min, max + spread)";
  }
  if (bad) {
    v.report.fail(
        "backoff_bounds",
        format("slot %s: %s: connect %s after the %s (up %s; min %s max %s spread %s)",
               slot_name(slot).c_str(), bad, show(d).c_str(), r.connect_failed ? "failure" : "loss",
               show(r.up).c_str(), show(cfg.min_connection_backoff).c_str(),
               show(cfg.max_connection_backoff).c_str(), show(cfg.spread).c_str()));
  }
}

namespace {

using state_counts = std::array<std::size_t, std::size_t(slot_state::closed) + 1>;

// slot_consistent: a slot runs an operation iff busy (an idle one: its watch, iff the
// connector has one), holds a connection iff it should.
void check_slot_consistent(const view& v, const core::slot& s) {
  const slot_state st = s.state();
  const bool watching = st == slot_state::idle && v.traits.has_watch;
  const bool busy = st == slot_state::connecting || st == slot_state::replacing ||
                    st == slot_state::checking || st == slot_state::acquiring ||
                    st == slot_state::abandoned || st == slot_state::recycling || watching;
  const char* bad = nullptr;
  if (st == slot_state::ready) {
    bad = "the pool's decision left for after the event";
  } else if (busy != s.running()) {
    bad = busy ? "no operation running" : "an operation running";
  } else if ((st == slot_state::idle || st == slot_state::claimed || st == slot_state::cooling) &&
             !s.connection()) {
    bad = "no connection";
  } else if ((busy || st == slot_state::backing_off) && !watching && s.connection()) {
    bad =
        busy ? "a connection while its operation has it" : "a connection while it waits to connect";
  }
  if (bad) {
    v.report.fail("slot_consistent", format("slot %s is %s with %s", slot_name(s.id()).c_str(),
                                            core::to_string(st), bad));
  }
}

// removed_sets_only_drain: a removed backend keeps only claimed, acquiring and abandoned slots.
void check_removed_sets_only_drain(const view& v, const core::slot_set& set, const core::slot& s) {
  if (set.removed && !core::is_claimed(s.state())) {
    v.report.fail("removed_sets_only_drain",
                  format("slot %s of removed %s is %s", slot_name(s.id()).c_str(),
                         set.target().name.c_str(), core::to_string(s.state())));
  }
}

// set_counts: a set's size(), count(state) and idle list agree with its slots.
void check_set_counts(const view& v, const core::slot_set& set, const state_counts& by,
                      std::size_t n) {
  if (n != set.size())
    v.report.fail("set_counts",
                  format("%s: size() %zu, %zu slots", set.target().name.c_str(), set.size(), n));
  for (std::size_t st = 0; st < by.size(); ++st) {
    if (by[st] != set.count(slot_state(st))) {
      v.report.fail("set_counts",
                    format("%s: count(%s) %zu, %zu slots in it", set.target().name.c_str(),
                           core::to_string(slot_state(st)), set.count(slot_state(st)), by[st]));
    }
  }
  if (by.back() != 0)
    v.report.fail("set_counts", format("a closed slot is still in %s", set.target().name.c_str()));
  if ((set.idle_front() != nullptr) != (set.unclaimed() > 0)) {
    v.report.fail("set_counts",
                  format("%s: idle list and unclaimed() disagree", set.target().name.c_str()));
  }
}

// max_count: no set holds more than set_config.max_count slots.
void check_max_count(const view& v, const core::slot_set& set) {
  const std::size_t max_count = v.pol.set_config.max_count;
  if (set.size() > max_count) {
    v.report.fail("max_count", format("%s has %zu slots, max_count %zu", set.target().name.c_str(),
                                      set.size(), max_count));
  }
}

// total_slots: total_slots() is the number of slots in the sets.
void check_total_slots(const view& v, std::size_t total) {
  if (total != v.state.total_slots()) {
    v.report.fail("total_slots",
                  format("total_slots() %zu, %zu slots in the sets", v.state.total_slots(), total));
  }
}

// max_slots: the sets hold no more than max_slots slots in all.
void check_max_slots(const view& v, std::size_t total) {
  if (total > std::max(v.pol.max_slots, v.mem.slot_cap)) {
    v.report.fail("max_slots", format("%zu slots, max_slots %zu (%zu open when set_policy lowered "
                                      "it)",
                                      total, v.pol.max_slots, v.mem.slot_cap));
  }
  v.mem.slot_cap = std::min(v.mem.slot_cap, total);
}

// connections_counted: what stats() counts opened and closed matches what
// the slots hold; a connection closed for no counted reason (or counted
// twice) shows here.
void check_connections_counted(const view& v) {
  std::size_t held = 0;
  v.state.for_each_set([&](const core::slot_set& set) {
    set.for_each([&](core::slot& s) { held += s.holds_connection() ? 1 : 0; });
  });
  const connection_counts& c = v.state.connections();
  if (c.opened < c.closed_total() || c.opened - c.closed_total() != held) {
    v.report.fail("connections_counted",
                  format("opened %" PRIu64 ", closed %" PRIu64 ", slots hold %zu", c.opened,
                         c.closed_total(), held));
  }
}

// ops_accounted: the core runs no more operations than the driver has outstanding.
void check_ops_accounted(const view& v) {
  if (v.state.ops_running() > v.ops.size()) {
    v.report.fail("ops_accounted", format("ops_running() %zu, %zu operations outstanding",
                                          v.state.ops_running(), v.ops.size()));
  }
}

}  // namespace

// max_connecting: connects in flight never pass max_connecting (those
// running when set_policy lowered it finish); the core counts what the
// driver runs (started, not cancelled).
void check_max_connecting(const view& v, std::size_t before, std::size_t outstanding) {
  const std::size_t now = v.state.connects_running();
  if (now > std::max(v.pol.max_connecting, before)) {
    v.report.fail("max_connecting",
                  format("%zu connects in flight, max_connecting %zu (%zu before)", now,
                         v.pol.max_connecting, before));
  }
  if (now != outstanding) {
    v.report.fail("max_connecting", format("the core counts %zu connects in flight, the driver "
                                           "runs %zu",
                                           now, outstanding));
  }
}

// status_order: status changes come numbered 1, 2, ... each from the status
// the last one went to; pool_failed claims only in failed (claim_reason).
void check_status(const view& v, const core::effects& fx) {
  for (const auto& o : fx.seen) {
    if (o.what != core::observation::kind::status_changed) continue;
    if (o.seq != v.mem.status_seq + 1 || o.status_from != v.mem.status) {
      v.report.fail("status_order",
                    format("status change #%" PRIu64 " %s -> %s after #%" PRIu64 " to %s", o.seq,
                           to_string(o.status_from), to_string(o.status_to), v.mem.status_seq,
                           to_string(v.mem.status)));
    }
    v.mem.status_seq = o.seq;
    v.mem.status = o.status_to;
  }
  if (v.mem.status != v.state.status()) {
    v.report.fail("status_order", format("the pool is %s, its last change said %s",
                                         to_string(v.state.status()), to_string(v.mem.status)));
  }
}

// connections_accounted: every open connection is held by a slot or an operation.
void check_connections_accounted(const view& v, std::size_t boxes) {
  if (std::size_t(v.live) != boxes) {
    v.report.fail("connections_accounted",
                  format("%d connections open, %zu held by slots and operations", v.live, boxes));
  }
}

void scan(const view& v) {
  memory& m = v.mem;
  m.slots.clear();
  std::size_t total = 0;
  m.post_idle = m.post_online = false;
  m.live_claimed = m.live_wanted = m.live_online = m.live_offline = 0;
  m.short_set = nullptr;
  std::size_t boxes = 0;
  v.state.for_each_set([&](const core::slot_set& set) {
    state_counts by{};
    std::size_t n = 0;
    set.for_each([&](core::slot& s) {
      ++n;
      if (const std::size_t st = std::size_t(s.state()); st < by.size()) ++by[st];
      m.slots.push_back({&s, s.id(), s.state(), &set});
      if (s.connection()) ++boxes;
      check_slot_consistent(v, s);
      check_removed_sets_only_drain(v, set, s);
    });
    total += n;
    check_set_counts(v, set, by, n);
    check_max_count(v, set);
    if (!set.removed) {
      m.post_idle = m.post_idle || set.unclaimed() > 0;
      m.post_online = m.post_online || set.online();
      m.live_claimed += set.claimed();
      m.live_wanted += set.wanted;
      (set.reported_online ? m.live_online : m.live_offline) += 1;
      if (set.size() < set.wanted && !m.short_set) m.short_set = &set;
    }
  });
  m.by_address.clear();
  for (std::size_t i = 0; i < m.slots.size(); ++i) m.by_address.push_back({m.slots[i].s, i});
  std::sort(m.by_address.begin(), m.by_address.end());
  check_total_slots(v, total);
  check_max_slots(v, total);
  for (const auto& op : v.ops) {
    if (op.box) ++boxes;
  }
  check_connections_accounted(v, boxes);
  check_ops_accounted(v);
  check_connections_counted(v);
}

// rearm_when_earlier: the core sets rearm whenever next_wakeup moved earlier than the timer.
// (A driver asks next_wakeup() again only when an event says rearm, or its timer fired.)
void check_rearm_when_earlier(const view& v, const core::effects& fx, time_point now) {
  const auto next = v.state.next_wakeup();
  if (fx.rearm) {
    v.mem.armed = next;
    return;
  }
  const auto& armed = v.mem.armed;
  if (next && (!armed || *next < *armed)) {
    v.report.fail(
        "rearm_when_earlier",
        format("next_wakeup moved to %s from now, the driver's timer is %s, and rearm is not set",
               show(*next - now).c_str(), armed ? ("at +" + show(*armed - now)).c_str() : "unset"));
  }
}

// claim_completes_once: a claim completes once, never twice.
void check_claim_completes_once(const view& v, const sim_claim& c, const core::completion& comp) {
  if (c.completions > 0) {
    v.report.fail("claim_completes_once",
                  format("claim #%" PRIu64 " completed again (%s, first %s)", c.serial,
                         outcome_name(comp.outcome), c.outcome ? outcome_name(*c.outcome) : "?"));
  }
}

namespace {

/// A completion broke `invariant`: the claim, its times and outcome, and why.
void fail_claim(const view& v, const char* invariant, const sim_claim& c,
                const core::completion& comp, time_point now, const std::string& why) {
  v.report.fail(invariant,
                format("claim #%" PRIu64 " (submitted %s ago, deadline in %s) %s: %s", c.serial,
                       show(now - c.submitted).c_str(), show(c.deadline - now).c_str(),
                       outcome_name(comp.outcome), why.c_str()));
}

bool is_failure(claim_outcome o) {
  return o != claim_outcome::served && o != claim_outcome::cancelled &&
         o != claim_outcome::terminated;
}

/// fail_fast_without_backends applies: the published set is empty.
bool failing_fast(const view& v) {
  return v.pol.fail_fast_without_backends && v.published && v.published_empty;
}

// claim_deadline: never after the deadline; a timeout (not a fail-fast) exactly at it.
void check_claim_deadline_at_completion(const view& v, const sim_claim& c,
                                        const core::completion& comp, time_point now) {
  if (now > c.deadline)
    fail_claim(v, "claim_deadline", c, comp, now, "completed after its deadline");
  // (In any call: a claim whose on_acquire failed fails fast too.)
  if (is_failure(comp.outcome) && comp.outcome != claim_outcome::pool_failed && !failing_fast(v) &&
      now != c.deadline)
    fail_claim(v, "claim_deadline", c, comp, now, "failed before its deadline");
}

// claim_reason: the outcome is the one the state before the call calls for.
void check_claim_reason(const view& v, const call_ctx& ctx, const sim_claim& c,
                        const core::completion& comp, time_point now) {
  const memory& m = v.mem;
  switch (comp.outcome) {
    case claim_outcome::served:
      if (m.pre_killed || ctx.kind == call_kind::terminate)
        fail_claim(v, "claim_reason", c, comp, now, "served after terminate");
      return;
    case claim_outcome::cancelled:
      if (ctx.kind != call_kind::cancel || ctx.target != &c)
        fail_claim(v, "claim_reason", c, comp, now, "cancelled, but not by us");
      return;
    case claim_outcome::terminated:
      if (!m.pre_terminated && ctx.kind != call_kind::terminate && ctx.kind != call_kind::drain)
        fail_claim(v, "claim_reason", c, comp, now, "terminated before terminate or a drain");
      return;
    case claim_outcome::pool_failed:
      if (v.state.status() != pool_status::failed || v.pol.wait_when_failed)
        fail_claim(v, "claim_reason", c, comp, now,
                   "pool_failed while the pool is not failed (or waits when failed)");
      return;
    default:
      break;
  }
  // A timeout, or fail-fast without backends.
  if (failing_fast(v)) {
    if (comp.outcome != claim_outcome::no_backends)
      fail_claim(v, "claim_reason", c, comp, now, "fail-fast without backends is no_backends");
    return;
  }
  const claim_outcome want = m.pre_empty                ? claim_outcome::no_backends
                             : m.refused.contains(c.id) ? claim_outcome::acquire_failed
                             : m.pre_online             ? claim_outcome::all_claims_used
                                                        : claim_outcome::no_backends_online;
  if (comp.outcome != want) {
    fail_claim(
        v, "claim_reason", c, comp, now,
        format("the reason should be %s (backends published: %s, one online: %s)",
               outcome_name(want), m.pre_empty ? "none" : "some", m.pre_online ? "yes" : "no"));
  }
}

// served_slot_exists: a served claim gets the connection of a slot claimed by it.
void check_served_slot_exists(const view& v, const sim_claim& c, const core::completion& comp,
                              time_point now) {
  const seen_slot* s = comp.s ? find_slot(v, comp.s) : nullptr;
  if (!s) {
    v.report.fatal("served_slot_exists",
                   format("claim #%" PRIu64 " served: its slot is not in any set", c.serial));
  }
  if (s->st != slot_state::claimed || comp.s->claim() != &c) {
    fail_claim(v, "served_slot_exists", c, comp, now,
               format("its slot %s is %s, claimed by another", slot_name(s->id).c_str(),
                      core::to_string(s->st)));
  }
  if (!comp.box || comp.box != comp.s->connection())
    fail_claim(v, "served_slot_exists", c, comp, now, "not given the slot's connection");
}

// served_from_live_set: from a live backend (or the one its on_acquire ran on when it left).
void check_served_from_live_set(const view& v, const sim_claim& c, const core::completion& comp,
                                time_point now) {
  const seen_slot* s = find_slot(v, comp.s);
  if (s->set->removed && c.before != core::claim_node::phase::acquiring) {
    fail_claim(v, "served_from_live_set", c, comp, now, "served from a removed backend");
  }
}

// one_claim_per_connection: a served slot or connection is not held already.
void check_one_claim_per_connection_served(const view& v, const sim_claim& c,
                                           const core::completion& comp, time_point now) {
  const seen_slot* s = find_slot(v, comp.s);
  for (const auto& h : v.held) {
    if (h.s == comp.s || h.conn == comp.box) {
      fail_claim(v, "one_claim_per_connection", c, comp, now,
                 format("slot %s is held by claim #%" PRIu64 " already", slot_name(s->id).c_str(),
                        h.c ? h.c->serial : 0));
    }
  }
}

}  // namespace

void check_completion(const view& v, const call_ctx& ctx, const sim_claim& c,
                      const core::completion& comp, time_point now) {
  check_claim_deadline_at_completion(v, c, comp, now);
  check_claim_reason(v, ctx, c, comp, now);
  if (comp.outcome != claim_outcome::served) return;
  check_served_slot_exists(v, c, comp, now);
  check_served_from_live_set(v, c, comp, now);
  check_one_claim_per_connection_served(v, c, comp, now);
}

// try_claim: try_claim gives a claimed slot, and never when the connector has on_acquire;
// one_claim_per_connection: not a slot held already; prefer_idle: nothing only when none idle.
void check_try_claim(const view& v, core::slot* got) {
  if (got) {
    const seen_slot* s = find_slot(v, got);
    if (v.traits.has_on_acquire)
      v.report.fail("try_claim", "try_claim served though the connector has on_acquire");
    if (!s || s->st != slot_state::claimed)
      v.report.fatal("try_claim", "try_claim gave a slot that is not claimed");
    for (const auto& h : v.held) {
      if (h.s == got)
        v.report.fail("one_claim_per_connection", "try_claim gave a slot held already");
    }
  } else if (v.mem.pre_idle && !v.mem.pre_terminated && !v.traits.has_on_acquire) {
    v.report.fail("prefer_idle", "try_claim found nothing while a backend had an idle connection");
  }
}

namespace {

// claimed_slot_stays: every connection handed out is still there, claimed, by its holder.
void check_claimed_slot_stays(const view& v) {
  for (const auto& h : v.held) {
    const seen_slot* s = find_slot(v, h.s);
    if (!s || s->id != h.slot_id) {
      v.report.fatal("claimed_slot_stays",
                     format("slot %s, held by claim #%" PRIu64 ", is gone",
                            slot_name(h.slot_id).c_str(), h.c ? h.c->serial : 0));
    }
    if (s->st != slot_state::claimed || h.s->connection() != h.conn ||
        h.s->claim() != static_cast<core::claim_node*>(h.c)) {
      v.report.fail(
          "claimed_slot_stays",
          format("slot %s, held by claim #%" PRIu64 ", is %s%s", slot_name(h.slot_id).c_str(),
                 h.c ? h.c->serial : 0, core::to_string(s->st),
                 h.s->connection() != h.conn ? " with another connection" : ""));
    }
  }
}

// holders_are_claims: holders() lists every claimed slot once, oldest hold
// first (ages never grow down the list).
void check_holders_are_claims(const view& v) {
  const auto holders = v.state.holders();
  std::set<std::uint64_t> listed;
  duration previous = duration::max();
  for (const auto& h : holders) {
    if (!listed.insert(h.slot).second) {
      v.report.fail("holders_are_claims",
                    format("slot %s listed twice", slot_name(h.slot).c_str()));
    }
    if (h.age > previous || h.age < duration::zero()) {
      v.report.fail("holders_are_claims",
                    format("slot %s, held %s, after one held %s", slot_name(h.slot).c_str(),
                           show(h.age).c_str(), show(previous).c_str()));
    }
    previous = h.age;
  }
  std::size_t claimed = 0;
  for (const auto& s : v.mem.slots) {
    if (s.st != slot_state::claimed) continue;
    ++claimed;
    if (!listed.contains(s.id)) {
      v.report.fail("holders_are_claims",
                    format("claimed slot %s is not listed", slot_name(s.id).c_str()));
    }
  }
  if (claimed != holders.size()) {
    v.report.fail("holders_are_claims",
                  format("%zu holders listed, %zu slots claimed", holders.size(), claimed));
  }
}

// claim_tracked: a pending claim is queued or acquiring.
void check_claim_tracked_pending(const view& v, const sim_claim& c) {
  if (c.where == core::claim_node::phase::fresh || c.where == core::claim_node::phase::done) {
    v.report.fail(
        "claim_tracked",
        format("claim #%" PRIu64 " is pending but neither queued nor acquiring", c.serial));
  }
}

// claim_deadline: no claim is pending at or past its deadline.
void check_claim_deadline_pending(const view& v, const sim_claim& c, time_point now) {
  if (c.deadline <= now) {
    v.report.fail("claim_deadline",
                  format("claim #%" PRIu64 " is still pending %s after its deadline", c.serial,
                         show(now - c.deadline).c_str()));
  }
}

// claim_tracked: waiting() is the number of claims queued.
void check_claim_tracked_waiting(const view& v, std::size_t queued) {
  if (queued != v.state.waiting()) {
    v.report.fail("claim_tracked",
                  format("waiting() %zu, %zu claims queued", v.state.waiting(), queued));
  }
}

// claim_deadline: next_wakeup is no later than the earliest pending deadline.
void check_claim_deadline_wakeup(const view& v, time_point earliest, time_point now) {
  if (v.active.empty()) return;
  const auto next = v.state.next_wakeup();
  if (!next || *next > earliest) {
    v.report.fail("claim_deadline", format("a claim's deadline is in %s, next_wakeup %s",
                                           show(earliest - now).c_str(),
                                           next ? ("in " + show(*next - now)).c_str() : "none"));
  }
}

/// The first claim in line among those that waited before the call.
struct line_front {
  bool any = false;
  int key_class = 2;
  std::int64_t key = 0;
};

// fifo: no claim is served (or taken to on_acquire) while an earlier one still waits.
void check_fifo(const view& v, const line_front& front) {
  if (!front.any) return;
  auto jumped = [&](const sim_claim* c) {
    if (c->before == core::claim_node::phase::acquiring)
      return;  // its on_acquire failed: first in line
    const bool was_queued = c->before == core::claim_node::phase::queued;
    const int cls = was_queued ? c->key_class : 1;
    const std::int64_t key = was_queued ? c->key : std::int64_t(c->serial);
    if (cls > front.key_class || (cls == front.key_class && key > front.key)) {
      v.report.fail(
          "fifo",
          format("claim #%" PRIu64 " was served while an earlier claim still waits", c->serial));
    }
  };
  for (const sim_claim* c : v.mem.served_now) jumped(c);
  for (const sim_claim* c : v.active) {
    if (c->where == core::claim_node::phase::acquiring &&
        c->before != core::claim_node::phase::acquiring) {
      jumped(c);
    }
  }
}

/// Places in the queue for the claims that joined it now: new ones at the
/// back, those whose on_acquire failed at the front, the last one put back
/// first (claim_tracked: one put back had an acquire_failed).
void place_in_line(const view& v) {
  memory& m = v.mem;
  for (sim_claim* c : v.active) {
    if (c->where != core::claim_node::phase::queued || c->before == core::claim_node::phase::queued)
      continue;
    if (c->before == core::claim_node::phase::acquiring) {
      const auto at = std::find(m.retried.begin(), m.retried.end(), c->id);
      if (at == m.retried.end()) {
        v.report.fail("claim_tracked",
                      format("claim #%" PRIu64 " went from acquiring back to the queue without "
                             "an acquire_failed",
                             c->serial));
      }
      c->key_class = 0;
      c->key = -std::int64_t(m.front_pushes + std::uint64_t(at - m.retried.begin()) + 1);
    } else {
      c->key_class = 1;
      c->key = std::int64_t(c->serial);
    }
  }
  m.front_pushes += m.retried.size();
}

// prefer_idle: a backend with an idle connection means nobody waits, and no new claim queues.
void check_prefer_idle(const view& v, const call_ctx& ctx) {
  if (v.mem.post_idle && v.state.waiting() > 0) {
    v.report.fail("prefer_idle", format("%zu claims wait while a backend has an idle connection",
                                        v.state.waiting()));
  }
  if (ctx.kind == call_kind::claim && !v.mem.pre_terminated && v.mem.pre_idle &&
      ctx.target->where == core::claim_node::phase::queued) {
    v.report.fail("prefer_idle", "a new claim was queued while a backend had an idle connection");
  }
}

// fail_fast: with no backend published, a new claim fails at once, and emptying the set
// leaves nobody waiting.
void check_fail_fast_on_call(const view& v, const call_ctx& ctx) {
  if (!failing_fast(v) || v.state.terminated()) return;
  if (ctx.kind == call_kind::claim && ctx.target->completions == 0) {
    v.report.fail("fail_fast", "a claim made while no backend is published did not fail at once");
  }
  if (ctx.kind == call_kind::backends && ctx.new_map_empty && v.state.waiting() > 0) {
    v.report.fail("fail_fast", "claims still wait after the set became empty");
  }
}

// terminate_completes: after terminate no claim is pending.
void check_terminate_completes(const view& v) {
  if (v.state.terminated() && !v.active.empty()) {
    v.report.fail("terminate_completes", format("claim #%" PRIu64 " still pending after terminate",
                                                v.active.front()->serial));
  }
}

// grow_when_room: a set short of its wanted count waits only for room under max_slots.
void check_grow_when_room(const view& v) {
  if (!v.state.terminated() && v.mem.short_set && v.state.total_slots() < v.pol.max_slots) {
    const core::slot_set& set = *v.mem.short_set;
    v.report.fail("grow_when_room",
                  format("%s has %zu slots, wants %zu, the pool has room (%zu of %zu)",
                         set.target().name.c_str(), set.size(), set.wanted, v.state.total_slots(),
                         v.pol.max_slots));
  }
}

// time_bounds: no check outlives health_check_timeout, no connect connect_timeout, uncancelled
// (a watch has no bound: it runs while its connection is idle).
void check_time_bounds(const view& v, time_point now) {
  for (const auto& op : v.ops) {
    if (op.cancelled || op.kind == op_kind::watch) continue;
    const bool connect = op.kind == op_kind::connect;
    const std::optional<duration> bound =
        connect ? v.pol.set_config.connect_timeout
                : std::optional(v.pol.set_config.health_check_timeout);
    if (bound && now - op.started >= *bound) {
      v.report.fail("time_bounds",
                    format("op %" PRIu64 " (%s, slot %s) still runs %s after it started, bound %s",
                           op.id, core::to_string(op.kind), slot_name(op.slot_id).c_str(),
                           show(now - op.started).c_str(), show(*bound).c_str()));
    }
  }
}

// budget: the live sets want min(claimed + waiting + spares, max_slots), as far as they can
// take them (a probe for each offline set, max_count for each online one).
void check_budget(const view& v) {
  if (v.state.terminated()) return;
  const memory& m = v.mem;
  const std::size_t claimed = m.live_claimed, wanted = m.live_wanted, offline = m.live_offline,
                    online = m.live_online;
  const std::size_t idle_target = std::max(v.pol.spares_wanted, v.pol.min_idle);
  const std::size_t needed = std::min(claimed + v.state.waiting() + idle_target, v.pol.max_slots);
  const std::size_t can_take = offline + online * v.pol.set_config.max_count;
  if (wanted < std::min(needed, can_take)) {
    v.report.fail("budget",
                  format("the sets want %zu slots; claimed %zu + waiting %zu + spares %zu "
                         "(max_slots %zu) asks for %zu, and %zu online + %zu offline sets can "
                         "take %zu",
                         wanted, claimed, v.state.waiting(), v.pol.spares_wanted, v.pol.max_slots,
                         needed, online, offline, can_take));
  }
}

// fail_fast: nobody waits while the published set is empty.
void check_fail_fast_waiting(const view& v) {
  if (failing_fast(v) && !v.state.terminated() && v.state.waiting() > 0) {
    v.report.fail("fail_fast",
                  format("%zu claims wait while the resolver's set is empty", v.state.waiting()));
  }
}

/// Forgets the backoff rules of slots that are gone or hold a connection
/// again (a hold after a failed on_acquire keeps its connection: no
/// connect follows), and the times of slots gone.
void forget_gone_slots(const view& v) {
  memory& m = v.mem;
  auto present = [&](std::uint64_t id) {
    return std::any_of(m.slots.begin(), m.slots.end(),
                       [&](const seen_slot& x) { return x.id == id; });
  };
  if (!m.retry.empty()) {
    for (const auto& x : m.slots) {
      if (x.st != slot_state::backing_off || x.s->connection()) m.retry.erase(x.id);
    }
    if (m.retry.size() > m.slots.size() + 64) {  // slots gone (ids are never reused)
      for (auto it = m.retry.begin(); it != m.retry.end();)
        it = present(it->first) ? std::next(it) : m.retry.erase(it);
    }
  }
  for (auto* times : {&m.up_since, &m.idle_since}) {
    if (times->size() <= 4 * m.slots.size() + 64) continue;
    for (auto it = times->begin(); it != times->end();)
      it = present(it->first) ? std::next(it) : times->erase(it);
  }
}

}  // namespace

void check_after_call(const view& v, const call_ctx& ctx, time_point now) {
  check_claimed_slot_stays(v);
  check_holders_are_claims(v);
  // The queue, as the claimers see it.
  std::size_t queued = 0;
  line_front front;
  time_point earliest = time_point::max();
  for (const sim_claim* c : v.active) {
    if (c->where == core::claim_node::phase::queued) {
      ++queued;
      if (c->before == core::claim_node::phase::queued) {
        if (!front.any || c->key_class < front.key_class ||
            (c->key_class == front.key_class && c->key < front.key)) {
          front.key_class = c->key_class;
          front.key = c->key;
        }
        front.any = true;
      }
    }
    check_claim_tracked_pending(v, *c);
    earliest = std::min(earliest, c->deadline);
    check_claim_deadline_pending(v, *c, now);
  }
  check_claim_tracked_waiting(v, queued);
  check_claim_deadline_wakeup(v, earliest, now);
  check_fifo(v, front);
  place_in_line(v);
  check_prefer_idle(v, ctx);
  check_fail_fast_on_call(v, ctx);
  check_terminate_completes(v);
  check_grow_when_room(v);
  check_time_bounds(v, now);
  check_budget(v);
  check_fail_fast_waiting(v);
  forget_gone_slots(v);
}

// terminate_once: terminate says it is the first exactly once, the first time.
void check_terminate_once(const view& v, bool first, bool terminated_before) {
  if (first == terminated_before) {
    v.report.fail("terminate_once",
                  first ? "terminate said first twice" : "the first terminate said it was not");
  }
}

// timer_fired_progresses: timer_fired moves next_wakeup past now (64 calls at one time at most).
void check_timer_fired_progresses(const view& v, int timer_fired_at_same_time) {
  if (timer_fired_at_same_time > 64) {
    v.report.fatal("timer_fired_progresses",
                   "next_wakeup stays at or before now after 64 timer_fired calls at this time");
  }
}

// drain_ends: after terminate, answering operations does not start new ones without end.
void check_drain_ends(const view& v, int answered) {
  if (answered > 100000) v.report.fatal("drain_ends", "operations keep starting after terminate");
}

namespace {

// end_no_connections: after the drain no connection is open.
void check_end_no_connections(const view& v) {
  if (v.live != 0) v.report.fail("end_no_connections", format("%d connections still open", v.live));
}

// end_no_operations: after the drain no operation runs.
void check_end_no_operations(const view& v) {
  if (v.state.ops_running() != 0) {
    v.report.fail("end_no_operations", format("ops_running() == %zu", v.state.ops_running()));
  }
}

// end_no_wakeup: after the drain the core wants no wakeup.
void check_end_no_wakeup(const view& v, time_point now) {
  if (const auto next = v.state.next_wakeup()) {
    v.report.fail("end_no_wakeup", format("next_wakeup in %s", show(*next - now).c_str()));
  }
}

// end_no_slots: after the drain no slot is left.
void check_end_no_slots(const view& v) {
  if (v.state.total_slots() != 0) {
    v.report.fail("end_no_slots", format("total_slots() == %zu", v.state.total_slots()));
  }
}

// end_no_waiters: after the drain no claim waits.
void check_end_no_waiters(const view& v) {
  if (v.state.waiting() != 0)
    v.report.fail("end_no_waiters", format("waiting() == %zu", v.state.waiting()));
}

// claim_completes_once: at the end every claim completed exactly once.
void check_claim_completes_once_at_end(const view& v) {
  for (const sim_claim& c : v.claims) {
    if (c.completions != 1) {
      v.report.fail("claim_completes_once",
                    format("claim #%" PRIu64 " completed %d times", c.serial, c.completions));
    }
  }
}

// stats_agree: the core's own counters agree with what its claimers saw.
void check_stats_agree(const view& v) {
  const pool_stats st = v.state.stats();
  const auto& f = st.claim_failures;
  auto n = [&](claim_outcome o) { return v.by_outcome[std::size_t(o)]; };
  if (f.no_backends != n(claim_outcome::no_backends) ||
      f.no_backends_online != n(claim_outcome::no_backends_online) ||
      f.all_claims_used != n(claim_outcome::all_claims_used) ||
      f.terminated != n(claim_outcome::terminated) || f.cancelled != n(claim_outcome::cancelled) ||
      f.acquire_failed != n(claim_outcome::acquire_failed)) {
    v.report.fail("stats_agree",
                  "stats().claim_failures differ from the completions the claimers saw");
  }
  // (total_claims counts picks: a claim whose on_acquire failed counts
  // once per slot it tried.)
  if (st.total_claims < n(claim_outcome::served) + v.try_served) {
    v.report.fail("stats_agree", format("stats().total_claims %" PRIu64 " < %" PRIu64 " served",
                                        std::uint64_t(st.total_claims),
                                        std::uint64_t(n(claim_outcome::served) + v.try_served)));
  }
}

}  // namespace

void check_end(const view& v, time_point now) {
  check_end_no_connections(v);
  check_end_no_operations(v);
  check_end_no_wakeup(v, now);
  check_end_no_slots(v);
  check_end_no_waiters(v);
  check_claim_completes_once_at_end(v);
  check_stats_agree(v);
}

}  // namespace qorb::sim
