// SPDX-License-Identifier: BSL-1.0
// The simulator: a driver for core::pool_state that acts at random (the
// resolver, the connector, the claimers, the clock) and, after every call
// into it, the checks of invariants.cpp, which hold the core to the
// promises of docs/behaviour.md and docs/policy.md (invariants.cpp lists
// them by the name a failure gives).
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

#include "sim/simulator.hpp"

#include "core_support/harness.hpp"
#include "sim/invariants.hpp"

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <deque>
#include <memory>
#include <optional>
#include <random>
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
  watches += t.watches;
  watches_ended += t.watches_ended;
  for (const auto& [name, n] : t.skipped) skipped[name] += n;
}

namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

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

// ----- the driver ----------------------------------------------------------------

struct violation : std::runtime_error {
  using std::runtime_error::runtime_error;
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
  k_evict,
  k_drain,
  k_set_policy,
  k_count
};
constexpr std::array<double, k_count> base_weight = {
    3,    // resolver update
    2,    // a backend's health changes
    30,   // an operation ends
    3,    // a hung or cancelled operation ends late
    15,   // claim
    2,    // try_claim
    4,    // cancel a claim
    9,    // return a handle
    3,    // discard a handle
    8,    // to the next wakeup
    6,    // the clock moves a random amount
    1,    // a spurious timer_fired
    2,    // an idle connection is lost (its watch ends)
    1,    // failure_reported
    0.3,  // evict_all
    0,    // async_drain (at drain_at_, in some seeds)
    0.3,  // set_policy (the sizes: max_slots, spares, min_idle, max_connecting)
};

class simulation final : reporter {
 public:
  simulation(std::uint64_t seed, const options& opt)
      : seed_(seed), opt_(opt), rng_(seed), env_(seed) {
    choose_setup();
    state_ = std::make_unique<core::pool_state>(policy_, traits_, env_);
    mem_.armed = state_->next_wakeup();  // a driver arms its timer once it made the state
    view_.emplace(view{*this, *state_, policy_, traits_, traced_, published_, published_empty_,
                       live_, claims_, active_, held_, ops_, counts_.by_outcome, counts_.try_served,
                       mem_});
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
        if (event_ == terminate_at_ || (drained_ && !terminated_before_)) {
          step_terminate();  // (a driver terminates a drained pool at once)
        } else if (event_ == drain_at_) {
          describe("async_drain");
          trace_step();
          call({call_kind::drain}, [&](core::effects& fx) { state_->begin_drain(fx); });
        } else if (event_ == 1 && publish_first_) {
          step_resolver(true);
        } else {
          step();
        }
        bound_stuck();
        ++counts_.events;
      }
      drain();
      check_end(*view_, env_.now());
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
    // A connection's life (issue: lifecycle): floors, lifetimes, idle timeouts.
    policy_.min_idle = coin(0.3) ? uni(0, policy_.max_slots) : 0;
    if (coin(0.3)) s.max_lifetime = milliseconds(uni(20, 5000));
    if (s.max_lifetime && coin(0.5))
      s.max_lifetime_jitter = std::chrono::duration_cast<duration>(*s.max_lifetime * real(0, 1));
    if (coin(0.3)) s.idle_timeout = milliseconds(uni(5, 3000));
    policy_.max_connecting = coin(0.5) ? uni(1, 16) : 8;
    policy_.failed_after = milliseconds(uni(1, 5000));
    policy_.wait_when_failed = coin(0.3);
    if (coin(0.3)) policy_.hold_warning = milliseconds(uni(1, 3000));
    validate(policy_);
    traits_.has_is_valid = coin(0.5);
    traits_.has_on_acquire = coin(0.5);
    const bool own_on_recycle = coin(0.5);
    traits_.has_on_recycle = traits_.has_is_valid || own_on_recycle;
    traits_.recycle_is_is_valid = traits_.has_is_valid && !own_on_recycle;
    traits_.has_watch = coin(0.5);

