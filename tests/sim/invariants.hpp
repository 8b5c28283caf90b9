// SPDX-License-Identifier: BSL-1.0
// The simulator's invariants: the promises of docs/behaviour.md and
// docs/policy.md that qorb_sim holds core::pool_state to after every call
// into it. invariants.cpp has one function per invariant (or per place an
// invariant is checked), each named after the invariant a failure names;
// simulator.cpp drives the core and calls them. Here: what the driver
// records of a run, which the checks read (a view), and the checks.
#pragma once

#include <qorb/policy.hpp>

#include "core/pool_state.hpp"

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace qorb::sim {

using core::claim_outcome;
using core::op_kind;
using core::slot_state;
using core::time_point;

// ----- text ----------------------------------------------------------------------

const char* outcome_name(claim_outcome o);
std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
/// A slot the driver cannot name: closed in the call that started its
/// operation, in a seed run untraced.
constexpr std::uint64_t unknown_slot = UINT64_MAX;
std::string slot_name(std::uint64_t id);
std::string show(duration d);

// ----- what the driver records -----------------------------------------------------

struct sim_claim final : core::claim_node {
  std::uint64_t serial = 0;
  time_point submitted{};
  time_point deadline{};  // submitted + (timeout, else claim_timeout), saturating
  int completions = 0;
  std::optional<claim_outcome> outcome;
  time_point completed_at{};
  phase before = phase::fresh;  // where it was before the current call
  // Its place in the queue as the checker models it: (class, key), lower
  // first. New claims go to the back (1, serial); a claim whose on_acquire
  // failed goes to the front (0, -n), the latest first.
  int key_class = 1;
  std::int64_t key = 0;
};

/// A connection handed out: to a claim, or by try_claim (c == null).
struct held_conn {
  sim_claim* c;
  core::slot* s;
  std::uint64_t slot_id;
  const detail::connection_box* conn;
};

struct pending_op {
  core::op_id id;
  op_kind kind;
  std::uint64_t slot_id;
  int backend;
  detail::box_ptr box;  // checks take the connection with them
  bool cancelled = false;
  bool hang = false;  // never answers by itself: left to the core's timeout
  time_point started{};
  std::optional<time_point> due;  // when it answers as time passes (else a step picks it)
};

enum class call_kind : std::uint8_t {
  backends,
  claim,
  try_claim,
  cancel,
  release,
  op,
  lost,
  report,
  timer,
  terminate,
  evict,
  drain,
  set_policy
};

struct call_ctx {
  call_kind kind;
  sim_claim* target = nullptr;                      // claim, cancel
  bool new_map_empty = false;                       // backends
  bool stale_watch = false;                         // lost: the watch had been cancelled
  const detail::connection_box* watched = nullptr;  // lost: the connection it watched
};

// ----- what the checker remembers ----------------------------------------------------

/// What the next connect of a slot must respect, from the event that
/// ended its connection or its attempt (src/core/slot.cpp).
struct retry_rule {
  time_point since{};
  bool connect_failed = false;  // else a lost/failed connection
  bool immediate = false;       // the lost connection had lived max_connection_backoff
  duration up{};
  // The reconnect comes exactly then: the end of the backoff a failed
  // on_acquire began, which an end found on the way back keeps.
  std::optional<time_point> at{};
};

/// A slot as the post-call scan saw it.
struct seen_slot {
  core::slot* s;
  std::uint64_t id;
  slot_state st;
  const core::slot_set* set;
};

struct memory {
  // Before the call (nothing changes between calls: the last call's scan
  // is the state before this one).
  // pre_terminated: terminated or draining (new claims refused); a claim
  // whose on_acquire ran before a drain may still be served, not after a
  // terminate (pre_killed).
  bool pre_terminated = false, pre_idle = false, pre_online = false, pre_empty = true;
  bool pre_killed = false;
  // The scan after the call.
  bool post_idle = false, post_online = false;
  std::vector<seen_slot> slots;
  std::vector<std::pair<const core::slot*, std::size_t>> by_address;  // slots, by address
  std::size_t live_claimed = 0, live_wanted = 0, live_online = 0, live_offline = 0;
  const core::slot_set* short_set = nullptr;  // a live set with fewer slots than it wants
  // What the observations said.
  std::map<std::uint64_t, retry_rule> retry;
  std::map<std::uint64_t, time_point> acquire_hold;  // a failed on_acquire: until when it holds
  std::map<std::uint64_t, time_point> up_since;
  std::map<std::uint64_t, time_point> idle_since;
  std::set<std::uint64_t> refused;     // claims whose last on_acquire failed
  std::vector<std::uint64_t> retried;  // core claim ids, from acquire_failed, this call
  std::vector<sim_claim*> served_now;  // claims served in this call
  std::optional<time_point> armed;     // the driver's timer, as fx.rearm told it
  std::uint64_t front_pushes = 0;
  // set_policy lowered max_slots below the slots open: they may stay above
  // it (busy), never grow; this follows them down.
  std::size_t slot_cap = 0;
  std::uint64_t status_seq = 0;  // the last status_changed seen
  pool_status status = pool_status::starting;
  std::set<std::pair<std::uint64_t, std::uint64_t>> warned_holds;  // (slot, claim)
};

// ----- the view --------------------------------------------------------------------

/// Where a broken promise goes: fail() stops the run unless `--skip` named
/// the invariant (then it is counted); fatal() always stops it.
class reporter {
 public:
  virtual void fail(const char* invariant, const std::string& why) = 0;
  [[noreturn]] virtual void fatal(const char* invariant, const std::string& why) = 0;

 protected:
  ~reporter() = default;
};

/// What the checks read: the core, the run's setup, the driver's records
/// and the checker's memory (the one part they write).
struct view {
  reporter& report;
  const core::pool_state& state;
  const policy& pol;
  const core::connector_traits& traits;
  const bool& traced;  // effects::trace for every call of this seed
  const bool& published;
  const bool& published_empty;
  const int& live;  // connections open
  const std::deque<sim_claim>& claims;
  const std::vector<sim_claim*>& active;  // submitted, not completed, oldest first
  const std::vector<held_conn>& held;
  const std::vector<pending_op>& ops;
  const std::uint64_t (&by_outcome)[std::size_t(claim_outcome::pool_failed) + 1];
  const std::uint64_t& try_served;
  memory& mem;
};

/// The scan's record of slot `s`, or null when no set holds it.
const seen_slot* find_slot(const view& v, const core::slot* s);

// ----- the checks, in the order a call runs them -------------------------------------

// In call(), after the event:
void check_connections_closed_by_driver(const view& v, std::uint64_t destroyed_in_core);
/// Follows the observations (backoff rules, idle times, refused claims),
/// checking backoff_bounds, normal_end and health_check_timing on the way.
void follow_observations(const view& v, const core::effects& fx, time_point now);
// For the starts (starts() in simulator.cpp):
void check_observations_complete_count(const view& v, const core::effects& fx,
                                       std::size_t observed);
void check_nothing_starts_after_terminate(const view& v, const core::effects& fx);
void check_observations_complete_slot(const view& v, core::op_id id, std::uint64_t slot,
                                      std::uint64_t observed);
void check_watch_borrows_idle(const view& v, const core::op_start& st, const core::slot* alive);
void check_watch_end(const view& v, const call_ctx& ctx, const core::effects& fx);
void check_closed_slot_ops_cancelled(const view& v, const core::effects& fx,
                                     const core::op_start& st);
void check_backoff_bounds_on_connect(const view& v, std::uint64_t slot, time_point now);
/// Walks every set and slot into the memory: slot_consistent,
/// removed_sets_only_drain, set_counts, max_count, total_slots, max_slots,
/// connections_accounted, ops_accounted.
void scan(const view& v);
void check_rearm_when_earlier(const view& v, const core::effects& fx, time_point now);
// Each completion (the claim's completions not yet counted):
void check_claim_completes_once(const view& v, const sim_claim& c, const core::completion& comp);
void check_completion(const view& v, const call_ctx& ctx, const sim_claim& c,
                      const core::completion& comp, time_point now);
// After the call:
void check_try_claim(const view& v, core::slot* got);
void check_after_call(const view& v, const call_ctx& ctx, time_point now);
// At the end of a run:
void check_terminate_once(const view& v, bool first, bool terminated_before);
void check_timer_fired_progresses(const view& v, int timer_fired_at_same_time);
void check_drain_ends(const view& v, int answered);
void check_end(const view& v, time_point now);
void check_max_connecting(const view& v, std::size_t before, std::size_t outstanding);
void check_status(const view& v, const core::effects& fx);

}  // namespace qorb::sim
