// SPDX-License-Identifier: BSL-1.0
// The whole pool as one pure object: backends, slot sets, the priority list,
// the claim queue, the rebalancer and the timers. Each event appends to
// `effects` what the driver must do; nothing here does I/O, reads a clock
// (time comes from the environment) or is thread-safe (the driver holds a
// lock around every call).
#pragma once

#include <qorb/backend.hpp>
#include <qorb/policy.hpp>
#include <qorb/stats.hpp>

#include "core/claim_queue.hpp"
#include "core/claim_sites.hpp"
#include "core/deadline_heap.hpp"
#include "core/effects.hpp"
#include "core/environment.hpp"
#include "core/hold_tracker.hpp"
#include "core/intrusive_list.hpp"
#include "core/priority_list.hpp"
#include "core/rebalancer.hpp"
#include "core/slot.hpp"
#include "core/slot_set.hpp"
#include "core/status_tracker.hpp"

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace qorb::core {

/// Which optional hooks the connector has.
struct connector_traits {
  bool has_is_valid = false;
  bool has_on_acquire = false;
  bool has_on_recycle = false;       // on_recycle, or is_valid standing in for it
  bool recycle_is_is_valid = false;  // is_valid stands in for on_recycle
  bool has_watch = false;            // a watch runs on every idle connection
};

class pool_state final : private slot_port {
 public:
  /// `p` must be valid (qorb::validate).
  pool_state(const policy& p, connector_traits traits, environment& env);
  ~pool_state();
  pool_state(const pool_state&) = delete;
  pool_state& operator=(const pool_state&) = delete;

  /// The resolver published the whole set of backends.
  void backends_changed(const backend_map& backends, effects& fx);
  /// The resolver published a change to the set: `added` are new backends
  /// or new addresses for a name (the old one goes), `removed` names gone.
  /// Costs O(change), not O(backends).
  void backends_delta(const backend_map& added, const std::vector<std::string>& removed,
                      effects& fx);
  /// Serves `c` now or queues it until its deadline (`c.timeout`, else the
  /// policy's claim_timeout); completes it exactly once, through `fx`.
  void claim(claim_node& c, effects& fx);
  /// An idle slot claimed now, or null: never waits, never runs on_acquire.
  /// `quiet`: a miss is not a claim (no id, no observation); the caller
  /// makes a waiting claim next.
  slot* try_claim(effects& fx, bool quiet = false, const std::source_location& site = {});
  /// Per-operation cancellation of a claim that has not completed.
  void cancel(claim_node& c, effects& fx);
  /// A handle gives its slot back; `discard`: the connection is broken
  /// (`why`: the caller's reason, kept as the backend's last error).
  void release(slot& s, bool discard, effects& fx, std::string_view why = {});
  /// A connector operation ended (`box`: the connection, if it gave one).
  /// `permanent`: a connect failed with qorb::permanent_error.
  void op_finished(op_id op, bool ok, detail::box_ptr box, std::string why, effects& fx,
                   bool permanent = false);
  /// A check said the backend failed a request on a connection that is
  /// fine (a hook threw errc::request_failed): counted as failure_reported
  /// is, then as the check's success.
  void op_reported(op_id op, detail::box_ptr box, std::string why, effects& fx);
  /// A connector operation said the connection ended normally (a hook threw
  /// errc::connection_ended): it is replaced without counting a failure.
  void op_ended(op_id op, detail::box_ptr box, std::string why, effects& fx);
  /// The caller of a claimed connection saw its backend fail a request
  /// (`why`): counted in the backend's failure window, which lowers its
  /// rank; the connection stays.
  void failure_reported(slot& s, std::string_view why, effects& fx);
  /// Every idle connection is closed and replaced now, every other one
  /// when it is next ready (a claimed one when it comes back).
  void evict_all(effects& fx);
  /// Time passed: deadlines, slot timers and the periodic rebalance due
  /// by now are handled.
  void timer_fired(effects& fx);
  /// False if it already was terminated.
  bool terminate(effects& fx);
  /// async_drain: new claims fail (terminated), waiting ones too; the pool
  /// is stopping until every claim is back, then says `drained` (the driver
  /// terminates it).
  void begin_drain(effects& fx);
  /// Replaces the policy (valid: qorb::validate): every set is planned
  /// again; a smaller cap closes idle slots now and claimed ones as they
  /// return, a larger one grows now.
  void set_policy(const policy& p, effects& fx);

  /// When timer_fired is next needed; none when nothing waits for time.
  std::optional<time_point> next_wakeup() const noexcept;
  pool_stats stats() const;
  /// Every claimed slot, oldest hold first (at most `limit`).
  std::vector<claim_holder> holders(std::size_t limit = std::size_t(-1)) const;
  /// What a claim whose deadline passes now fails with.
  claim_outcome timeout_reason() const noexcept;
  /// ... for claim `c` (which may have been refused by on_acquire).
  claim_outcome timeout_reason(const claim_node& c) const noexcept;
  bool terminated() const noexcept { return terminated_; }
  /// begin_drain was called: new claims are refused.
  bool draining() const noexcept { return drain_; }
  pool_status status() const noexcept { return status_.status(); }
  /// The last status change's sequence number (0: none yet).
  std::uint64_t status_seq() const noexcept { return status_seq_; }
  /// Live backends online now.
  std::size_t online_backends() const noexcept { return online_; }
  /// Slots claimed (or acquiring) now, removed backends' too.
  std::size_t claims_out() const noexcept;
  std::size_t connects_running() const noexcept { return connects_running_; }
  std::size_t connects_waiting() const noexcept { return connects_waiting_; }
  /// What total_slots() may be at most: max_slots, or, after set_policy
  /// lowered it, the slots still busy above it (they close as they settle).
  std::size_t cap() const noexcept { return cap_ > policy_.max_slots ? cap_ : policy_.max_slots; }
  /// Terminated, and no slot is left (none claimed, none recycling).
  bool drained() const noexcept { return terminated_ && sets_.empty() && draining_.empty(); }
  std::size_t total_slots() const noexcept { return total_slots_; }
  std::size_t waiting() const noexcept { return queue_.size(); }
  /// Operations started and not ended (connects waiting for a turn are not).
  std::size_t ops_running() const noexcept { return ops_.size() - connects_waiting_; }
  /// Connections opened and closed by reason, every set's.
  const connection_counts& connections() const noexcept { return connections_; }
  const policy& config() const noexcept { return policy_; }
  /// Every set, live then removed-but-draining, for observers and checks.
  template <class F>
  void for_each_set(F&& f) const {
    for (const auto& [name, set] : sets_) f(*set);
    for (const auto& set : draining_) f(*set);
  }

 private:
  template <class Body>
  auto in_event(effects& fx, Body&& body);
  void end_event();
  bool rebalance_due();
  void rebalance_after_event();
  void forget_drained_sets();
  void start_connect_turns();
  void lifecycle_due();
  /// A connect in flight ended (or was given up on): a turn is free.
  void connect_ended() noexcept {
    --connects_running_;
    if (connects_waiting_ != 0) due_ |= due_turns;
  }
  void update_status();
  /// Holds: `s` was handed to claim `id` from `site` after waiting
  /// `waited` seconds (0: served at once). On the claim path: a row lookup
  /// (cached) and two stores; the clock only when holds are timed.
  void hold_begins(slot& s, std::uint64_t id, const std::source_location& site, double waited) {
    s.held.site = waited == 0.0 ? sites_.served_at_once(site) : sites_.index(site);
    if (waited != 0.0) sites_.waited(s.held.site, waited);
    s.held.claim = id;
    s.held.timed = false;
    if (time_holds_) timed_hold_begins(s);
  }
  /// `s` came back (or is closed while claimed).
  void hold_ends(slot& s) {
    if (holds_.size() != 0) timed_hold_ends(s);
  }
  // pool_state_holds.cpp: timed holds (policy::time_holds, hold_warning).
  void timed_hold_begins(slot& s);
  void timed_hold_ends(slot& s);
  void warn_long_holds();
  /// A clock for hold times: the event's own time if it read the clock,
  /// else the coarse clock (a claim and a return must not pay for now()).
  time_point hold_clock() { return now_ ? *now_ : env_.coarse_now(); }
  void emit_start(slot& s, op_id id, op_kind kind, detail::box_ptr box);
  void note_connect(slot_set& set, verdict v);

  // slot_port
  time_point now() override;
  double random01() override { return env_.random01(); }
  op_id start(slot& s, op_kind kind, detail::box_ptr box) override;
  bool running(op_id op) const noexcept override;
  void cancel(op_id op, bool abandon) override;
  void close(detail::box_ptr box) override;
  void arm(slot& s) override;
  void moved(slot& s, slot_state from) override;
  void ended(slot& s, op_kind kind, verdict v, std::string_view why, duration retry) override;
  void dropped(slot& s, bool discarded, std::string_view why) override;
  void closed(slot& s, close_reason why) override;
  bool idle_expired(slot& s) override;

  slot* pick();
  time_point deadline_of(const claim_node& c);
  void serve(claim_node& c, slot& s);
  void retry(claim_node& c, bool after_end);
  void complete(claim_node& c, claim_outcome outcome, slot* s = nullptr);
  void expire(claim_node& c);
  void handle(slot& s, slot_result r);
  void settle(slot& s);
  void finish(slot_set& set);
  /// Reports the set's online and has-unclaimed changes; whether any.
  bool report(slot_set& set);
  bool doomed(const slot_set& set) const noexcept { return terminated_ || set.removed; }

  void open_slot(slot_set& set);
  /// Lifecycle work an event may leave (status, connect turns): one test in
  /// end_event for all of it.
  enum due_bits : std::uint8_t { due_status = 1, due_turns = 2 };
  /// Closes `s`, counting its connection for `why` (by default: removed or
  /// terminated for a doomed set, else resized).
  void close_slot(slot& s, std::optional<close_reason> why = std::nullopt);
  void conform(slot_set& set);
  void shrink(slot_set& set);
  void grow(slot_set& set);
  void make_room() {
    if (room_freed_) give_room();
  }
  void give_room();
  void remove_set(std::map<std::string, std::unique_ptr<slot_set>, std::less<>>::iterator it);
  void add_set(const std::string& name, const backend& b);
  void fail_fast_if_none();
  void mark_changed(slot_set& set);
  /// Sets a set's wanted count (kept summed over live sets).
  void want(slot_set& set, std::size_t n);
  void rebalance(bool periodic);
  void plan_all();
  void observe(observation o);
  // A caller's (or a hook's) report of a failed request on `s`'s backend.
  void count_report(slot& s, std::string_view why);
  /// Per-claim observations: built only while a tracer listens.
  template <class Make>
  void trace(Make&& make) {
    if (fx_->trace) observe(make());
  }

  policy policy_;  // set_policy replaces it; slot_rules_.cfg points into it
  const slot_rules slot_rules_;
  environment& env_;

  std::map<std::string, std::unique_ptr<slot_set>, std::less<>> sets_;
  std::vector<std::unique_ptr<slot_set>> draining_;  // removed; claimed slots still out
  std::vector<std::unique_ptr<slot>> graveyard_;     // closed this event
  priority_list priority_;
  claim_queue queue_;
  rebalancer rebalancer_;
  deadline_heap<slot, &slot::timer> slot_timers_;
  struct op_entry {
    slot* s;
    bool connect;
    bool waiting;  // a connect waiting for a turn under max_connecting (not started)
  };
  std::unordered_map<op_id, op_entry> ops_;
  std::deque<op_id> connect_turns_;  // waiting connects, first come first served
  std::size_t connects_running_ = 0, connects_waiting_ = 0;
  status_tracker status_;
  std::optional<time_point> status_at_;  // when failed_after may pass
  std::uint64_t status_seq_ = 0;
  std::size_t failing_sets_ = 0;                         // live sets whose last connect failed
  std::size_t refused_sets_ = 0;                         // ... failed permanently
  std::size_t cap_ = 0;                                  // see cap()
  std::vector<slot_set*> changed_;                       // sets whose wanted count is due
  intrusive_list<slot_set, &slot_set::in_short> short_;  // sets waiting for room under max_slots

  effects* fx_ = nullptr;  // the current event's
  std::optional<time_point> now_;
  std::optional<time_point> rebalance_at_;
  std::size_t total_slots_ = 0;
  std::size_t claimed_live_ = 0;  // claimed slots of live sets
  std::size_t online_ = 0;        // live sets reported online
  std::size_t idle_live_ = 0;     // idle slots of live sets
  std::size_t wanted_live_ = 0;   // live sets' wanted counts, summed
  bool room_freed_ = false;
  bool terminated_ = false;
  bool no_new_claims_ = false;  // terminated or draining
  bool drain_ = false, drain_reported_ = false;
  std::uint8_t due_ = due_status;  // due_bits
  bool published_ = false;
  std::uint16_t next_set_id_ = 0;
  std::uint64_t claim_ids_ = 0;
  op_id op_ids_ = 0;
  std::uint64_t total_claims_ = 0;
  claim_failure_stats claim_failures_;
  claim_wait_histogram claim_wait_;
  claim_wait_histogram connect_time_;  // connects that gave a connection
  claim_sites sites_;                  // claims by where they were made
  hold_tracker holds_;                 // timed holds, oldest first
  bool time_holds_ = false;            // policy::time_holds, or a hold_warning
  std::uint64_t hold_warnings_ = 0;
  connection_counts connections_;  // every set's, removed ones' too
};

}  // namespace qorb::core