    backends_ = int(uni(1, 8));
    ports_.resize(std::size_t(backends_));
    for (int i = 0; i < backends_; ++i) ports_[std::size_t(i)] = std::uint16_t(1000 + i);
    in_set_.assign(std::size_t(backends_), false);
    connect_ok_.assign(std::size_t(backends_), 0.9);
    refuses_.assign(std::size_t(backends_), false);
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
      // Some seeds drain first: claims refused, then terminated once all are back.
      if (coin(0.2)) drain_at_ = uni(n / 2 + 1, n);
    }
  }

  /// A backend's health: how its connects and checks go.
  void health(int b) {
    static constexpr double levels[] = {1.0, 0.97, 0.8, 0.5, 0.1, 0.0};
    connect_ok_[std::size_t(b)] = levels[uni(0, std::size(levels) - 1)];
    // Some backends that refuse refuse for good (qorb::permanent_error).
    refuses_[std::size_t(b)] = connect_ok_[std::size_t(b)] < 0.5 && coin(0.3);
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
      case k_evict:
        describe("evict_all");
        trace_step();
        return call({call_kind::evict}, [&](core::effects& fx) { state_->evict_all(fx); });
      case k_drain:
        describe("async_drain");
        trace_step();
        return call({call_kind::drain}, [&](core::effects& fx) { state_->begin_drain(fx); });
      case k_set_policy:
        return step_set_policy();
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
      // A running watch ends only when its connection is lost (step_lost).
      if (ops_[i].kind == op_kind::watch && !ops_[i].cancelled) continue;
      if (stuck == late) candidates.push_back(i);
    }
    if (candidates.empty()) return step_wake();
    const std::size_t i = candidates[pick(candidates)];
    pending_op op = std::move(ops_[i]);
    ops_.erase(ops_.begin() + std::ptrdiff_t(i));
    finish(std::move(op), late);
  }

  void finish(pending_op op, bool late) {
    if (op.kind == op_kind::watch) return watch_ends(std::move(op));
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
        const bool permanent = !ok && op.kind == op_kind::connect && refuses_[b];
        state_->op_finished(op.id, ok, std::move(box),
                            ok          ? std::string()
                            : permanent ? "refused (sim)"
                                        : "failed (sim)",
                            fx, permanent);
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
      } else if (!answer) {
        check_timer_fired_progresses(*view_, ++at_same_time);
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

  // An idle connection dies: its watch ends (a running one; a cancelled
  // one's late answer is step_finish's).
  void step_lost() {
    std::vector<std::size_t> watching;
    for (std::size_t i = 0; i < ops_.size(); ++i) {
      if (ops_[i].kind == op_kind::watch && !ops_[i].cancelled) watching.push_back(i);
    }
    if (watching.empty()) return step_wake();
    const std::size_t i = watching[pick(watching)];
    pending_op op = std::move(ops_[i]);
    ops_.erase(ops_.begin() + std::ptrdiff_t(i));
    watch_ends(std::move(op));
  }

  // A watch's end: a loss (it threw or returned) or a normal end; stale
  // once cancelled.
  void watch_ends(pending_op op) {
    const bool normal = coin(ended_);
    const detail::connection_box* box = nullptr;
    if (!op.cancelled) {
      state_->for_each_set([&](const core::slot_set& set) {
        set.for_each([&](core::slot& x) {
          if (x.id() == op.slot_id) box = x.connection();
        });
      });
    }
    describe("watch %" PRIu64 " (slot %s, b%d) %s%s", op.id, slot_name(op.slot_id).c_str(),
             op.backend, normal ? "sees a normal end" : "sees the connection lost",
             op.cancelled ? " after its cancellation" : "");
    trace_step();
    ++counts_.watches_ended;
    call({.kind = call_kind::lost, .stale_watch = op.cancelled, .watched = box},
         [&](core::effects& fx) {
           if (normal) {
             state_->op_ended(op.id, nullptr, "ended (sim watch)", fx);
           } else {
             state_->op_finished(op.id, false, nullptr, "lost (sim watch)", fx);
           }
         });
  }

  void step_report() {
    if (held_.empty()) return step_claim();
    const held_conn& h = held_[pick(held_)];
    core::slot* s = h.s;
    describe("failure_reported on slot %s", slot_name(h.slot_id).c_str());
    trace_step();
    call({call_kind::report},
         [&](core::effects& fx) { state_->failure_reported(*s, "reported (sim)", fx); });
  }

  // New sizes; the slots' own rules (set_config) stay, so the timing
  // invariants keep their meaning.
  void step_set_policy() {
    policy p = policy_;
    p.max_slots = uni(1, 32);
    p.spares_wanted = uni(0, 16);
    p.min_idle = coin(0.3) ? uni(0, p.max_slots) : 0;
    p.max_connecting = uni(1, 16);
    validate(p);
    describe("set_policy: max_slots %zu, spares %zu, min_idle %zu, max_connecting %zu", p.max_slots,
             p.spares_wanted, p.min_idle, p.max_connecting);
    trace_step();
    mem_.slot_cap = state_->total_slots();
    policy_ = p;  // what the invariants read from now
    call({call_kind::set_policy}, [&](core::effects& fx) { state_->set_policy(policy_, fx); });
  }

  void step_terminate() {
    describe("terminate");
    trace_step();
    bool first = false;
    call({call_kind::terminate}, [&](core::effects& fx) { first = state_->terminate(fx); });
    check_terminate_once(*view_, first, terminated_before_);
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
      check_drain_ends(*view_, guard);
      ++event_;
      pending_op op = std::move(ops_.front());
      ops_.erase(ops_.begin());
      const bool late = op.hang || op.cancelled;
      finish(std::move(op), late);
    }
    ++event_;
    describe("drain done");
  }

  // ----- one call into the core, and the checks after it ----------------------

  template <class F>
  void call(call_ctx ctx, F&& event) {
    ++counts_.calls;
    ++call_no_;
    const time_point now = env_.now();
    const view& v = *view_;
    // What the checker knows before the call.
    mem_.pre_terminated = state_->terminated() || state_->draining();
    mem_.pre_killed = state_->terminated();
    const std::size_t connects_before = state_->connects_running();
    // Nothing changes between calls: the last call's scan is the state now.
    mem_.pre_idle = mem_.post_idle;
    mem_.pre_online = mem_.post_online;
    mem_.pre_empty = !published_ || published_empty_;
    for (sim_claim* c : active_) c->before = c->where;
    mem_.served_now.clear();
    mem_.retried.clear();

    core::effects fx;
    fx.trace = traced_;
    const std::uint64_t destroyed = g_boxes.destroyed_by_core;
    event(fx);
    check_connections_closed_by_driver(v, g_boxes.destroyed_by_core - destroyed);
    check_watch_end(v, ctx, fx);

    if (opt_.trace) trace_effects(fx);
    {
      closing_scope closing;
      fx.closing.clear();
    }
    follow_observations(v, fx, now);
    starts(fx, now);
    for (core::op_id id : fx.cancels) {
      for (auto& op : ops_) {
        if (op.id == id) op.cancelled = true;
      }
    }
    scan(v);
    std::size_t outstanding = 0;
    for (const auto& op : ops_) {
      if (op.kind == op_kind::connect && !op.cancelled) ++outstanding;
    }
    check_max_connecting(v, connects_before, outstanding);
    check_status(v, fx);
    for (const auto& o : fx.seen) {
      if (o.what == core::observation::kind::drained) drained_ = true;
    }
    check_rearm_when_earlier(v, fx, now);
    for (const auto& c : fx.completions) completion(ctx, c, now);
    after_call(ctx, now);
  }

  /// Each operation started becomes one the driver answers later.
  void starts(core::effects& fx, time_point now) {
    // Traced, each start has its op_started observation, in the same order.
    std::vector<const core::observation*> started;
    for (const auto& o : fx.seen) {
      if (o.what == core::observation::kind::op_started) started.push_back(&o);
    }
    check_observations_complete_count(*view_, fx, started.size());
    check_nothing_starts_after_terminate(*view_, fx);
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
        if (traced_) check_observations_complete_slot(*view_, st.id, slot, started[i]->slot);
      } else {
        if (traced_) slot = started[i]->slot;
        if (st.kind == op_kind::connect) b = std::atoi(st.target.name.c_str() + 1);
        check_closed_slot_ops_cancelled(*view_, fx, st);
      }
      check_watch_borrows_idle(*view_, st, alive);
      bool hang;
      if (st.kind == op_kind::watch) {
        // Runs until its connection is lost (step_lost) or it is cancelled.
        ++counts_.watches;
        ops_.push_back({st.id, st.kind, slot, b, nullptr, false, false, now, std::nullopt});
        continue;
      } else if (st.kind == op_kind::connect) {
        ++counts_.connects;
        if (slot != unknown_slot) check_backoff_bounds_on_connect(*view_, slot, now);
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

  void completion(const call_ctx& ctx, const core::completion& comp, time_point now) {
    auto* c = static_cast<sim_claim*>(comp.claim);
    check_claim_completes_once(*view_, *c, comp);
    ++c->completions;
    c->outcome = comp.outcome;
    c->completed_at = now;
    active_.erase(std::find(active_.begin(), active_.end(), c));
    ++counts_.by_outcome[std::size_t(comp.outcome)];
    const bool served = comp.outcome == claim_outcome::served;
    if (served) ++counts_.served;
    check_completion(*view_, ctx, *c, comp, now);
    if (served) {
      held_.push_back({c, comp.s, find_slot(*view_, comp.s)->id, comp.box});
      mem_.served_now.push_back(c);
    }
  }

  void after_call(const call_ctx& ctx, time_point now) {
    if (ctx.kind == call_kind::try_claim) {
      check_try_claim(*view_, try_got_);
      if (try_got_) {
        held_.push_back(
            {nullptr, try_got_, find_slot(*view_, try_got_)->id, try_got_->connection()});
        ++counts_.try_served;
      }
    }
    check_after_call(*view_, ctx, now);
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
  void fail(const char* invariant, const std::string& why) override {
    if (opt_.skip.contains(invariant)) {
      ++counts_.skipped[invariant];
      return;
    }
    fatal(invariant, why);
  }
  /// A broken promise after which the checker cannot go on.
  [[noreturn]] void fatal(const char* invariant, const std::string& why) override {
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
  std::vector<bool> refuses_;  // its failed connects are permanent
  double hang_connect_ = 0, hang_check_ = 0, lose_box_ = 0, ok_without_box_ = 0, acquire_ok_ = 1;
  double ended_ = 0;  // of failed checks, the share that say the connection ended normally
  std::size_t claim_cap_ = 16;
  double timed_ = 0.5;  // operations that answer by themselves as time passes
  std::array<double, k_count> weight_{};
  std::uint64_t terminate_at_ = 0;
  bool drained_ = false;  // the core said a drain ended: terminate next
  std::uint64_t drain_at_ = 0;
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
  core::slot* try_got_ = nullptr;

  time_point start_{};
  std::uint64_t event_ = 0, call_no_ = 0;
  std::string desc_;
  totals counts_;
  memory mem_;                // what the checks remember between calls
  std::optional<view> view_;  // what they read: set once the core is made
};

}  // namespace

result run_seed(std::uint64_t seed, const options& opt) {
  simulation sim(seed, opt);
  return sim.run();
}

}  // namespace qorb::sim
