// SPDX-License-Identifier: BSL-1.0
// A driver for the sans-I/O core in tests and the simulator: a manual
// clock, a seeded random source, counted fake connections, and the effects
// kept where a test can act on them (operations to finish, claims to read).
// No sockets, no threads, no waiting: time passes when a test says so.
#pragma once

#include <qorb/backend.hpp>
#include <qorb/policy.hpp>

#include "core/pool_state.hpp"

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace qorb::test {

using core::time_point;

/// A policy for core tests: claims wait 1 s, backoff 10 ms..1 s without
/// spread (delays are exact), checks time out after 100 ms.
inline policy small_policy(std::size_t max_slots = 16) {
  using namespace std::chrono_literals;
  policy p;
  p.max_slots = max_slots;
  p.claim_timeout = 1s;
  p.set_config.min_connection_backoff = 10ms;
  p.set_config.max_connection_backoff = 1s;
  p.set_config.spread = 0ms;
  p.set_config.health_check_timeout = 100ms;
  return p;
}

constexpr core::connector_traits acquiring{false, true, false};

class manual_environment final : public core::environment {
 public:
  explicit manual_environment(std::uint64_t seed = 1) : engine_(seed) {}
  time_point now() override { return now_; }
  double random01() override { return std::uniform_real_distribution<double>(0, 1)(engine_); }
  void advance(duration d) { now_ += d; }
  void set(time_point t) { now_ = t; }

 private:
  time_point now_{std::chrono::seconds(1000)};
  std::mt19937_64 engine_;
};

/// A connection that counts itself, so a test sees every one closed.
struct fake_box final : detail::connection_box {
  fake_box(int* live_count, std::string to, int n)
      : live(live_count), backend(std::move(to)), id(n) {
    ++*live;
  }
  ~fake_box() override { --*live; }
  fake_box(const fake_box&) = delete;
  fake_box& operator=(const fake_box&) = delete;
  int* live;
  std::string backend;
  int id;
};

/// A claim as a test holds it.
struct test_claim final : core::claim_node {
  int completions = 0;
  std::optional<core::claim_outcome> outcome;
  core::slot* s = nullptr;
  time_point completed_at{};
};

/// An operation the core started and the test has not finished.
struct pending_op {
  core::op_id id;
  core::op_kind kind;
  core::slot* s;
  std::string backend;
  detail::box_ptr box;  // checks
  bool cancelled = false;
};

class core_harness {
 public:
  explicit core_harness(const policy& p, core::connector_traits traits = {}, std::uint64_t seed = 1)
      : env_(seed), state_(p, traits, env_) {}

  core::pool_state& state() { return state_; }
  manual_environment& env() { return env_; }
  time_point now() { return env_.now(); }
  const policy& config() const { return state_.config(); }
  int live_connections() const { return live_; }
  const std::deque<pending_op>& pending() const { return ops_; }
  const std::vector<core::observation>& seen() const { return seen_; }
  std::size_t cancels() const { return cancels_; }

  /// Publishes backends named as given, at 127.0.0.1:port (port 1, 2, ...
  /// in the order of first mention).
  void backends(const std::vector<std::string>& names) {
    backend_map map;
    for (const auto& n : names) {
      auto [it, fresh] = ports_.emplace(n, static_cast<unsigned short>(ports_.size() + 1));
      map.emplace(n, backend{n, {asio::ip::make_address("127.0.0.1"), it->second}});
    }
    run([&](core::effects& fx) { state_.backends_changed(map, fx); });
  }

  /// Publishes a change to the set: `added` (new names, or new addresses for
  /// known ones) and the names `removed`.
  void delta(const backend_map& added, const std::vector<std::string>& removed) {
    run([&](core::effects& fx) { state_.backends_delta(added, removed, fx); });
  }

  /// A new claim (owned by the harness), submitted now.
  test_claim& claim(duration timeout = duration::zero(), const std::source_location& site = {}) {
    claims_.push_back(std::make_unique<test_claim>());
    test_claim& c = *claims_.back();
    c.timeout = timeout;
    c.site = site;
    run([&](core::effects& fx) { state_.claim(c, fx); });
    return c;
  }
  core::slot* try_claim(const std::source_location& site = {}) {
    core::slot* s = nullptr;
    run([&](core::effects& fx) { s = state_.try_claim(fx, false, site); });
    return s;
  }
  void cancel(test_claim& c) {
    run([&](core::effects& fx) { state_.cancel(c, fx); });
  }
  void release(core::slot* s, bool discard = false) {
    run([&](core::effects& fx) { state_.release(*s, discard, fx); });
  }
  void release(test_claim& c, bool discard = false) {
    core::slot* s = std::exchange(c.s, nullptr);
    if (s) release(s, discard);
  }
  void begin_drain() {
    run([&](core::effects& fx) { state_.begin_drain(fx); });
  }
  void set_policy(const policy& p) {
    run([&](core::effects& fx) { state_.set_policy(p, fx); });
  }
  /// Fails a pending connect permanently (the connector threw
  /// qorb::permanent_error).
  void refuse(core::op_id id) {
    for (auto it = ops_.begin(); it != ops_.end(); ++it) {
      if (it->id != id) continue;
      ops_.erase(it);
      run([&](core::effects& fx) {
        state_.op_finished(id, false, nullptr, "refused (test)", fx, true);
      });
      return;
    }
  }
  /// Refuses every pending connect (on `backend`); how many.
  int connect_refuse(const std::string& backend = {}) {
    int n = 0;
    for (int guard = 0; guard < 100000; ++guard) {
      pending_op* op = find(core::op_kind::connect, backend);
      if (!op) break;
      refuse(op->id);
      ++n;
    }
    return n;
  }
  /// Connects started and not yet answered or cancelled.
  std::size_t connects_pending() const {
    std::size_t n = 0;
    for (const auto& op : ops_) n += op.kind == core::op_kind::connect && !op.cancelled ? 1 : 0;
    return n;
  }
  void evict_all() {
    run([&](core::effects& fx) { state_.evict_all(fx); });
  }
  bool terminate() {
    bool first = false;
    run([&](core::effects& fx) { first = state_.terminate(fx); });
    return first;
  }

  /// The oldest pending operation of `kind` (on `backend`, if named).
  pending_op* find(core::op_kind kind, const std::string& backend = {}) {
    for (auto& op : ops_) {
      if (op.kind == kind && (backend.empty() || op.backend == backend)) return &op;
    }
    return nullptr;
  }
  /// Finishes a pending operation: ok gives a fresh connection (connect)
  /// or the one it took (checks); a failure keeps the box for checks
  /// unless `lose_box`.
  void finish(core::op_id id, bool ok, bool lose_box = false) {
    for (auto it = ops_.begin(); it != ops_.end(); ++it) {
      if (it->id != id) continue;
      pending_op op = std::move(*it);
      ops_.erase(it);
      detail::box_ptr box = std::move(op.box);
      if (op.kind == core::op_kind::connect && ok) {
        box = std::make_unique<fake_box>(&live_, op.backend, ++connections_made_);
      }
      if (lose_box) box.reset();
      run([&](core::effects& fx) {
        state_.op_finished(id, ok, std::move(box), ok ? "" : "failed (test)", fx);
      });
      return;
    }
  }
  /// Finishes a pending check saying its connection ended normally (the
  /// hook threw errc::connection_ended), giving back what it took.
  void end_normally(core::op_id id) {
    for (auto it = ops_.begin(); it != ops_.end(); ++it) {
      if (it->id != id) continue;
      detail::box_ptr box = std::move(it->box);
      ops_.erase(it);
      run([&](core::effects& fx) { state_.op_ended(id, std::move(box), "idle close (test)", fx); });
      return;
    }
  }
  /// Finishes every pending operation of `kind` (on `backend`) as given;
  /// how many.
  int finish_all(core::op_kind kind, bool ok, const std::string& backend = {}) {
    int n = 0;
    for (int guard = 0; guard < 100000; ++guard) {
      pending_op* op = find(kind, backend);
      if (!op) break;
      finish(op->id, ok);
      ++n;
    }
    return n;
  }
  int connect_ok(const std::string& backend = {}) {
    return finish_all(core::op_kind::connect, true, backend);
  }
  int connect_fail(const std::string& backend = {}) {
    return finish_all(core::op_kind::connect, false, backend);
  }

  /// Moves the clock forward by `d`, firing every wake-up on the way, in
  /// order (each at its own time).
  void advance(duration d) {
    const time_point end = core::after(env_.now(), d);
    for (int guard = 0; guard < 1000000; ++guard) {
      const auto next = state_.next_wakeup();
      if (!next || *next > end) break;
      if (*next > env_.now()) env_.set(*next);
      run([&](core::effects& fx) { state_.timer_fired(fx); });
    }
    env_.set(end);
  }

  std::size_t idle() const {
    return sum([](const core::slot_set& s) { return s.unclaimed(); });
  }
  std::size_t claimed() const {
    return sum([](const core::slot_set& s) { return s.claimed(); });
  }
  std::size_t slots_of(const std::string& name) const {
    std::size_t n = 0;
    state_.for_each_set([&](const core::slot_set& s) {
      if (s.target().name == name) n += s.size();
    });
    return n;
  }
  /// Called after every event with what it produced, before the harness
  /// keeps it (the simulator checks its invariants here).
  std::function<void(const core::effects&)> after_event;
  /// Whether events record the traced-only observations (as the driver
  /// does while a tracer or an observer listens).
  bool tracing = true;

 private:
  template <class F>
  std::size_t sum(F f) const {
    std::size_t n = 0;
    state_.for_each_set([&](const core::slot_set& s) { n += f(s); });
    return n;
  }

  template <class F>
  void run(F&& event) {
    core::effects fx;
    fx.trace = tracing;
    event(fx);
    if (after_event) after_event(fx);
    for (auto& start : fx.starts) {
      ops_.push_back(
          {start.id, start.kind, start.s, start.s->set().target().name, std::move(start.box)});
    }
    for (core::op_id id : fx.cancels) {
      for (auto& op : ops_) {
        if (op.id == id) op.cancelled = true;
      }
      ++cancels_;
    }
    fx.closing.clear();
    for (auto& c : fx.completions) {
      auto& tc = static_cast<test_claim&>(*c.claim);
      ++tc.completions;
      tc.outcome = c.outcome;
      tc.s = c.s;
      tc.completed_at = env_.now();
    }
    for (auto& o : fx.seen) seen_.push_back(std::move(o));
  }

  manual_environment env_;
  int live_ = 0;  // before state_: boxes the state holds die after it
  core::pool_state state_;
  std::map<std::string, unsigned short> ports_;
  std::deque<pending_op> ops_;
  std::vector<std::unique_ptr<test_claim>> claims_;
  std::vector<core::observation> seen_;
  std::size_t cancels_ = 0;
  int connections_made_ = 0;
};

}  // namespace qorb::test
