// SPDX-License-Identifier: BSL-1.0
// The simulator: a driver for core::pool_state that acts at random (the
// resolver, the connector, the claimers, the clock) and a checker that
// holds the core to the promises of docs/behaviour.md and docs/policy.md
// after every call into it.
//
// The driver is punctual: it fires timer_fired at every next_wakeup, never
// later. Claims therefore time out exactly at their deadline, and a
// slot's reconnect comes exactly when its backoff ends, which the checker
// relies on.
//
// Randomness: one std::mt19937_64 seeded with the seed makes every choice
// (the policy, the steps, the results), and the core's environment is
// test::manual_environment seeded with it too. Choices only ever pick from
// containers in a deterministic order (vectors, the core's own lists),
// never from anything ordered by address, so a seed replays exactly.
//
// The invariants, by the name a failure gives (checked after every call
// unless said otherwise):
//   max_slots, total_slots       slots in all sets <= max_slots; total_slots() counts them
//   max_count                    no set holds more than set_config.max_count slots
//   set_counts, slot_consistent  a set's counts match its slots; a slot runs an operation
//                                iff it is connecting/checking/acquiring/recycling, holds a
//                                connection iff idle/claimed/cooling
//   one_claim_per_connection     no slot or connection is held by two live claims
//   claimed_slot_stays           a held slot stays in its set, claimed, by its holder
//   served_slot_exists, served_from_live_set
//                                a served claim gets a claimed slot's connection, from a live
//                                backend (or the one its on_acquire ran on when it left)
//   claim_completes_once         once, never twice; all exactly once at the end
//   claim_deadline               never after the deadline (submit + timeout, or claim_timeout
//                                when 0); timeouts exactly at it; nothing pending past it;
//                                next_wakeup no later than the earliest deadline
//   claim_reason                 served; cancelled only by our cancel; terminated only after
//                                terminate; no_backends when none is published, else
//                                acquire_failed when an on_acquire failed for it last, else
//                                all_claims_used when a live set was online, else
//                                no_backends_online
//   fail_fast                    with fail_fast_without_backends, nobody waits while the
//                                published set is empty; claims then fail with no_backends
//   fifo                         a claim is not served while an earlier one still waits (one
//                                whose on_acquire failed goes first, the latest first)
//   prefer_idle                  a live set with an idle slot means nobody waits; a new claim
//                                or try_claim takes an idle slot when one exists
//   grow_when_room               a set short of its wanted count waits only for room
//   budget                       the live sets want min(claimed + waiting + spares,
//                                max_slots), as far as they can take it
//   backoff_bounds               a reconnect after a failed connect comes within [min, max +
//                                spread); after a loss, at once if the connection had lived
//                                max_connection_backoff, else within that range
//   normal_end                   a check that says the connection ended normally
//                                (errc::connection_ended) reconnects at once without a failure
//                                only if the connection was up min(1 s, max_connection_backoff)
//                                or on_recycle saw it; younger, it is a failure that backs off
//   health_check_timing          is_valid on an idle connection health_interval (+ a share
//                                of spread) after it became idle
//   time_bounds                  no check outlives health_check_timeout, no connect
//                                connect_timeout, without being cancelled
//   rearm_when_earlier           next_wakeup moves earlier only in an event that sets rearm
//   connections_closed_by_driver the core never destroys a connection: it hands it to close()
//   connections_accounted        every open connection is held by a slot or an operation
//   removed_sets_only_drain      a removed backend keeps only its claimed/acquiring slots
//   terminate_*, nothing_starts_after_terminate, end_*
//                                terminate completes every claim, starts nothing; after the
//                                drain: no connection, operation, wakeup, slot or waiter
//   stats_agree                  stats().claim_failures match what the claimers saw
//   claim_tracked, ops_accounted, observations_complete, try_claim, timer_fired_progresses,
//   drain_ends                   the core's counts and answers agree with what the driver saw
//                                (waiting() is the claims queued, an operation has its
//                                op_started, timer_fired makes progress, the drain ends)
#include "sim/simulator.hpp"

#include "core_support/harness.hpp"

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace qorb::sim {

void totals::add(const totals& t) {
  seeds += t.seeds;
  events += t.events;
  calls += t.calls;
  claims += t.claims;
  served += t.served;
  try_served += t.try_served;
  for (std::size_t i = 0; i < std::size(by_outcome); ++i) by_outcome[i] += t.by_outcome[i];
  connects += t.connects;
  checks += t.checks;
  ops_failed += t.ops_failed;
  ops_ended += t.ops_ended;
  ops_hung += t.ops_hung;
  late_finishes += t.late_finishes;
  for (const auto& [name, n] : t.skipped) skipped[name] += n;
}

namespace {

using core::claim_outcome;
using core::op_kind;
using core::slot_state;
using core::time_point;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

const char* outcome_name(claim_outcome o) {
  switch (o) {
    case claim_outcome::served:
      return "served";
    case claim_outcome::no_backends:
      return "no_backends";
    case claim_outcome::no_backends_online:
      return "no_backends_online";
    case claim_outcome::all_claims_used:
      return "all_claims_used";
    case claim_outcome::terminated:
      return "terminated";
    case claim_outcome::cancelled:
      return "cancelled";
    case claim_outcome::acquire_failed:
      return "acquire_failed";
  }
  return "?";
}

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
  char buf[512];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, args);
  va_end(args);
  return buf;
}

// A slot the driver cannot name: closed in the call that started its
// operation, in a seed run untraced.
constexpr std::uint64_t unknown_slot = UINT64_MAX;

std::string slot_name(std::uint64_t id) {
  if (id == unknown_slot) return "?";
  return format("%" PRIu64 ".%" PRIu64, std::uint64_t(id >> 48),
                std::uint64_t(id & 0xffffffffffffULL));
}

std::string show(duration d) {
  if (d == duration::max()) return "forever";
  return format("%.3fms", double(std::chrono::duration_cast<nanoseconds>(d).count()) / 1e6);
}

// ----- connections -----------------------------------------------------------

// The core never destroys a connection itself: it hands every box it is
// done with to the driver (effects::closing), which closes it. The driver
// sets `driver_closing` while it does so (and while it tears a run down);
// a box destroyed at any other time was dropped inside the core.
struct box_guard {
  bool driver_closing = false;
  std::uint64_t destroyed_by_core = 0;
};
box_guard g_boxes;  // the simulator is single-threaded

struct sim_box final : detail::connection_box {
  sim_box(int* live_count, int n) : live(live_count), id(n) { ++*live; }
  ~sim_box() override {
    --*live;
    if (!g_boxes.driver_closing) ++g_boxes.destroyed_by_core;
  }
  sim_box(const sim_box&) = delete;
  sim_box& operator=(const sim_box&) = delete;
  int* live;
  int id;
};

struct closing_scope {
  bool was = g_boxes.driver_closing;
  closing_scope() { g_boxes.driver_closing = true; }
  ~closing_scope() { g_boxes.driver_closing = was; }
  closing_scope(const closing_scope&) = delete;
  closing_scope& operator=(const closing_scope&) = delete;
};

// ----- what the driver keeps -------------------------------------------------

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

struct violation : std::runtime_error {
  using std::runtime_error::runtime_error;
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
  terminate
};

struct call_ctx {
  call_kind kind;
  sim_claim* target = nullptr;  // claim, cancel
  bool new_map_empty = false;   // backends
};

/// A slot as the post-call scan saw it.
struct seen_slot {
  core::slot* s;
  std::uint64_t id;
  slot_state st;
  const core::slot_set* set;
};

enum step_kind : std::size_t {
  k_resolver,
  k_health,
  k_finish,
  k_late,
  k_claim,
  k_try,
  k_cancel,
  k_release,
  k_discard,
  k_wake,
  k_advance,
  k_spurious,
  k_lost,
  k_report,
  k_count
};
constexpr std::array<double, k_count> base_weight = {
    3,   // resolver update
    2,   // a backend's health changes
    30,  // an operation ends
    3,   // a hung or cancelled operation ends late
    15,  // claim
    2,   // try_claim
    4,   // cancel a claim
    9,   // return a handle
    3,   // discard a handle
    8,   // to the next wakeup
    6,   // the clock moves a random amount
    1,   // a spurious timer_fired
    2,   // connection_lost
    1,   // failure_reported
};

class simulation {
 public:
  simulation(std::uint64_t seed, const options& opt)
      : seed_(seed), opt_(opt), rng_(seed), env_(seed) {
    choose_setup();
    state_ = std::make_unique<core::pool_state>(policy_, traits_, env_);
    armed_ = state_->next_wakeup();  // a driver arms its timer once it made the state
    start_ = env_.now();
    counts_.seeds = 1;
  }
  ~simulation() {
    closing_scope closing;
    state_.reset();
    ops_.clear();
  }
  simulation(const simulation&) = delete;
  simulation& operator=(const simulation&) = delete;

  result run() {
    result r;
    try {
      if (opt_.trace) trace_setup();
      for (event_ = 1; event_ <= opt_.events; ++event_) {
        if (event_ == terminate_at_) {
          step_terminate();
        } else if (event_ == 1 && publish_first_) {
          step_resolver(true);
        } else {
          step();
        }
        bound_stuck();
        ++counts_.events;
      }
      drain();
      check_end();
    } catch (const violation& v) {
      r.ok = false;
      r.failure = v.what();
    }
    r.counts = counts_;
    return r;
  }

 private:
  // ----- randomness --------------------------------------------------------

  std::uint64_t uni(std::uint64_t lo, std::uint64_t hi) {
    return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng_);
  }
  double real(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng_); }
  bool coin(double p) { return real(0, 1) < p; }
  template <class V>
  std::size_t pick(const V& v) {
    return std::size_t(uni(0, v.size() - 1));
  }

  void choose_setup() {
    auto& s = policy_.set_config;
    policy_.max_slots = uni(1, 32);
    s.max_count = uni(1, 16);
    policy_.spares_wanted = uni(0, 16);
    policy_.rebalance_interval = milliseconds(uni(20, 5000));
    policy_.claim_timeout = milliseconds(uni(5, 3000));
    policy_.fail_fast_without_backends = coin(0.3);
    s.min_connection_backoff =
        coin(0.2) ? duration(microseconds(uni(1, 999))) : duration(milliseconds(uni(1, 50)));
    s.max_connection_backoff = s.min_connection_backoff * std::int64_t(uni(1, 64));
    s.spread = coin(0.3) ? duration::zero() : duration(microseconds(uni(0, 20000)));
    if (coin(0.5)) {
      s.health_interval = std::nullopt;
    } else {
      s.health_interval = milliseconds(uni(5, 3000));
    }
    s.health_check_timeout = milliseconds(uni(1, 500));
    if (coin(0.5)) {
      s.connect_timeout = std::nullopt;
    } else {
      s.connect_timeout = milliseconds(uni(1, 1000));
    }
    validate(policy_);
    traits_.has_is_valid = coin(0.5);
    traits_.has_on_acquire = coin(0.5);
    const bool own_on_recycle = coin(0.5);
    traits_.has_on_recycle = traits_.has_is_valid || own_on_recycle;
    traits_.recycle_is_is_valid = traits_.has_is_valid && !own_on_recycle;

    backends_ = int(uni(1, 8));
    ports_.resize(std::size_t(backends_));
    for (int i = 0; i < backends_; ++i) ports_[std::size_t(i)] = std::uint16_t(1000 + i);
    in_set_.assign(std::size_t(backends_), false);
    connect_ok_.assign(std::size_t(backends_), 0.9);
    check_ok_.assign(std::size_t(backends_), 0.95);
    for (int i = 0; i < backends_; ++i) health(i);

    hang_connect_ = coin(0.3) ? 0.0 : real(0, 0.15);
    hang_check_ = coin(0.3) ? 0.0 : real(0, 0.15);
    lose_box_ = real(0, 1);
    ok_without_box_ = coin(0.5) ? 0.0 : real(0, 0.03);
    acquire_ok_ = real(0.4, 1);
    claim_cap_ = std::size_t(uni(2, 64));
    timed_ = coin(0.2) ? 0.0 : real(0.3, 1.0);
    publish_first_ = coin(0.85);
    // Most seeds run traced (the observations the backoff and health-check
    // checks follow); the rest run the core's untraced path, as a pool does.
    traced_ = coin(0.7);
    for (std::size_t k = 0; k < k_count; ++k) weight_[k] = base_weight[k] * real(0.2, 2.0);
    ended_ = coin(0.5) ? 0.0 : real(0, 0.6);
    if (opt_.events > 0) {
      const std::uint64_t n = opt_.events;
      terminate_at_ = coin(0.15) ? uni(n / 2 + 1, n) : uni(n - n / 10, n);
      if (terminate_at_ == 0) terminate_at_ = 1;
    }
  }

  /// A backend's health: how its connects and checks go.
  void health(int b) {
    static constexpr double levels[] = {1.0, 0.97, 0.8, 0.5, 0.1, 0.0};
    connect_ok_[std::size_t(b)] = levels[uni(0, std::size(levels) - 1)];
    check_ok_[std::size_t(b)] = levels[uni(0, 3)];
  }

  // ----- the steps -----------------------------------------------------------

  void step() {
    double total = 0;
    for (double w : weight_) total += w;
    double x = real(0, total);
    std::size_t k = 0;
    for (; k + 1 < k_count; ++k) {
      if (x < weight_[k]) break;
      x -= weight_[k];
    }
    switch (k) {
      case k_resolver:
        return step_resolver();
      case k_health: {
        const int b = int(uni(0, std::uint64_t(backends_ - 1)));
        health(b);
        describe("backend b%d health: connects ok %.2f, checks ok %.2f", b,
                 connect_ok_[std::size_t(b)], check_ok_[std::size_t(b)]);
        trace_step();
        return;
      }
      case k_finish:
        return step_finish(false);
      case k_late:
        return step_finish(true);
      case k_claim:
        return step_claim();
      case k_try:
        return step_try_claim();
      case k_cancel:
        return step_cancel();
      case k_release:
      case k_discard:
        return step_release(k == k_discard);
      case k_wake:
        return step_wake();
      case k_advance:
        return step_advance();
      case k_spurious:
        describe("timer_fired (spurious, no time passed)");
        trace_step();
        return call({call_kind::timer}, [&](core::effects& fx) { state_->timer_fired(fx); });
      case k_lost:
        return step_lost();
      case k_report:
        return step_report();
    }
  }

  void step_resolver(bool first = false) {
    const int b = int(uni(0, std::uint64_t(backends_ - 1)));
    const auto mode = first ? 0 : uni(0, 9);
    if (mode < 3) {  // a random subset
      for (std::size_t i = 0; i < in_set_.size(); ++i) in_set_[i] = coin(0.6);
      if (first) in_set_[std::size_t(b)] = true;
      describe("resolver: a new set");
    } else if (mode < 7) {  // one backend flaps
      in_set_[std::size_t(b)] = !in_set_[std::size_t(b)];
      describe("resolver: b%d %s", b, in_set_[std::size_t(b)] ? "appears" : "vanishes");
    } else if (mode < 8) {
      std::fill(in_set_.begin(), in_set_.end(), false);
      describe("resolver: no backends");
    } else if (mode < 9) {  // same name, new address: a removal and a new set
      in_set_[std::size_t(b)] = true;
      ports_[std::size_t(b)] = std::uint16_t(ports_[std::size_t(b)] + 100);
      describe("resolver: b%d moves to port %u", b, unsigned(ports_[std::size_t(b)]));
    } else {
      describe("resolver: the same set again");
    }
    if (state_->terminated()) {
      // The resolver may still publish; the core ignores it. What the
      // checker expects of the backends is what was published before.
      describe_more(" (after terminate)");
      trace_step();
      backend_map map = current_map();
      call({call_kind::backends}, [&](core::effects& fx) { state_->backends_changed(map, fx); });
      return;
    }
    published_ = true;
    published_empty_ = std::none_of(in_set_.begin(), in_set_.end(), [](bool x) { return x; });
    backend_map map = current_map();
    describe_more(" {%s}", names(map).c_str());
    // A flap or a move comes as a change (what the etcd resolver sends the
    // pool); new sets come whole. Both must leave the same pool.
    const bool as_change = !first && ((mode >= 3 && mode < 7) || mode == 8);
    if (as_change) describe_more(" as a change");
    trace_step();
    if (as_change) {
      backend_map added;
      std::vector<std::string> removed;
      for (const auto& [name, now] : map) {
        const auto it = last_map_.find(name);
        if (it == last_map_.end() || !(it->second == now)) added.emplace(name, now);
      }
      for (const auto& entry : last_map_) {
        if (!map.contains(entry.first)) removed.push_back(entry.first);
      }
      call({call_kind::backends, nullptr, map.empty()},
           [&](core::effects& fx) { state_->backends_delta(added, removed, fx); });
    } else {
      call({call_kind::backends, nullptr, map.empty()},
           [&](core::effects& fx) { state_->backends_changed(map, fx); });
    }
    last_map_ = std::move(map);
  }

  backend_map current_map() const {
    backend_map map;
    for (int i = 0; i < backends_; ++i) {
      if (!in_set_[std::size_t(i)]) continue;
      std::string name = format("b%d", i);  // not "b" + to_string: GCC 12 -O3 -Wrestrict
      map.emplace(name, backend{name, {asio::ip::address_v4::loopback(), ports_[std::size_t(i)]}});
    }
    return map;
  }
  static std::string names(const backend_map& map) {
    std::string out;
    for (const auto& entry : map) {
      if (!out.empty()) out.push_back(' ');
      out.append(entry.first);
    }
    return out;
  }

  void step_finish(bool late) {
    // An operation answers now, out of turn (`late`: one that hangs or was
    // cancelled).
    std::vector<std::size_t> candidates;
    for (std::size_t i = 0; i < ops_.size(); ++i) {
      const bool stuck = ops_[i].hang || ops_[i].cancelled;
      if (stuck == late) candidates.push_back(i);
    }
    if (candidates.empty()) return step_wake();
    const std::size_t i = candidates[pick(candidates)];
    pending_op op = std::move(ops_[i]);
    ops_.erase(ops_.begin() + std::ptrdiff_t(i));
    finish(std::move(op), late);
  }

  void finish(pending_op op, bool late) {
    const std::size_t b = std::size_t(op.backend);
    bool ok;
    switch (op.kind) {
      case op_kind::connect:
        ok = coin(connect_ok_[b]);
        break;
      case op_kind::on_acquire:
        ok = coin(acquire_ok_ * check_ok_[b]);
        break;
      default:
        ok = coin(check_ok_[b]);
        break;
    }
    // A check may say the server ended the connection normally.
    const bool ended = !ok && op.kind != op_kind::connect && coin(ended_);
    detail::box_ptr box = std::move(op.box);
    if (op.kind == op_kind::connect && ok) box = std::make_unique<sim_box>(&live_, ++boxes_made_);
    bool lost_box = false;
    if (box && (ok ? coin(ok_without_box_) : coin(lose_box_))) {
      closing_scope closing;  // the connector dropped it: the driver's doing
      box.reset();
      lost_box = true;
    }
    if (late) ++counts_.late_finishes;
    if (!ok) ++counts_.ops_failed;
    describe("op %" PRIu64 " (%s, slot %s, b%d) %s%s%s%s", op.id, core::to_string(op.kind),
             slot_name(op.slot_id).c_str(), op.backend,
             ok      ? "succeeds"
             : ended ? "ends normally"
                     : "fails",
             lost_box ? " without its connection" : "",
             op.cancelled ? " after its cancellation" : "",
             op.hang && !op.cancelled ? " (was hanging)" : "");
    trace_step();
    if (ended) ++counts_.ops_ended;
    call({call_kind::op}, [&](core::effects& fx) {
      if (ended) {
        state_->op_ended(op.id, std::move(box), "ended (sim)", fx);
      } else {
        state_->op_finished(op.id, ok, std::move(box), ok ? std::string() : "failed (sim)", fx);
      }
    });
  }

  void step_claim() {
    if (active_.size() >= claim_cap_) return step_finish(false);
    duration timeout = duration::zero();
    const auto mode = uni(0, 99);
    if (mode < 30) {
      timeout = duration::zero();  // the policy's claim_timeout
    } else if (mode < 88) {
      timeout = nanoseconds(uni(
          1000000,
          std::uint64_t(2 *
                        std::chrono::duration_cast<nanoseconds>(policy_.claim_timeout).count())));
    } else if (mode < 96) {
      timeout = nanoseconds(uni(1, 1000000));
    } else if (mode < 98) {
      timeout = std::chrono::hours(uni(1, 1000));
    } else {
      timeout = duration::max();
    }
    claims_.emplace_back();
    sim_claim& c = claims_.back();
    c.serial = claims_.size();
    c.timeout = timeout;
    c.submitted = env_.now();
    c.deadline =
        core::after(c.submitted, timeout > duration::zero() ? timeout : policy_.claim_timeout);
    active_.push_back(&c);
    ++counts_.claims;
    describe("claim #%" PRIu64 " timeout %s", c.serial,
             timeout == duration::zero()
                 ? ("0 (policy: " + show(policy_.claim_timeout) + ")").c_str()
                 : show(timeout).c_str());
    trace_step();
    call({call_kind::claim, &c}, [&](core::effects& fx) { state_->claim(c, fx); });
  }

  void step_try_claim() {
    describe("try_claim");
    trace_step();
    try_got_ = nullptr;
    call({call_kind::try_claim}, [&](core::effects& fx) { try_got_ = state_->try_claim(fx); });
  }

  void step_cancel() {
    sim_claim* c = nullptr;
    if (!active_.empty() && coin(0.9)) {
      c = active_[pick(active_)];
    } else if (!claims_.empty()) {
      c = &claims_[pick(claims_)];
    }
    if (!c) return step_claim();
    describe("cancel claim #%" PRIu64 " (%s)", c->serial,
             c->completions ? "completed already" : "pending");
    trace_step();
    call({call_kind::cancel, c}, [&](core::effects& fx) { state_->cancel(*c, fx); });
  }

  void step_release(bool discard) {
    if (held_.empty()) return step_claim();
    const std::size_t i = pick(held_);
    const held_conn h = held_[i];
    held_.erase(held_.begin() + std::ptrdiff_t(i));
    describe("%s slot %s (claim #%" PRIu64 ")", discard ? "discard" : "return",
             slot_name(h.slot_id).c_str(), h.c ? h.c->serial : 0);
    trace_step();
    call({call_kind::release}, [&](core::effects& fx) { state_->release(*h.s, discard, fx); });
  }

  void step_wake() {
    const auto next = state_->next_wakeup();
    if (!next || *next - env_.now() > std::chrono::hours(1)) return step_advance();
    describe("clock to the next wakeup, +%s", show(*next - env_.now()).c_str());
    trace_step();
    advance_to(*next);
  }

  void step_advance() {
    const auto mode = uni(0, 9);
    duration scale;
    if (mode < 5) {
      scale = 2 * policy_.set_config.min_connection_backoff;
    } else if (mode < 8) {
      scale = policy_.claim_timeout;
    } else {
      scale = 2 * std::max(policy_.rebalance_interval, policy_.set_config.max_connection_backoff);
    }
    const duration d =
        nanoseconds(uni(0, std::uint64_t(std::chrono::duration_cast<nanoseconds>(scale).count())));
    describe("clock +%s", show(d).c_str());
    trace_step();
    advance_to(core::after(env_.now(), d));
  }

  /// Moves the clock to `end` through every wakeup and every operation
  /// that answers on the way, in time order (a tie goes either way, at
  /// random: an answer races its timeout), as a punctual driver would. A
  /// step handles at most 256 of them (the clock stops where it got to), so
  /// a long advance over many short timers stays cheap.
  void advance_to(time_point end) {
    int at_same_time = 0;
    for (int fired = 0; fired < 256; ++fired) {
      const auto next = state_->next_wakeup();
      std::size_t op = ops_.size();
      for (std::size_t i = 0; i < ops_.size(); ++i) {
        if (ops_[i].due && *ops_[i].due <= end &&
            (op == ops_.size() || *ops_[i].due < *ops_[op].due))
          op = i;
      }
      const bool timer_due = next && *next <= end;
      if (!timer_due && op == ops_.size()) {
        if (end > env_.now()) env_.set(end);
        return;
      }
      const bool answer = op != ops_.size() && (!timer_due || *ops_[op].due < *next ||
                                                (*ops_[op].due == *next && coin(0.5)));
      const time_point at = answer ? *ops_[op].due : *next;
      if (at > env_.now()) {
        env_.set(at);
        at_same_time = 0;
      } else if (!answer && ++at_same_time > 64) {
        fatal("timer_fired_progresses",
              "next_wakeup stays at or before now after 64 timer_fired calls at this time");
      }
      if (answer) {
        pending_op done = std::move(ops_[op]);
        ops_.erase(ops_.begin() + std::ptrdiff_t(op));
        const bool late = done.cancelled;
        finish(std::move(done), late);
      } else {
        describe("timer_fired");
        call({call_kind::timer}, [&](core::effects& fx) { state_->timer_fired(fx); });
      }
    }
  }

  /// At most 32 operations hang or wait to answer a cancellation: the
  /// oldest answer late.
  void bound_stuck() {
    for (;;) {
      std::size_t stuck = 0, oldest = ops_.size();
      for (std::size_t i = 0; i < ops_.size(); ++i) {
        if (!(ops_[i].hang || ops_[i].cancelled)) continue;
        if (++stuck == 1) oldest = i;
      }
      if (stuck <= 32) return;
      pending_op op = std::move(ops_[oldest]);
      ops_.erase(ops_.begin() + std::ptrdiff_t(oldest));
      finish(std::move(op), true);
    }
  }

  void step_lost() {
    std::vector<core::slot*> idle, other;
    state_->for_each_set([&](const core::slot_set& set) {
      set.for_each(
          [&](core::slot& s) { (s.state() == slot_state::idle ? idle : other).push_back(&s); });
    });
    auto& from = (!idle.empty() && (other.empty() || coin(0.85))) ? idle : other;
    if (from.empty()) return step_wake();
    core::slot* s = from[pick(from)];
    describe("connection_lost on slot %s (%s)", slot_name(s->id()).c_str(),
             core::to_string(s->state()));
    trace_step();
    call({call_kind::lost},
         [&](core::effects& fx) { state_->connection_lost(*s, "lost (sim)", fx); });
  }

  void step_report() {
    if (held_.empty()) return step_claim();
    const held_conn& h = held_[pick(held_)];
    core::slot* s = h.s;
    describe("failure_reported on slot %s", slot_name(h.slot_id).c_str());
    trace_step();
    call({call_kind::report}, [&](core::effects& fx) { state_->failure_reported(*s, fx); });
  }

  void step_terminate() {
    describe("terminate");
    trace_step();
    bool first = false;
    call({call_kind::terminate}, [&](core::effects& fx) { first = state_->terminate(fx); });
    if (first == terminated_before_) {
      fail("terminate_once",
           first ? "terminate said first twice" : "the first terminate said it was not");
    }
    terminated_before_ = true;
  }

  /// The end: terminate (again: it must say it was already), every handle
  /// returned, every operation answered.
  void drain() {
    event_ = opt_.events + 1;
    step_terminate();
    while (!held_.empty()) {
      ++event_;
      step_release(coin(0.3));
    }
    for (int guard = 0; !ops_.empty(); ++guard) {
      if (guard > 100000) fatal("drain_ends", "operations keep starting after terminate");
      ++event_;
      pending_op op = std::move(ops_.front());
      ops_.erase(ops_.begin());
      const bool late = op.hang || op.cancelled;
      finish(std::move(op), late);
    }
    ++event_;
    describe("drain done");
  }

  void check_end() {
    if (live_ != 0) fail("end_no_connections", format("%d connections still open", live_));
    if (state_->ops_running() != 0) {
      fail("end_no_operations", format("ops_running() == %zu", state_->ops_running()));
    }
    if (const auto next = state_->next_wakeup()) {
      fail("end_no_wakeup", format("next_wakeup in %s", show(*next - env_.now()).c_str()));
    }
    if (state_->total_slots() != 0) {
      fail("end_no_slots", format("total_slots() == %zu", state_->total_slots()));
    }
    if (state_->waiting() != 0)
      fail("end_no_waiters", format("waiting() == %zu", state_->waiting()));
    for (const sim_claim& c : claims_) {
      if (c.completions != 1) {
        fail("claim_completes_once",
             format("claim #%" PRIu64 " completed %d times", c.serial, c.completions));
      }
    }
    // The core's own counters agree with what its claimers saw.
    const pool_stats st = state_->stats();
    const auto& f = st.claim_failures;
    const auto& mine = counts_.by_outcome;
    auto n = [&](claim_outcome o) { return mine[std::size_t(o)]; };
    if (f.no_backends != n(claim_outcome::no_backends) ||
        f.no_backends_online != n(claim_outcome::no_backends_online) ||
        f.all_claims_used != n(claim_outcome::all_claims_used) ||
        f.terminated != n(claim_outcome::terminated) ||
        f.cancelled != n(claim_outcome::cancelled) ||
        f.acquire_failed != n(claim_outcome::acquire_failed)) {
      fail("stats_agree", "stats().claim_failures differ from the completions the claimers saw");
    }
    // (total_claims counts picks: a claim whose on_acquire failed counts
    // once per slot it tried.)
    if (st.total_claims < n(claim_outcome::served) + counts_.try_served) {
      fail("stats_agree", format("stats().total_claims %" PRIu64 " < %" PRIu64 " served",
                                 std::uint64_t(st.total_claims),
                                 std::uint64_t(n(claim_outcome::served) + counts_.try_served)));
    }
  }

  // ----- one call into the core, and the checks after it ----------------------

  template <class F>
  void call(call_ctx ctx, F&& event) {
    ++counts_.calls;
    ++call_no_;
    const time_point now = env_.now();
    // What the checker knows before the call.
    pre_terminated_ = state_->terminated();
    // Nothing changes between calls: the last call's scan is the state now.
    pre_idle_ = post_idle_;
    pre_online_ = post_online_;
    pre_empty_ = !published_ || published_empty_;
    for (sim_claim* c : active_) c->before = c->where;
    served_now_.clear();
    retried_.clear();

    core::effects fx;
    fx.trace = traced_;
    const std::uint64_t destroyed = g_boxes.destroyed_by_core;
    event(fx);
    if (g_boxes.destroyed_by_core != destroyed) {
      fail("connections_closed_by_driver",
           format("%" PRIu64 " connection(s) destroyed inside the core, not handed to close()",
                  g_boxes.destroyed_by_core - destroyed));
    }

    if (opt_.trace) trace_effects(fx);
    {
      closing_scope closing;
      fx.closing.clear();
    }
    observations(fx, now);
    starts(fx, now);
    for (core::op_id id : fx.cancels) {
      for (auto& op : ops_) {
        if (op.id == id) op.cancelled = true;
      }
    }
    scan();
    check_rearm(fx, now);
    for (const auto& c : fx.completions) completion(ctx, c, now);
    after_call(ctx, now);
  }

  // Observations the checker follows: a slot's connection and its
  // failures, for the backoff rules.
  void observations(const core::effects& fx, time_point now) {
    const auto& cfg = policy_.set_config;
    for (const auto& o : fx.seen) {
      using kind = core::observation::kind;
      switch (o.what) {
        case kind::op_succeeded:
          if (o.op == op_kind::connect) {
            up_since_[o.slot] = now;
            retry_.erase(o.slot);
          }
          break;
        case kind::op_failed:
          if (o.op == op_kind::connect) {
            if (!backoff_in_bounds(o.delay)) {
              fail("backoff_bounds",
                   format("slot %s: connect failed, delay %s outside [%s, %s + %s)",
                          slot_name(o.slot).c_str(), show(o.delay).c_str(),
                          show(cfg.min_connection_backoff).c_str(),
                          show(cfg.max_connection_backoff).c_str(), show(cfg.spread).c_str()));
            }
            retry_[o.slot] = {now, true, false, {}};
          } else if (!traced_) {
            retry_.erase(o.slot);  // untraced: no connect successes seen, no up times
          } else {
            const retry_rule r = lost(o.slot, now);
            if (o.op == op_kind::on_acquire &&
                !(r.immediate ? o.delay == duration::zero() : backoff_in_bounds(o.delay))) {
              fail("backoff_bounds",
                   format("slot %s: on_acquire failed after %s up, delay %s",
                          slot_name(o.slot).c_str(), show(r.up).c_str(), show(o.delay).c_str()));
            }
            if (o.op == op_kind::on_acquire) acquire_hold_[o.slot] = now + o.delay;
          }
          break;
        case kind::discarded:
        case kind::lost:
          if (traced_) {
            lost(o.slot, now);
          } else {
            retry_.erase(o.slot);
          }
          break;
        case kind::acquire_failed:
          retried_.push_back(o.claim);  // in the order the core put them back in line
          // Refused by on_acquire, or passed on because its connection
          // ended normally (flag): that is no refusal.
          if (o.flag) {
            refused_.erase(o.claim);
          } else {
            refused_.insert(o.claim);
          }
          break;
        case kind::ended:
          if (traced_) {
            const retry_rule r = lost(o.slot, now);
            const duration young =
                std::min<duration>(core::normal_end_min_age, cfg.max_connection_backoff);
            // An end on_recycle finds is never young, unless is_valid stands
            // in for it (it cannot tell a meant close from a drop).
            const bool judged = o.op != op_kind::on_recycle || traits_.recycle_is_is_valid;
            if (r.up < young && judged) {
              fail("normal_end",
                   format("slot %s: ended normally after %s up, younger than %s: not a failure",
                          slot_name(o.slot).c_str(), show(r.up).c_str(), show(young).c_str()));
            }
            // Found on the way back from a failed on_acquire: that
            // failure's backoff holds; else the connection is replaced at once.
            const auto hold = acquire_hold_.find(o.slot);
            if (o.op == op_kind::on_recycle && hold != acquire_hold_.end() && hold->second > now) {
              retry_[o.slot].at = hold->second;
            } else {
              retry_[o.slot].immediate = true;
            }
            if (hold != acquire_hold_.end()) acquire_hold_.erase(hold);
          } else {
            retry_.erase(o.slot);
          }
          break;
        case kind::state_changed:
          if (o.from == slot_state::idle) {
            const auto it = idle_since_.find(o.slot);
            if (o.to == slot_state::checking)
              health_check_due(
                  o.slot, it == idle_since_.end() ? std::nullopt : std::optional(it->second), now);
            if (it != idle_since_.end()) idle_since_.erase(it);
          }
          if (o.to == slot_state::idle) idle_since_[o.slot] = now;
          break;
        default:
          break;
      }
    }
  }

  /// An idle connection's is_valid comes health_interval (plus a share of
  /// spread) after it became idle, never sooner, never later.
  void health_check_due(std::uint64_t slot, std::optional<time_point> idle_since, time_point now) {
    const auto& cfg = policy_.set_config;
    if (!traits_.has_is_valid || !cfg.health_interval) {
      fail("health_check_timing",
           format("slot %s: a health check without is_valid and health_interval",
                  slot_name(slot).c_str()));
    }
    if (!idle_since) return;
    const duration d = now - *idle_since;
    const duration lo = *cfg.health_interval;
    if (d < lo || (d > lo && d >= lo + cfg.spread)) {
      fail("health_check_timing",
           format("slot %s: is_valid %s after it became idle (interval %s, spread %s)",
                  slot_name(slot).c_str(), show(d).c_str(), show(lo).c_str(),
                  show(cfg.spread).c_str()));
    }
  }

  retry_rule lost(std::uint64_t slot, time_point now) {
    const auto it = up_since_.find(slot);
    const duration up = it == up_since_.end() ? duration::zero() : now - it->second;
    up_since_[slot] = now;
    retry_rule r{now, false, up >= policy_.set_config.max_connection_backoff, up};
    retry_[slot] = r;
    return r;
  }

  bool backoff_in_bounds(duration d) const {
    const auto& cfg = policy_.set_config;
    if (d < cfg.min_connection_backoff) return false;
    if (cfg.spread == duration::zero()) return d <= cfg.max_connection_backoff;
    return d < cfg.max_connection_backoff + cfg.spread;
  }

  void starts(core::effects& fx, time_point now) {
    // Traced, each start has its op_started observation, in the same order.
    std::vector<const core::observation*> started;
    for (const auto& o : fx.seen) {
      if (o.what == core::observation::kind::op_started) started.push_back(&o);
    }
    if (traced_ ? started.size() != fx.starts.size() : !started.empty()) {
      fatal("observations_complete",
            format("%zu operations started, %zu op_started observations%s", fx.starts.size(),
                   started.size(), traced_ ? "" : " (untraced)"));
    }
    if (!fx.starts.empty() && state_->terminated()) {
      fail("nothing_starts_after_terminate",
           format("%s started after terminate", core::to_string(fx.starts.front().kind)));
    }
    for (std::size_t i = 0; i < fx.starts.size(); ++i) {
      auto& st = fx.starts[i];
      // The slot may have been closed later in the same call. A slot closed
      // in a call is freed at its end, so no slot made in the call has its
      // address: one found in the sets now is the slot that started.
      const core::slot* alive = nullptr;
      state_->for_each_set([&](const core::slot_set& set) {
        set.for_each([&](core::slot& x) {
          if (&x == st.s) alive = &x;
        });
      });
      std::uint64_t slot = unknown_slot;
      int b = 0;
      if (alive) {
        slot = alive->id();
        b = std::atoi(alive->set().target().name.c_str() + 1);
        if (traced_ && started[i]->slot != slot) {
          fatal("observations_complete",
                format("op %" PRIu64 " started on slot %s, observed on %s", st.id,
                       slot_name(slot).c_str(), slot_name(started[i]->slot).c_str()));
        }
      } else {
        if (traced_) slot = started[i]->slot;
        if (st.kind == op_kind::connect) b = std::atoi(st.target.name.c_str() + 1);
        if (std::find(fx.cancels.begin(), fx.cancels.end(), st.id) == fx.cancels.end()) {
          fail(
              "closed_slot_ops_cancelled",
              format("op %" PRIu64 " (%s) started on a slot closed in the same call, not cancelled",
                     st.id, core::to_string(st.kind)));
        }
      }
      bool hang;
      if (st.kind == op_kind::connect) {
        ++counts_.connects;
        if (slot != unknown_slot) check_retry(slot, now);
        hang = coin(policy_.set_config.connect_timeout ? hang_connect_ : hang_connect_ / 4);
      } else {
        ++counts_.checks;
        hang = coin(hang_check_);
      }
      if (hang) ++counts_.ops_hung;
      std::optional<time_point> due;
      if (!hang && coin(timed_)) {
        // Mostly within the operation's time bound, sometimes past it.
        const duration bound = st.kind == op_kind::connect
                                   ? policy_.set_config.connect_timeout.value_or(milliseconds(200))
                                   : policy_.set_config.health_check_timeout;
        due =
            now +
            nanoseconds(uni(
                0, std::uint64_t(std::chrono::duration_cast<nanoseconds>(bound).count() * 5 / 4)));
      }
      ops_.push_back({st.id, st.kind, slot, b, std::move(st.box), false, hang, now, due});
    }
  }

  void check_retry(std::uint64_t slot, time_point now) {
    acquire_hold_.erase(slot);  // a new connection: the old one's hold is over
    const auto it = retry_.find(slot);
    if (it == retry_.end()) return;
    const retry_rule r = it->second;
    retry_.erase(it);
    const duration d = now - r.since;
    const auto& cfg = policy_.set_config;
    const char* bad = nullptr;
    if (r.connect_failed) {
      if (!backoff_in_bounds(d))
        bad = "a reconnect after a failed connect outside [min, max + spread)";
    } else if (r.at) {
      if (now != *r.at)
        bad = "an end after a failed on_acquire not reconnected when its backoff ends";
    } else if (r.immediate) {
      if (d != duration::zero())
        bad = "a connection that lived max_connection_backoff not replaced at once";
    } else if (!backoff_in_bounds(d)) {
      bad = "a reconnect after a short-lived connection outside [min, max + spread)";
    }
    if (bad) {
      fail("backoff_bounds",
           format("slot %s: %s: connect %s after the %s (up %s; min %s max %s spread %s)",
                  slot_name(slot).c_str(), bad, show(d).c_str(),
                  r.connect_failed ? "failure" : "loss", show(r.up).c_str(),
                  show(cfg.min_connection_backoff).c_str(),
                  show(cfg.max_connection_backoff).c_str(), show(cfg.spread).c_str()));
    }
  }

  /// A driver asks next_wakeup() again only when an event says `rearm`
  /// (or its timer fired): the core must say so whenever the wakeup moved
  /// earlier than the one the driver holds.
  void check_rearm(const core::effects& fx, time_point now) {
    const auto next = state_->next_wakeup();
    if (fx.rearm) {
      armed_ = next;
      return;
    }
    if (next && (!armed_ || *next < *armed_)) {
      fail(
          "rearm_when_earlier",
          format("next_wakeup moved to %s from now, the driver's timer is %s, and rearm is not set",
                 show(*next - now).c_str(),
                 armed_ ? ("at +" + show(*armed_ - now)).c_str() : "unset"));
    }
  }

  /// Walks every set and slot: the caps, the counts, what each slot holds.
  void scan() {
    slots_.clear();
    std::size_t total = 0;
    post_idle_ = post_online_ = false;
    live_claimed_ = live_wanted_ = live_online_ = live_offline_ = 0;
    short_set_ = nullptr;
    std::size_t boxes = 0;
    const std::size_t max_count = policy_.set_config.max_count;
    state_->for_each_set([&](const core::slot_set& set) {
      std::array<std::size_t, std::size_t(slot_state::closed) + 1> by{};
      std::size_t n = 0;
      set.for_each([&](core::slot& s) {
        ++n;
        if (const std::size_t st = std::size_t(s.state()); st < by.size()) ++by[st];
        slots_.push_back({&s, s.id(), s.state(), &set});
        if (s.connection()) ++boxes;
        check_slot(s);
        if (set.removed && s.state() != slot_state::claimed && s.state() != slot_state::acquiring) {
          fail("removed_sets_only_drain",
               format("slot %s of removed %s is %s", slot_name(s.id()).c_str(),
                      set.target().name.c_str(), core::to_string(s.state())));
        }
      });
      total += n;
      if (n != set.size())
        fail("set_counts",
             format("%s: size() %zu, %zu slots", set.target().name.c_str(), set.size(), n));
      for (std::size_t st = 0; st < by.size(); ++st) {
        if (by[st] != set.count(slot_state(st))) {
          fail("set_counts",
               format("%s: count(%s) %zu, %zu slots in it", set.target().name.c_str(),
                      core::to_string(slot_state(st)), set.count(slot_state(st)), by[st]));
        }
      }
      if (by.back() != 0)
        fail("set_counts", format("a closed slot is still in %s", set.target().name.c_str()));
      if ((set.idle_front() != nullptr) != (set.unclaimed() > 0)) {
        fail("set_counts",
             format("%s: idle list and unclaimed() disagree", set.target().name.c_str()));
      }
      if (set.size() > max_count) {
        fail("max_count", format("%s has %zu slots, max_count %zu", set.target().name.c_str(),
                                 set.size(), max_count));
      }
      if (!set.removed) {
        post_idle_ = post_idle_ || set.unclaimed() > 0;
        post_online_ = post_online_ || set.online();
        live_claimed_ += set.claimed();
        live_wanted_ += set.wanted;
        (set.reported_online ? live_online_ : live_offline_) += 1;
        if (set.size() < set.wanted && !short_set_) short_set_ = &set;
      }
    });
    by_address_.clear();
    for (std::size_t i = 0; i < slots_.size(); ++i) by_address_.push_back({slots_[i].s, i});
    std::sort(by_address_.begin(), by_address_.end());
    if (total != state_->total_slots()) {
      fail("total_slots",
           format("total_slots() %zu, %zu slots in the sets", state_->total_slots(), total));
    }
    if (total > policy_.max_slots) {
      fail("max_slots", format("%zu slots, max_slots %zu", total, policy_.max_slots));
    }
    for (const auto& op : ops_) {
      if (op.box) ++boxes;
    }
    if (std::size_t(live_) != boxes) {
      fail("connections_accounted",
           format("%d connections open, %zu held by slots and operations", live_, boxes));
    }
    if (state_->ops_running() > ops_.size()) {
      fail("ops_accounted", format("ops_running() %zu, %zu operations outstanding",
                                   state_->ops_running(), ops_.size()));
    }
  }

  void check_slot(const core::slot& s) {
    const slot_state st = s.state();
    const bool busy = st == slot_state::connecting || st == slot_state::replacing ||
                      st == slot_state::checking || st == slot_state::acquiring ||
                      st == slot_state::recycling;
    const char* bad = nullptr;
    if (busy != s.running()) {
      bad = busy ? "no operation running" : "an operation running";
    } else if ((st == slot_state::idle || st == slot_state::claimed || st == slot_state::cooling) &&
               !s.connection()) {
      bad = "no connection";
    } else if ((busy || st == slot_state::backing_off) && s.connection()) {
      bad = busy ? "a connection while its operation has it"
                 : "a connection while it waits to connect";
    }
    if (bad) {
      fail("slot_consistent",
           format("slot %s is %s with %s", slot_name(s.id()).c_str(), core::to_string(st), bad));
    }
  }

  const seen_slot* find_slot(const core::slot* s) const {
    const auto it = std::lower_bound(by_address_.begin(), by_address_.end(),
                                     std::pair<const core::slot*, std::size_t>{s, 0});
    return it != by_address_.end() && it->first == s ? &slots_[it->second] : nullptr;
  }

  void completion(const call_ctx& ctx, const core::completion& comp, time_point now) {
    auto* c = static_cast<sim_claim*>(comp.claim);
    if (c->completions++ > 0) {
      fail("claim_completes_once",
           format("claim #%" PRIu64 " completed again (%s, first %s)", c->serial,
                  outcome_name(comp.outcome), c->outcome ? outcome_name(*c->outcome) : "?"));
    }
    c->outcome = comp.outcome;
    c->completed_at = now;
    active_.erase(std::find(active_.begin(), active_.end(), c));
    ++counts_.by_outcome[std::size_t(comp.outcome)];
    auto bad = [&](const char* invariant, const std::string& why) {
      fail(invariant,
           format("claim #%" PRIu64 " (submitted %s ago, deadline in %s) %s: %s", c->serial,
                  show(now - c->submitted).c_str(), show(c->deadline - now).c_str(),
                  outcome_name(comp.outcome), why.c_str()));
    };
    if (now > c->deadline) bad("claim_deadline", "completed after its deadline");
    switch (comp.outcome) {
      case claim_outcome::served: {
        ++counts_.served;
        if (pre_terminated_ || ctx.kind == call_kind::terminate)
          bad("claim_reason", "served after terminate");
        const seen_slot* s = comp.s ? find_slot(comp.s) : nullptr;
        if (!s) {
          fatal("served_slot_exists",
                format("claim #%" PRIu64 " served: its slot is not in any set", c->serial));
        }
        if (s->st != slot_state::claimed || comp.s->claim() != c) {
          bad("served_slot_exists", format("its slot %s is %s, claimed by another",
                                           slot_name(s->id).c_str(), core::to_string(s->st)));
        }
        if (!comp.box || comp.box != comp.s->connection())
          bad("served_slot_exists", "not given the slot's connection");
        // A claim is taken by live backends only; one whose on_acquire ran
        // when its backend left may still get that connection.
        if (s->set->removed && c->before != core::claim_node::phase::acquiring) {
          bad("served_from_live_set", "served from a removed backend");
        }
        for (const auto& h : held_) {
          if (h.s == comp.s || h.conn == comp.box) {
            bad("one_claim_per_connection",
                format("slot %s is held by claim #%" PRIu64 " already", slot_name(s->id).c_str(),
                       h.c ? h.c->serial : 0));
          }
        }
        held_.push_back({c, comp.s, s->id, comp.box});
        served_now_.push_back(c);
        break;
      }
      case claim_outcome::cancelled:
        if (ctx.kind != call_kind::cancel || ctx.target != c)
          bad("claim_reason", "cancelled, but not by us");
        break;
      case claim_outcome::terminated:
        if (!pre_terminated_ && ctx.kind != call_kind::terminate)
          bad("claim_reason", "terminated before terminate");
        break;
      default: {
        // A timeout, or fail-fast without backends.
        // (In any call: a claim whose on_acquire failed fails fast too.)
        const bool fail_fast = policy_.fail_fast_without_backends && published_ && published_empty_;
        if (fail_fast) {
          if (comp.outcome != claim_outcome::no_backends)
            bad("claim_reason", "fail-fast without backends is no_backends");
          break;
        }
        if (now != c->deadline) bad("claim_deadline", "failed before its deadline");
        const claim_outcome want = pre_empty_                 ? claim_outcome::no_backends
                                   : refused_.contains(c->id) ? claim_outcome::acquire_failed
                                   : pre_online_              ? claim_outcome::all_claims_used
                                                              : claim_outcome::no_backends_online;
        if (comp.outcome != want) {
          bad("claim_reason",
              format("the reason should be %s (backends published: %s, one online: %s)",
                     outcome_name(want), pre_empty_ ? "none" : "some", pre_online_ ? "yes" : "no"));
        }
        break;
      }
    }
  }

  void after_call(const call_ctx& ctx, time_point now) {
    // try_claim: a connection only when one was idle, and never with on_acquire.
    if (ctx.kind == call_kind::try_claim) {
      if (try_got_) {
        const seen_slot* s = find_slot(try_got_);
        if (traits_.has_on_acquire)
          fail("try_claim", "try_claim served though the connector has on_acquire");
        if (!s || s->st != slot_state::claimed)
          fatal("try_claim", "try_claim gave a slot that is not claimed");
        for (const auto& h : held_) {
          if (h.s == try_got_)
            fail("one_claim_per_connection", "try_claim gave a slot held already");
        }
        held_.push_back({nullptr, try_got_, s->id, try_got_->connection()});
        ++counts_.try_served;
      } else if (pre_idle_ && !pre_terminated_ && !traits_.has_on_acquire) {
        fail("prefer_idle", "try_claim found nothing while a backend had an idle connection");
      }
    }
    // Every connection handed out is still there, claimed, by its holder.
    for (const auto& h : held_) {
      const seen_slot* s = find_slot(h.s);
      if (!s || s->id != h.slot_id) {
        fatal("claimed_slot_stays", format("slot %s, held by claim #%" PRIu64 ", is gone",
                                           slot_name(h.slot_id).c_str(), h.c ? h.c->serial : 0));
      }
      if (s->st != slot_state::claimed || h.s->connection() != h.conn ||
          h.s->claim() != static_cast<core::claim_node*>(h.c)) {
        fail("claimed_slot_stays",
             format("slot %s, held by claim #%" PRIu64 ", is %s%s", slot_name(h.slot_id).c_str(),
                    h.c ? h.c->serial : 0, core::to_string(s->st),
                    h.s->connection() != h.conn ? " with another connection" : ""));
      }
    }
    // The queue, as the claimers see it.
    std::size_t queued = 0;
    bool any_blocker = false;
    int min_class = 2;
    std::int64_t min_key = 0;
    time_point earliest = time_point::max();
    for (sim_claim* c : active_) {
      if (c->where == core::claim_node::phase::queued) {
        ++queued;
        if (c->before == core::claim_node::phase::queued) {
          if (!any_blocker || c->key_class < min_class ||
              (c->key_class == min_class && c->key < min_key)) {
            min_class = c->key_class;
            min_key = c->key;
          }
          any_blocker = true;
        }
      }
      if (c->where == core::claim_node::phase::fresh || c->where == core::claim_node::phase::done) {
        fail("claim_tracked",
             format("claim #%" PRIu64 " is pending but neither queued nor acquiring", c->serial));
      }
      earliest = std::min(earliest, c->deadline);
      if (c->deadline <= now) {
        fail("claim_deadline", format("claim #%" PRIu64 " is still pending %s after its deadline",
                                      c->serial, show(now - c->deadline).c_str()));
      }
    }
    if (queued != state_->waiting()) {
      fail("claim_tracked", format("waiting() %zu, %zu claims queued", state_->waiting(), queued));
    }
    if (!active_.empty()) {
      const auto next = state_->next_wakeup();
      if (!next || *next > earliest) {
        fail("claim_deadline",
             format("a claim's deadline is in %s, next_wakeup %s", show(earliest - now).c_str(),
                    next ? ("in " + show(*next - now)).c_str() : "none"));
      }
    }
    // First come, first served: a claim taken from the queue (or a new
    // one served) while an earlier one stays queued jumped the line.
    if (any_blocker) {
      auto jumped = [&](sim_claim* c) {
        if (c->before == core::claim_node::phase::acquiring)
          return;  // its on_acquire failed: first in line
        const int cls = c->before == core::claim_node::phase::queued ? c->key_class : 1;
        const std::int64_t key =
            c->before == core::claim_node::phase::queued ? c->key : std::int64_t(c->serial);
        if (cls > min_class || (cls == min_class && key > min_key)) {
          fail("fifo", format("claim #%" PRIu64 " was served while an earlier claim still waits",
                              c->serial));
        }
      };
      for (sim_claim* c : served_now_) jumped(c);
      for (sim_claim* c : active_) {
        if (c->where == core::claim_node::phase::acquiring &&
            c->before != core::claim_node::phase::acquiring) {
          jumped(c);
        }
      }
    }
    // Places in the queue for the claims that joined it now: new ones at
    // the back, those whose on_acquire failed at the front, the last one
    // put back first.
    for (sim_claim* c : active_) {
      if (c->where != core::claim_node::phase::queued ||
          c->before == core::claim_node::phase::queued)
        continue;
      if (c->before == core::claim_node::phase::acquiring) {
        const auto at = std::find(retried_.begin(), retried_.end(), c->id);
        if (at == retried_.end()) {
          fail("claim_tracked",
               format("claim #%" PRIu64 " went from acquiring back to the queue without "
                      "an acquire_failed",
                      c->serial));
        }
        c->key_class = 0;
        c->key = -std::int64_t(front_pushes_ + std::uint64_t(at - retried_.begin()) + 1);
      } else {
        c->key_class = 1;
        c->key = std::int64_t(c->serial);
      }
    }
    front_pushes_ += retried_.size();
    // A backend with an idle connection means nobody waits.
    if (post_idle_ && state_->waiting() > 0) {
      fail("prefer_idle",
           format("%zu claims wait while a backend has an idle connection", state_->waiting()));
    }
    if (ctx.kind == call_kind::claim && !pre_terminated_ && pre_idle_ &&
        ctx.target->where == core::claim_node::phase::queued) {
      fail("prefer_idle", "a new claim was queued while a backend had an idle connection");
    }
    // fail_fast_without_backends: nobody waits while the set is empty.
    if (policy_.fail_fast_without_backends && published_ && published_empty_ &&
        !state_->terminated()) {
      if (ctx.kind == call_kind::claim && ctx.target->completions == 0) {
        fail("fail_fast", "a claim made while no backend is published did not fail at once");
      }
      if (ctx.kind == call_kind::backends && ctx.new_map_empty && state_->waiting() > 0) {
        fail("fail_fast", "claims still wait after the set became empty");
      }
    }
    // After terminate nothing waits, nothing acquires.
    if (state_->terminated() && !active_.empty()) {
      fail("terminate_completes",
           format("claim #%" PRIu64 " still pending after terminate", active_.front()->serial));
    }
    // A set short of its wanted count waits only for room under max_slots.
    if (!state_->terminated() && short_set_ && state_->total_slots() < policy_.max_slots) {
      const core::slot_set& set = *short_set_;
      fail("grow_when_room", format("%s has %zu slots, wants %zu, the pool has room (%zu of %zu)",
                                    set.target().name.c_str(), set.size(), set.wanted,
                                    state_->total_slots(), policy_.max_slots));
    }
    // Time bounds: the core gives up on a check after health_check_timeout
    // and on a connect after connect_timeout (an operation it gave up on is
    // cancelled).
    for (const auto& op : ops_) {
      if (op.cancelled) continue;
      const bool connect = op.kind == op_kind::connect;
      const std::optional<duration> bound =
          connect ? policy_.set_config.connect_timeout
                  : std::optional(policy_.set_config.health_check_timeout);
      if (bound && now - op.started >= *bound) {
        fail("time_bounds",
             format("op %" PRIu64 " (%s, slot %s) still runs %s after it started, bound %s", op.id,
                    core::to_string(op.kind), slot_name(op.slot_id).c_str(),
                    show(now - op.started).c_str(), show(*bound).c_str()));
      }
    }
    // The budget: the live sets want min(claimed + waiting + spares,
    // max_slots) in all, as far as they can take them (a probe for each
    // offline set, max_count for each online one).
    if (!state_->terminated()) {
      const std::size_t claimed = live_claimed_, wanted = live_wanted_, offline = live_offline_,
                        online = live_online_;
      const std::size_t needed =
          std::min(claimed + state_->waiting() + policy_.spares_wanted, policy_.max_slots);
      const std::size_t can_take = offline + online * policy_.set_config.max_count;
      if (wanted < std::min(needed, can_take)) {
        fail("budget",
             format("the sets want %zu slots; claimed %zu + waiting %zu + spares %zu "
                    "(max_slots %zu) asks for %zu, and %zu online + %zu offline sets can take %zu",
                    wanted, claimed, state_->waiting(), policy_.spares_wanted, policy_.max_slots,
                    needed, online, offline, can_take));
      }
    }
    // fail_fast_without_backends: nobody waits while the published set is empty.
    if (policy_.fail_fast_without_backends && published_ && published_empty_ &&
        !state_->terminated() && state_->waiting() > 0) {
      fail("fail_fast",
           format("%zu claims wait while the resolver's set is empty", state_->waiting()));
    }
    // Forget the backoff rules of slots that are gone or hold a connection
    // again (a hold after a failed on_acquire keeps its connection: no
    // connect follows).
    if (!retry_.empty()) {
      for (const auto& x : slots_) {
        if (x.st != slot_state::backing_off || x.s->connection()) retry_.erase(x.id);
      }
      if (retry_.size() > slots_.size() + 64) {  // slots gone (ids are never reused)
        for (auto it = retry_.begin(); it != retry_.end();) {
          const bool present = std::any_of(slots_.begin(), slots_.end(),
                                           [&](const seen_slot& x) { return x.id == it->first; });
          it = present ? std::next(it) : retry_.erase(it);
        }
      }
    }
    for (auto* m : {&up_since_, &idle_since_}) {
      if (m->size() <= 4 * slots_.size() + 64) continue;
      for (auto it = m->begin(); it != m->end();) {
        const bool present = std::any_of(slots_.begin(), slots_.end(),
                                         [&](const seen_slot& x) { return x.id == it->first; });
        it = present ? std::next(it) : m->erase(it);
      }
    }
  }

  // ----- reporting -----------------------------------------------------------

  void describe(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
    char buf[400];
    va_list args;
    va_start(args, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, args);
    va_end(args);
    desc_ = buf;
  }
  void describe_more(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
    char buf[400];
    va_list args;
    va_start(args, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, args);
    va_end(args);
    desc_ += buf;
  }

  /// A broken promise: the run stops here, unless `--skip` named it (then
  /// it is counted and the run goes on).
  void fail(const char* invariant, const std::string& why) {
    if (opt_.skip.contains(invariant)) {
      ++counts_.skipped[invariant];
      return;
    }
    fatal(invariant, why);
  }
  /// A broken promise after which the checker cannot go on.
  [[noreturn]] void fatal(const char* invariant, const std::string& why) {
    throw violation(format("FAIL seed %" PRIu64 " event %" PRIu64 "%s (call %" PRIu64
                           ", t=+%s): %s\n"
                           "  invariant %s: %s\n"
                           "  replay: qorb_sim --seed %" PRIu64 " --events %" PRIu64 " --trace",
                           seed_, event_, event_ > opt_.events ? " (drain)" : "", call_no_,
                           show(env_.now() - start_).c_str(), desc_.c_str(), invariant, why.c_str(),
                           seed_, opt_.events));
  }

  void trace_step() {
    if (!opt_.trace) return;
    std::printf("#%" PRIu64 " t=+%s %s\n", event_, show(env_.now() - start_).c_str(),
                desc_.c_str());
  }

  void trace_setup() {
    const auto& s = policy_.set_config;
    std::printf(
        "seed %" PRIu64
        ": max_slots %zu, max_count %zu, spares %zu, claim_timeout %s, "
        "rebalance %s, fail_fast %d\n"
        "  backoff [%s, %s] spread %s, health_interval %s, check timeout %s, connect_timeout %s\n"
        "  connector: is_valid %d, on_acquire %d, on_recycle %d; %d backends; "
        "hang connect %.2f check %.2f; terminate at event %" PRIu64 "; core %s\n",
        seed_, policy_.max_slots, s.max_count, policy_.spares_wanted,
        show(policy_.claim_timeout).c_str(), show(policy_.rebalance_interval).c_str(),
        int(policy_.fail_fast_without_backends), show(s.min_connection_backoff).c_str(),
        show(s.max_connection_backoff).c_str(), show(s.spread).c_str(),
        s.health_interval ? show(*s.health_interval).c_str() : "off",
        show(s.health_check_timeout).c_str(),
        s.connect_timeout ? show(*s.connect_timeout).c_str() : "none", int(traits_.has_is_valid),
        int(traits_.has_on_acquire), int(traits_.has_on_recycle), backends_, hang_connect_,
        hang_check_, terminate_at_, traced_ ? "traced" : "untraced (as a pool runs it)");
  }

  void trace_effects(const core::effects& fx) {
    std::string line;
    for (const auto& c : fx.completions) {
      const auto* sc = static_cast<const sim_claim*>(c.claim);
      line += format(" [claim #%" PRIu64 " %s", sc->serial, outcome_name(c.outcome));
      if (c.s) line += " slot " + slot_name(c.s->id());
      line += "]";
    }
    if (!traced_) {
      for (const auto& st : fx.starts)
        line += format(" [start %s op %" PRIu64 "]", core::to_string(st.kind), st.id);
    }
    for (const auto& o : fx.seen) {
      using kind = core::observation::kind;
      const char* set = o.set ? o.set->name.c_str() : "";
      switch (o.what) {
        case kind::op_started:
          line +=
              format(" [start %s %s %s]", core::to_string(o.op), set, slot_name(o.slot).c_str());
          break;
        case kind::op_failed:
          line += format(" [%s %s %s %s%s]", core::to_string(o.op), set, slot_name(o.slot).c_str(),
                         o.flag ? "timed out" : "failed",
                         o.delay > duration::zero() ? (", retry in " + show(o.delay)).c_str() : "");
          break;
        case kind::acquire_failed:
          line += " [claim retries]";
          break;
        case kind::discarded:
        case kind::lost:
          line += format(" [%s %s %s]", o.what == kind::lost ? "lost" : "discarded", set,
                         slot_name(o.slot).c_str());
          break;
        case kind::set_online:
          line += format(" [%s online%s]", set, o.flag ? "" : ", none unclaimed");
          break;
        case kind::set_offline:
          line += format(" [%s offline]", set);
          break;
        case kind::backend_added:
          line += format(" [+%s]", set);
          break;
        case kind::backend_removed:
          line += format(" [-%s, %zu claimed out]", set, o.count);
          break;
        default:
          break;
      }
    }
    if (!fx.cancels.empty()) line += format(" [%zu cancelled]", fx.cancels.size());
    if (!line.empty() || fx.closing.size()) {
      std::printf("   %s | slots %zu waiting %zu\n", line.c_str(), state_->total_slots(),
                  state_->waiting());
    }
  }

  // ----- state -----------------------------------------------------------------

  const std::uint64_t seed_;
  const options opt_;
  std::mt19937_64 rng_;
  policy policy_;
  core::connector_traits traits_;
  int backends_ = 1;
  std::vector<std::uint16_t> ports_;
  std::vector<bool> in_set_;
  std::vector<double> connect_ok_, check_ok_;
  double hang_connect_ = 0, hang_check_ = 0, lose_box_ = 0, ok_without_box_ = 0, acquire_ok_ = 1;
  double ended_ = 0;  // of failed checks, the share that say the connection ended normally
  std::set<std::uint64_t> refused_;  // claims whose last on_acquire failed
  std::size_t claim_cap_ = 16;
  double timed_ = 0.5;  // operations that answer by themselves as time passes
  std::array<double, k_count> weight_{};
  std::uint64_t terminate_at_ = 0;
  bool terminated_before_ = false;
  bool publish_first_ = true;
  bool traced_ = true;  // effects::trace for every call of this seed
  bool published_ = false, published_empty_ = true;
  backend_map last_map_;  // the set last published (whole or as a change)

  // Destroyed in reverse: the core first (it holds claims and connections),
  // then the claims, then the count every connection decrements.
  int live_ = 0;
  int boxes_made_ = 0;
  std::deque<sim_claim> claims_;
  test::manual_environment env_;
  std::unique_ptr<core::pool_state> state_;
  std::vector<pending_op> ops_;
  std::vector<held_conn> held_;
  std::vector<sim_claim*> active_;  // submitted, not completed, oldest first
  std::vector<sim_claim*> served_now_;
  std::vector<std::uint64_t> retried_;  // core claim ids, from acquire_failed
  std::vector<seen_slot> slots_;
  std::vector<std::pair<const core::slot*, std::size_t>> by_address_;  // slots_, by address
  std::size_t live_claimed_ = 0, live_wanted_ = 0, live_online_ = 0, live_offline_ = 0;
  const core::slot_set* short_set_ = nullptr;  // a live set with fewer slots than it wants
  std::map<std::uint64_t, retry_rule> retry_;
  std::map<std::uint64_t, time_point> acquire_hold_;  // a failed on_acquire: until when it holds
  std::map<std::uint64_t, time_point> up_since_;
  std::map<std::uint64_t, time_point> idle_since_;
  core::slot* try_got_ = nullptr;
  std::optional<time_point> armed_;  // the driver's timer, as fx.rearm told it
  std::uint64_t front_pushes_ = 0;

  time_point start_{};
  std::uint64_t event_ = 0, call_no_ = 0;
  std::string desc_;
  bool pre_terminated_ = false, pre_idle_ = false, pre_online_ = false, pre_empty_ = true;
  bool post_idle_ = false, post_online_ = false;
  totals counts_;
};

}  // namespace

result run_seed(std::uint64_t seed, const options& opt) {
  simulation sim(seed, opt);
  return sim.run();
}

}  // namespace qorb::sim
