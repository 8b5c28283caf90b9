// The pool core: slot sets, slots, the claim queue and the rebalancer.
//
// Concurrency: all bookkeeping is guarded by one mutex (`mu_`), so claims and
// returns work from any thread without a hop through the executor; the
// claim and return paths touch no timer and post nothing in the common case.
// Everything slow runs outside the lock: connector operations run as
// coroutines on a per-slot strand, and claim completions, connection
// closes and cancellations are collected under the lock (`deferred`) and
// carried out after it is released.
//
// Slot states (see SPEC.md):
//
//   connecting --ok--> idle --claim--> claimed --return--> recycling
//      ^  |             |  ^                                   |
//      |  +-fail:       |  | ok                                | on_recycle
//      |    backoff     v  |                                   v
//      +--fail------ checking <--------------------------------+
//
// Every connector operation and every timer wait carries a generation number
// (`op_seq`, `timer_gen`); a result for an older generation is stale (the
// operation timed out, or the slot was removed) and its connection is closed.

#include <qorb/detail/pool_core.hpp>
#include <qorb/detail/sansio.hpp>
#include <qorb/error.hpp>

#include "probes.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/container/small_vector.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <map>
#include <mutex>
#include <random>
#include <vector>

namespace qorb::detail {

namespace {

using clock = std::chrono::steady_clock;

enum class slot_state : std::uint8_t { connecting, idle, checking, recycling, claimed, gone };

// A cancelled claim completes as Asio's own operations do.
error_code aborted() { return asio::error::operation_aborted; }

const char* state_name(slot_state st) {
  switch (st) {
    case slot_state::connecting:
      return "connecting";
    case slot_state::idle:
      return "unclaimed";
    case slot_state::checking:
      return "checking";
    case slot_state::recycling:
      return "recycling";
    case slot_state::claimed:
      return "claimed";
    case slot_state::gone:
      break;
  }
  return "terminated";
}

std::string describe(const std::exception_ptr& e) {
  if (!e) return "no connection returned";
  try {
    std::rethrow_exception(e);
  } catch (const boost::system::system_error& ex) {
    return ex.code().message();  // what() also has the throw site: noise in a log
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "unknown exception";
  }
}

}  // namespace

struct slot_set;

struct slot : std::enable_shared_from_this<slot> {
  slot(std::uint64_t slot_id, slot_set* owner, const asio::any_io_executor& ex)
      : id(slot_id), set(owner), strand(asio::make_strand(ex)), timer(strand) {}

  const std::uint64_t id;
  slot_set* set;  // the owning set while state != gone
  slot_state state = slot_state::connecting;
  box_ptr conn;  // empty while connecting or while an operation holds it
  asio::strand<asio::any_io_executor> strand;
  asio::steady_timer timer;  // backoff, operation timeout or next health check
  std::uint64_t timer_gen = 0;
  std::uint64_t op_seq = 0;
  bool op_running = false;
  std::shared_ptr<asio::cancellation_signal> op_signal;
  backoff retry;
  slot* idle_prev = nullptr;
  slot* idle_next = nullptr;
  claim_request* acquiring_for = nullptr;  // on_acquire running for this claim
};

struct slot_set {
  slot_set(std::uint16_t set_id, backend b, duration window_span)
      : id(set_id), be(std::move(b)), failures(window_span) {}

  bool online() const noexcept { return idle + checking + claimed > 0; }

  const std::uint16_t id;
  const backend be;
  std::vector<std::shared_ptr<slot>> slots;
  slot* idle_head = nullptr;
  std::size_t connecting = 0, idle = 0, checking = 0, claimed = 0;
  std::size_t wanted = 0;
  std::uint64_t next_slot = 0;
  bool removed = false;
  bool reported_online = false;
  bool reported_unclaimed = false;
  double score = 0;
  failure_window failures;
  std::uint64_t total_claims = 0, connect_failures = 0, check_failures = 0;
};

const backend& pool_core::backend_of(const slot* s) noexcept { return s->set->be; }
std::uint64_t pool_core::id_of(const slot* s) noexcept { return s->id; }

namespace {

// Work collected under the lock and done after it is released. A claim or
// a return usually completes at most one claim: room for one is inline, so
// the common case allocates nothing.
struct deferred {
  boost::container::small_vector<std::pair<claim_request*, error_code>, 1> failed;
  boost::container::small_vector<std::pair<claim_request*, slot*>, 1> granted;
  std::vector<box_ptr> closing;
  std::vector<std::shared_ptr<slot>> dropped;  // may own the last timer/strand

  void run() {
    for (auto& [r, ec] : failed) r->complete(ec, nullptr, nullptr);
    for (auto& [r, s] : granted) r->complete({}, s, s->conn.get());
    closing.clear();
    dropped.clear();
  }
};

enum class timer_purpose : std::uint8_t { backoff_over, op_timeout, health_due };

class core_impl final : public pool_core {
  // Holds mu_ for an entry point, and drops drained, removed sets just
  // before unlocking: only then can no caller still hold a reference to one.
  class locked_scope {
   public:
    explicit locked_scope(core_impl& core) : core_(core), lock_(core.mu_) {}
    locked_scope(const locked_scope&) = delete;
    locked_scope& operator=(const locked_scope&) = delete;
    ~locked_scope() { core_.reap_all(); }  // lock_ is released after this

   private:
    core_impl& core_;
    std::lock_guard<std::mutex> lock_;
  };

 public:
  core_impl(asio::any_io_executor ex, std::string name, std::shared_ptr<resolver> res,
            std::unique_ptr<connector_ops> ops, const policy& p, logger_ptr logger)
      : ex_(std::move(ex)),
        name_(std::move(name)),
        resolver_(std::move(res)),
        ops_(std::move(ops)),
        policy_(p),
        log_(std::move(logger)),
        claim_timer_(ex_),
        rebalance_timer_(ex_),
        rng_(std::random_device{}()) {}

  ~core_impl() override = default;

  void start() override {
    std::weak_ptr<pool_core> weak = weak_from_this();
    resolver_->start(ex_, [weak](const backend_map& backends) {
      if (auto self = weak.lock()) static_cast<core_impl&>(*self).on_backends(backends);
    });
    std::lock_guard lock(mu_);
    arm_rebalance_timer();
  }

  claimed_slot try_claim() noexcept override {
    std::lock_guard lock(mu_);
    if (terminated_) return {};
    const std::uint64_t id = ++claim_ids_;
    QORB_PROBE(claim_start, name_.c_str(), id);
    QORB_PROBE(pool_claim_start, name_.c_str(), id);
    slot* s = pick(id);
    if (!s) {
      QORB_PROBE(pool_claim_failed, name_.c_str(), id);
      QORB_PROBE(claim_failed, name_.c_str(), id, "no idle connection (try_claim)");
      return {};
    }
    mark_claimed(*s);
    claim_wait_.record(0.0);
    QORB_PROBE(pool_claim_done, name_.c_str(), id, s->id);
    claimed_probes(id, *s);
    finish(*s->set);
    return {s, s->conn.get()};
  }

  void submit(claim_request* r) override {
    deferred later;
    {
      locked_scope lock(*this);
      r->id = ++claim_ids_;
      QORB_PROBE(claim_start, name_.c_str(), r->id);
      serve_or_queue(r, /*front=*/false, later);
    }
    later.run();
  }

  void cancel(claim_request* r) noexcept override {
    deferred later;
    {
      locked_scope lock(*this);
      if (r->where == claim_request::phase::queued) {
        dequeue(r);
        fail(r, aborted(), later);
      } else if (r->where == claim_request::phase::acquiring) {
        // Complete the claim now; the slot keeps its connection and
        // recycles it when on_acquire ends (see acquire_done).
        r->acquiring_on->acquiring_for = nullptr;
        fail(r, aborted(), later);
      }
    }
    later.run();
  }

  void release(slot* s, bool discard) noexcept override {
    deferred later;
    {
      locked_scope lock(*this);
      QORB_PROBE(handle_returned, name_.c_str(), s->id);
      slot_set& set = *s->set;
      if (discard) {
        set.failures.add(clock::now());
        ++set.check_failures;
        later.closing.push_back(std::move(s->conn));
        if (must_remove(*s)) {
          remove_slot(*s, later);
        } else {
          start_connect(*s, duration::zero());
        }
      } else {
        recycle(*s, later);
      }
      finish(set);
    }
    later.run();
  }

  error_code terminate() noexcept override {
    deferred later;
    {
      locked_scope lock(*this);
      if (terminated_) return make_error_code(errc::terminated);
      terminated_ = true;
      log(spdlog::level::info, "terminating");
      fail_all_waiting(errc::terminated, later);
      claim_timer_.cancel();
      rebalance_timer_.cancel();
      while (!sets_.empty()) remove_set(sets_.begin(), later);
      // Claims whose on_acquire is running lose their slot now.
      for (auto& set : draining_) {
        for (auto& sp : std::vector(set->slots)) {
          if (claim_request* r = sp->acquiring_for) {
            sp->acquiring_for = nullptr;
            fail(r, make_error_code(errc::terminated), later);
            remove_slot(*sp, later);
          }
        }
      }
    }
    resolver_->stop();
    later.run();
    return {};
  }

  pool_stats stats() const override {
    std::lock_guard lock(mu_);
    pool_stats out;
    out.name = name_;
    out.total_claims = total_claims_;
    out.claims_waiting = waiting_;
    out.claim_failures = claim_failures_;
    out.claim_wait = claim_wait_;
    out.terminated = terminated_;
    const auto now = clock::now();
    auto add = [&](const slot_set& set, std::string key) {
      backend_stats b;
      b.address = set.be.address;
      b.connecting = set.connecting;
      b.unclaimed = set.idle;
      b.checking = set.checking;
      b.claimed = set.claimed;
      b.total_claims = set.total_claims;
      b.connect_failures = set.connect_failures;
      b.check_failures = set.check_failures;
      b.recent_failures = set.failures.count(now);
      b.online = set.online();
      b.removed = set.removed;
      out.backends.emplace(std::move(key), b);
    };
    for (const auto& [key, set] : sets_) add(*set, key);
    for (const auto& set : draining_) {
      add(*set, out.backends.contains(set->be.name) ? set->be.name + " (removed)" : set->be.name);
    }
    return out;
  }

  const asio::any_io_executor& executor() const noexcept override { return ex_; }
  const std::string& name() const noexcept override { return name_; }

  void connect_done(const op_context& ctx, std::exception_ptr e, box_ptr box) override {
    deferred later;
    {
      locked_scope lock(*this);
      slot& s = *ctx.target;
      if (!current_op(s, ctx.seq)) {
        later.closing.push_back(std::move(box));
      } else {
        end_op(s);
        slot_set& set = *s.set;
        if (e || !box) {
          QORB_PROBE(connect_failed, name_.c_str(), s.id, address_of(set).c_str(),
                     describe(e).c_str());
          ++set.connect_failures;
          set.failures.add(clock::now());
          const auto delay = s.retry.next(policy_.set_config, random01());
          // The first failure of a streak is news; the retries are not.
          log(s.retry.failures() == 1 ? spdlog::level::warn : spdlog::level::debug,
              "{}: connect failed (retry in {} ms): {}", set.be.name,
              std::chrono::duration_cast<std::chrono::milliseconds>(delay).count(), describe(e));
          start_connect(s, delay);
        } else {
          QORB_PROBE(connect_done, name_.c_str(), s.id, address_of(set).c_str());
          s.retry.reset();
          s.conn = std::move(box);
          settle(s, later);
        }
        finish(set);
      }
    }
    later.run();
  }

  void check_done(const op_context& ctx, check_kind kind, std::exception_ptr e,
                  check_result result) override {
    deferred later;
    {
      locked_scope lock(*this);
      slot& s = *ctx.target;
      if (!current_op(s, ctx.seq)) {
        later.closing.push_back(std::move(result.box));
      } else {
        end_op(s);
        slot_set& set = *s.set;
        const bool ok = !e && !result.error && result.box;
        check_probe(s, kind, ok, ok ? std::string() : describe(e ? e : result.error));
        if (!ok) {
          ++set.check_failures;
          set.failures.add(clock::now());
          log(spdlog::level::warn, "{}: {} failed: {}", set.be.name, kind_name(kind),
              describe(e ? e : result.error));
        }
        if (kind == check_kind::on_acquire) {
          acquire_done(s, ok, std::move(result.box), later);
        } else if (ok) {
          s.conn = std::move(result.box);
          settle(s, later);
        } else {
          later.closing.push_back(std::move(result.box));
          replace_connection(s, later);
        }
        finish(set);
      }
    }
    later.run();
  }

 private:
  template <class... Args>
  void log(spdlog::level::level_enum level, spdlog::format_string_t<Args...> fmt,
           Args&&... args) const {
    if (log_ && log_->should_log(level)) {
      log_->log(level, "pool {}: {}", name_, fmt::format(fmt, std::forward<Args>(args)...));
    }
  }

  static const char* kind_name(check_kind k) {
    switch (k) {
      case check_kind::is_valid:
        return "health check";
      case check_kind::on_acquire:
        return "on_acquire";
      case check_kind::on_recycle:
        return "on_recycle";
    }
    return "check";
  }

  double random01() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }

  // ----- slot bookkeeping --------------------------------------------------

  // The per-set counter a state is counted in (none for `gone`).
  static std::size_t* counter(slot_set& set, slot_state st) {
    switch (st) {
      case slot_state::connecting:
        return &set.connecting;
      case slot_state::idle:
        return &set.idle;
      case slot_state::checking:
      case slot_state::recycling:
        return &set.checking;
      case slot_state::claimed:
        return &set.claimed;
      case slot_state::gone:
        break;
    }
    return nullptr;
  }

  void set_state(slot& s, slot_state to) {
    if (s.state == to) return;
    if (auto* from = counter(*s.set, s.state)) --*from;
    if (auto* into = counter(*s.set, to)) ++*into;
    if (QORB_PROBE_ENABLED(slot_state_change)) {
      const slot_set& set = *s.set;
      const auto json = fmt::format(
          R"({{"connecting":{},"unclaimed":{},"checking":{},"claimed":{},"total_claims":{}}})",
          set.connecting, set.idle, set.checking, set.claimed, set.total_claims);
      QORB_PROBE(slot_state_change, name_.c_str(), address_of(set).c_str(), s.id,
                 state_name(s.state), state_name(to), json.c_str());
    }
    s.state = to;
  }

  static std::string address_of(const slot_set& set) { return to_string(set.be.address); }

  static void idle_push(slot_set& set, slot& s) {
    s.idle_prev = nullptr;
    s.idle_next = set.idle_head;
    if (set.idle_head) set.idle_head->idle_prev = &s;
    set.idle_head = &s;
  }

  static void idle_remove(slot_set& set, slot& s) {
    if (s.idle_prev) {
      s.idle_prev->idle_next = s.idle_next;
    } else {
      set.idle_head = s.idle_next;
    }
    if (s.idle_next) s.idle_next->idle_prev = s.idle_prev;
    s.idle_prev = s.idle_next = nullptr;
  }

  void mark_claimed(slot& s) {
    slot_set& set = *s.set;
    if (s.state == slot_state::idle) idle_remove(set, s);
    set_state(s, slot_state::claimed);
    ++set.total_claims;
    ++total_claims_;
  }

  // Walks the priority list best-first for an idle slot. Sets without one
  // are penalised (+20), the one that serves gets +1, as in qorb: claims
  // spread over healthy backends and busy ones are tried last.
  slot* pick(std::uint64_t claim_id) {
    slot* found = nullptr;
    for (slot_set* set : priority_) {
      QORB_PROBE(slot_set_claim_start, name_.c_str(), claim_id, address_of(*set).c_str());
      if (set->idle_head) {
        found = set->idle_head;
        set->score += 1;
        QORB_PROBE(slot_set_claim_done, name_.c_str(), claim_id, found->id);
        break;
      }
      set->score += 20;
      QORB_PROBE(slot_set_claim_failed, name_.c_str(), claim_id, "no unclaimed slot");
    }
    if (priority_.size() > 1) {
      // Scores changed by small steps: insertion sort restores the order in
      // near-linear time.
      for (std::size_t i = 1; i < priority_.size(); ++i) {
        slot_set* v = priority_[i];
        std::size_t j = i;
        for (; j > 0 && priority_[j - 1]->score > v->score; --j) priority_[j] = priority_[j - 1];
        priority_[j] = v;
      }
    }
    return found;
  }

  bool must_remove(const slot& s) const {
    return terminated_ || s.set->removed || s.set->slots.size() > s.set->wanted;
  }

  // The slot holds a healthy connection and no operation: give it to the
  // first waiting claim, make it idle, or close it if the set shrank.
  void settle(slot& s, deferred& later) {
    slot_set& set = *s.set;
    if (must_remove(s)) {
      remove_slot(s, later);
      return;
    }
    if (claim_request* r = waiting_head_) {
      dequeue(r);
      set_state(s, slot_state::claimed);
      ++set.total_claims;
      ++total_claims_;
      grant(s, r, later);
      return;
    }
    set_state(s, slot_state::idle);
    idle_push(set, s);
    if (ops_->has_is_valid && policy_.set_config.health_interval) {
      arm_timer(s,
                *policy_.set_config.health_interval + scaled(policy_.set_config.spread, random01()),
                timer_purpose::health_due);
    }
  }

  // A claimed slot was returned with its connection.
  void recycle(slot& s, deferred& later) {
    if (must_remove(s)) {
      remove_slot(s, later);
    } else if (ops_->has_on_recycle) {
      set_state(s, slot_state::recycling);
      start_check(s, check_kind::on_recycle);
    } else {
      settle(s, later);
    }
  }

  // The connection is gone (failed check): reconnect at once; a failing
  // connect then backs off.
  void replace_connection(slot& s, deferred& later) {
    if (must_remove(s)) {
      remove_slot(s, later);
    } else {
      start_connect(s, duration::zero());
    }
  }

  void grant(slot& s, claim_request* r, deferred& later) {
    if (ops_->has_on_acquire) {
      r->where = claim_request::phase::acquiring;
      r->acquiring_on = &s;
      s.acquiring_for = r;
      start_check(s, check_kind::on_acquire);
    } else {
      give(r, s, later);
    }
  }

  // The claim gets slot `s` (its on_acquire, if any, passed).
  void give(claim_request* r, slot& s, deferred& later) {
    done(r);
    claimed_probes(r->id, s);
    later.granted.emplace_back(r, &s);
  }

  // One site for these probes whichever way the claim went, so a tracer
  // attaches to each at one address.
  void claimed_probes(std::uint64_t claim_id, const slot& s) {
    if (QORB_PROBE_ENABLED(claim_done) || QORB_PROBE_ENABLED(handle_claimed)) {
      fire_claimed_probes(claim_id, s);
    }
  }

  [[gnu::noinline]] void fire_claimed_probes(std::uint64_t claim_id, const slot& s) {
    QORB_PROBE(claim_done, name_.c_str(), claim_id, s.id);
    QORB_PROBE(handle_claimed, name_.c_str(), claim_id, s.id, address_of(*s.set).c_str());
  }

  // A claim is answered: count how long it waited.
  void done(claim_request* r) {
    r->where = claim_request::phase::done;
    claim_wait_.record(r->queued_at == clock::time_point{}
                           ? 0.0
                           : std::chrono::duration<double>(clock::now() - r->queued_at).count());
  }

  // on_acquire ended (ok or not, `box` empty if it timed out). `r` is null
  // if the claim was cancelled meanwhile (already completed).
  void acquire_done(slot& s, bool ok, box_ptr box, deferred& later) {
    claim_request* r = std::exchange(s.acquiring_for, nullptr);
    if (ok && r) {
      s.conn = std::move(box);
      give(r, s, later);
      return;
    }
    if (r)
      QORB_PROBE(claim_acquire_failed, name_.c_str(), r->id,
                 ok ? "cancelled" : "on_acquire failed");
    // The claim is not given out: the claimer tries again, first in line,
    // and the connection goes back through recycling (to that claimer, if
    // nothing else is free by then).
    if (r) serve_or_queue(r, /*front=*/true, later);
    if (box) {
      s.conn = std::move(box);
      recycle(s, later);
    } else {
      replace_connection(s, later);
    }
  }

  // ----- connector operations and timers -----------------------------------

  static duration scaled(duration d, double factor) {
    return std::chrono::duration_cast<duration>(
        std::chrono::duration<double, duration::period>(double(d.count()) * factor));
  }

  op_context new_op(slot& s) {
    s.op_running = true;
    s.op_signal = std::make_shared<asio::cancellation_signal>();
    return op_context{shared_from_this(), s.shared_from_this(), ++s.op_seq, s.strand, s.op_signal};
  }

  bool current_op(const slot& s, std::uint64_t seq) const {
    return s.state != slot_state::gone && s.op_running && s.op_seq == seq;
  }

  void end_op(slot& s) {
    s.op_running = false;
    s.op_signal.reset();
    cancel_timer(s);
  }

  // Stops waiting for the running operation: it is cancelled on its strand
  // and its result, whenever it comes, is stale.
  void abort_op(slot& s) {
    if (!s.op_running) return;
    s.op_running = false;
    ++s.op_seq;
    if (auto signal = std::move(s.op_signal)) {
      asio::post(s.strand, [signal] { signal->emit(asio::cancellation_type::terminal); });
    }
  }

  void start_connect(slot& s, duration delay) {
    set_state(s, slot_state::connecting);
    if (delay > duration::zero()) {
      arm_timer(s, delay, timer_purpose::backoff_over);
    } else {
      begin_connect(s);
    }
  }

  void begin_connect(slot& s) {
    cancel_timer(s);
    QORB_PROBE(connect_start, name_.c_str(), s.id, address_of(*s.set).c_str());
    ops_->start_connect(new_op(s), s.set->be);
    if (policy_.set_config.connect_timeout) {
      arm_timer(s, *policy_.set_config.connect_timeout, timer_purpose::op_timeout);
    }
  }

  void start_check(slot& s, check_kind kind) {
    cancel_timer(s);
    if (kind == check_kind::is_valid) {
      QORB_PROBE(health_check_start, name_.c_str(), s.id, address_of(*s.set).c_str());
    } else if (kind == check_kind::on_recycle) {
      QORB_PROBE(recycle_start, name_.c_str(), s.id, address_of(*s.set).c_str());
    }
    ops_->start_check(new_op(s), kind, std::move(s.conn));
    arm_timer(s, policy_.set_config.health_check_timeout, timer_purpose::op_timeout);
  }

  void arm_timer(slot& s, duration d, timer_purpose purpose) {
    const auto gen = ++s.timer_gen;
    s.timer.expires_after(d);
    s.timer.async_wait(
        [self = shared_from_this(), sp = s.shared_from_this(), gen, purpose](const error_code& ec) {
          if (!ec) static_cast<core_impl&>(*self).timer_fired(*sp, gen, purpose);
        });
  }

  void cancel_timer(slot& s) {
    ++s.timer_gen;
    s.timer.cancel();
  }

  void timer_fired(slot& s, std::uint64_t gen, timer_purpose purpose) {
    deferred later;
    {
      locked_scope lock(*this);
      if (s.state == slot_state::gone || s.timer_gen != gen) return;
      slot_set& set = *s.set;
      switch (purpose) {
        case timer_purpose::backoff_over:
          if (s.state == slot_state::connecting && !s.op_running) begin_connect(s);
          break;
        case timer_purpose::health_due:
          if (s.state == slot_state::idle) {
            idle_remove(set, s);
            set_state(s, slot_state::checking);
            start_check(s, check_kind::is_valid);
          }
          break;
        case timer_purpose::op_timeout:
          op_timed_out(s, later);
          break;
      }
      finish(set);
    }
    later.run();
  }

  void check_probe(const slot& s, check_kind kind, bool ok, const std::string& why) {
    if (kind == check_kind::is_valid) {
      if (ok) {
        QORB_PROBE(health_check_done, name_.c_str(), s.id);
      } else {
        QORB_PROBE(health_check_failed, name_.c_str(), s.id, why.c_str());
      }
    } else if (kind == check_kind::on_recycle) {
      if (ok) {
        QORB_PROBE(recycle_done, name_.c_str(), s.id);
      } else {
        QORB_PROBE(recycle_failed, name_.c_str(), s.id, why.c_str());
      }
    }
  }

  void op_timed_out(slot& s, deferred& later) {
    if (!s.op_running) return;
    abort_op(s);
    slot_set& set = *s.set;
    set.failures.add(clock::now());
    switch (s.state) {
      case slot_state::connecting: {
        QORB_PROBE(connect_failed, name_.c_str(), s.id, address_of(set).c_str(), "timed out");
        ++set.connect_failures;
        const auto delay = s.retry.next(policy_.set_config, random01());
        log(spdlog::level::warn, "{}: connect timed out", set.be.name);
        start_connect(s, delay);
        break;
      }
      case slot_state::claimed:  // on_acquire
        ++set.check_failures;
        log(spdlog::level::warn, "{}: on_acquire timed out", set.be.name);
        acquire_done(s, false, nullptr, later);
        break;
      default:  // is_valid or on_recycle: the operation keeps the connection
        check_probe(
            s, s.state == slot_state::recycling ? check_kind::on_recycle : check_kind::is_valid,
            false, "timed out");
        ++set.check_failures;
        log(spdlog::level::warn, "{}: health check timed out", set.be.name);
        replace_connection(s, later);
        break;
    }
  }

  // ----- slot sets ---------------------------------------------------------

  std::size_t total_slots() const {
    std::size_t n = 0;
    for (const auto& [key, set] : sets_) n += set->slots.size();
    for (const auto& set : draining_) n += set->slots.size();
    return n;
  }

  void add_slot(slot_set& set) {
    const std::uint64_t id = (std::uint64_t(set.id) << 48) | (set.next_slot++ & 0xffffffffffffULL);
    auto sp = std::make_shared<slot>(id, &set, ex_);
    set.slots.push_back(sp);
    ++set.connecting;
    begin_connect(*sp);
  }

  void remove_slot(slot& s, deferred& later) {
    slot_set& set = *s.set;
    if (s.state == slot_state::idle) idle_remove(set, s);
    if (s.conn) later.closing.push_back(std::move(s.conn));
    abort_op(s);
    cancel_timer(s);
    set_state(s, slot_state::gone);
    auto it = std::find_if(set.slots.begin(), set.slots.end(),
                           [&](const std::shared_ptr<slot>& p) { return p.get() == &s; });
    later.dropped.push_back(std::move(*it));
    set.slots.erase(it);
  }

  // Adds or removes slots to match the wanted count: unconnected slots go
  // first, then idle ones; busy slots are left to settle.
  void conform(slot_set& set, deferred& later) {
    while (set.slots.size() < set.wanted && !terminated_ && !set.removed) add_slot(set);
    for (auto victim : {slot_state::connecting, slot_state::idle}) {
      for (std::size_t i = set.slots.size(); i-- > 0 && set.slots.size() > set.wanted;) {
        if (i < set.slots.size() && set.slots[i]->state == victim)
          remove_slot(*set.slots[i], later);
      }
    }
  }

  // After any change to a set: report online/offline and free-slot changes
  // (which trigger a rebalance).
  void finish(slot_set& set) {
    const bool online = set.online();
    const bool unclaimed = set.idle > 0;
    if (!set.removed && (online != set.reported_online || unclaimed != set.reported_unclaimed)) {
      if (online != set.reported_online) {
        log(online ? spdlog::level::info : spdlog::level::warn, "{}: {}", set.be.name,
            online ? "online" : "offline");
      }
      set.reported_online = online;
      set.reported_unclaimed = unclaimed;
      if (online) {
        QORB_PROBE(slot_set_online, name_.c_str(), address_of(set).c_str(), unclaimed);
      } else {
        QORB_PROBE(slot_set_offline, name_.c_str(), address_of(set).c_str());
      }
      schedule_rebalance();
    }
  }

  void reap_all() {
    std::erase_if(draining_, [](const std::unique_ptr<slot_set>& s) { return s->slots.empty(); });
  }

  void remove_set(std::map<std::string, std::unique_ptr<slot_set>, std::less<>>::iterator it,
                  deferred& later) {
    auto set = std::move(it->second);
    sets_.erase(it);
    std::erase(priority_, set.get());
    set->removed = true;
    set->wanted = 0;
    log(spdlog::level::info, "{}: removed (draining {} claimed)", set->be.name, set->claimed);
    // Everything but claimed slots goes now, checks in flight included.
    for (auto& sp : std::vector(set->slots)) {
      if (sp->state != slot_state::claimed) remove_slot(*sp, later);
    }
    draining_.push_back(std::move(set));
  }

  void on_backends(const backend_map& backends) {
    deferred later;
    {
      locked_scope lock(*this);
      if (terminated_) return;
      published_ = true;
      for (auto it = sets_.begin(); it != sets_.end();) {
        auto found = backends.find(it->first);
        if (found == backends.end() || !(found->second == it->second->be)) {
          remove_set(it++, later);
        } else {
          ++it;
        }
      }
      for (const auto& [key, be] : backends) {
        if (sets_.contains(key)) continue;
        auto set = std::make_unique<slot_set>(next_set_id_++, be,
                                              2 * policy_.set_config.max_connection_backoff);
        set->score = 5 * random01();
        set->wanted = total_slots() < policy_.max_slots ? 1 : 0;
        log(spdlog::level::info, "{}: added ({})", key, to_string(be.address));
        slot_set& ref = *set;
        sets_.emplace(key, std::move(set));
        priority_.push_back(&ref);
        conform(ref, later);
      }
      if (sets_.empty() && policy_.fail_fast_without_backends) {
        fail_all_waiting(errc::no_backends, later);
      }
      schedule_rebalance();
    }
    later.run();
  }

  // ----- rebalancing -------------------------------------------------------

  void schedule_rebalance() {
    if (rebalance_posted_ || terminated_) return;
    rebalance_posted_ = true;
    asio::post(ex_, [self = shared_from_this()] {
      auto& core = static_cast<core_impl&>(*self);
      deferred later;
      {
        locked_scope lock(core);
        core.rebalance_posted_ = false;
        core.rebalance(later, /*periodic=*/false);
      }
      later.run();
    });
  }

  void arm_rebalance_timer() {
    rebalance_timer_.expires_after(policy_.rebalance_interval);
    rebalance_timer_.async_wait([weak = weak_from_this()](const error_code& ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      auto& core = static_cast<core_impl&>(*self);
      deferred later;
      {
        locked_scope lock(core);
        if (core.terminated_) return;
        core.rebalance(later, /*periodic=*/true);
        core.arm_rebalance_timer();
      }
      later.run();
    });
  }

  // Event-driven rebalances (a backend went online or offline, claims had
  // to wait) never lower the pool-wide slot budget; only the periodic one
  // does, so a burst of claims does not make the pool close and reopen
  // connections over and over.
  void rebalance(deferred& later, bool periodic) {
    if (terminated_) return;
    QORB_PROBE(rebalance_start, name_.c_str());
    const auto now = clock::now();
    for (slot_set* set : priority_) {
      set->score = double(set->failures.count(now)) + 5 * random01();
    }
    std::sort(priority_.begin(), priority_.end(),
              [](const slot_set* a, const slot_set* b) { return a->score < b->score; });
    std::vector<rebalance_input> inputs;
    inputs.reserve(priority_.size());
    for (slot_set* set : priority_) {
      inputs.push_back({set->online(), set->claimed, set->slots.size()});
    }
    const std::size_t needed = slot_budget(policy_, inputs);
    budget_ = periodic ? needed : std::max(needed, budget_);
    const auto wanted = detail::rebalance(policy_, inputs, budget_);
    for (std::size_t i = 0; i < priority_.size(); ++i) {
      priority_[i]->wanted = wanted[i];
      conform(*priority_[i], later);
    }
    QORB_PROBE(rebalance_done, name_.c_str());
  }

  // ----- the claim queue ---------------------------------------------------

  // A claim served at once never reads the clock; a fresh one that must
  // wait gets the policy's claim_timeout.
  void serve_or_queue(claim_request* r, bool front, deferred& later) {
    if (terminated_) {
      fail(r, make_error_code(errc::terminated), later);
      return;
    }
    if (published_ && sets_.empty() && policy_.fail_fast_without_backends) {
      fail(r, make_error_code(errc::no_backends), later);
      return;
    }
    QORB_PROBE(pool_claim_start, name_.c_str(), r->id);
    if (slot* s = pick(r->id)) {
      QORB_PROBE(pool_claim_done, name_.c_str(), r->id, s->id);
      mark_claimed(*s);
      grant(*s, r, later);
      finish(*s->set);
      return;
    }
    const auto now = clock::now();
    if (r->deadline == clock::time_point{}) r->deadline = now + policy_.claim_timeout;
    if (r->deadline <= now) {
      fail_timed_out(r, later);
      return;
    }
    if (r->queued_at == clock::time_point{}) r->queued_at = now;
    enqueue(r, front);
    schedule_rebalance();  // the claimed count grew: maybe open more slots
  }

  void enqueue(claim_request* r, bool front) {
    r->where = claim_request::phase::queued;
    if (front) {
      r->prev = nullptr;
      r->next = waiting_head_;
      (waiting_head_ ? waiting_head_->prev : waiting_tail_) = r;
      waiting_head_ = r;
    } else {
      r->next = nullptr;
      r->prev = waiting_tail_;
      (waiting_tail_ ? waiting_tail_->next : waiting_head_) = r;
      waiting_tail_ = r;
    }
    ++waiting_;
    if (!claim_timer_armed_ || r->deadline < claim_timer_expiry_) arm_claim_timer(r->deadline);
  }

  void dequeue(claim_request* r) {
    (r->prev ? r->prev->next : waiting_head_) = r->next;
    (r->next ? r->next->prev : waiting_tail_) = r->prev;
    r->prev = r->next = nullptr;
    r->where = claim_request::phase::done;
    --waiting_;
  }

  void arm_claim_timer(clock::time_point at) {
    claim_timer_armed_ = true;
    claim_timer_expiry_ = at;
    claim_timer_.expires_at(at);
    claim_timer_.async_wait([weak = weak_from_this()](const error_code& ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      static_cast<core_impl&>(*self).claim_timer_fired();
    });
  }

  void claim_timer_fired() {
    deferred later;
    {
      locked_scope lock(*this);
      claim_timer_armed_ = false;
      const auto now = clock::now();
      std::optional<clock::time_point> next;
      for (claim_request* r = waiting_head_; r;) {
        claim_request* following = r->next;
        if (r->deadline <= now) {
          dequeue(r);
          fail_timed_out(r, later);
        } else if (!next || r->deadline < *next) {
          next = r->deadline;
        }
        r = following;
      }
      if (next) arm_claim_timer(*next);
    }
    later.run();
  }

  errc timeout_reason() const {
    if (sets_.empty()) return errc::no_backends;
    for (const auto& [key, set] : sets_) {
      if (set->online()) return errc::all_claims_used;
    }
    return errc::no_backends_online;
  }

  void fail_timed_out(claim_request* r, deferred& later) {
    fail(r, make_error_code(timeout_reason()), later);
  }

  // Every failed claim ends here: counted by reason, completed off-lock.
  void fail(claim_request* r, error_code ec, deferred& later) {
    if (ec == errc::no_backends) {
      ++claim_failures_.no_backends;
    } else if (ec == errc::no_backends_online) {
      ++claim_failures_.no_backends_online;
    } else if (ec == errc::all_claims_used) {
      ++claim_failures_.all_claims_used;
    } else if (ec == errc::terminated) {
      ++claim_failures_.terminated;
    } else {
      ++claim_failures_.cancelled;
    }
    done(r);
    if (QORB_PROBE_ENABLED(claim_failed) || QORB_PROBE_ENABLED(pool_claim_failed)) {
      QORB_PROBE(pool_claim_failed, name_.c_str(), r->id);
      QORB_PROBE(claim_failed, name_.c_str(), r->id, ec.message().c_str());
    }
    later.failed.emplace_back(r, ec);
  }

  void fail_all_waiting(errc reason, deferred& later) {
    while (claim_request* r = waiting_head_) {
      dequeue(r);
      fail(r, make_error_code(reason), later);
    }
  }

  // ----- state -------------------------------------------------------------

  const asio::any_io_executor ex_;
  const std::string name_;
  const std::shared_ptr<resolver> resolver_;
  const std::unique_ptr<connector_ops> ops_;
  const policy policy_;
  const logger_ptr log_;

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<slot_set>, std::less<>> sets_;
  std::vector<std::unique_ptr<slot_set>> draining_;  // removed, claimed slots outstanding
  std::vector<slot_set*> priority_;                  // best first
  claim_request* waiting_head_ = nullptr;
  claim_request* waiting_tail_ = nullptr;
  std::size_t waiting_ = 0;
  asio::steady_timer claim_timer_;
  bool claim_timer_armed_ = false;
  clock::time_point claim_timer_expiry_{};
  asio::steady_timer rebalance_timer_;
  bool rebalance_posted_ = false;
  std::size_t budget_ = 0;  // slots wanted pool-wide at the last rebalance
  bool terminated_ = false;
  bool published_ = false;
  std::uint16_t next_set_id_ = 0;
  std::uint64_t claim_ids_ = 0;
  std::uint64_t total_claims_ = 0;
  claim_failure_stats claim_failures_;
  claim_wait_histogram claim_wait_;
  std::mt19937_64 rng_;
};

}  // namespace

std::shared_ptr<pool_core> make_pool_core(asio::any_io_executor executor, std::string name,
                                          std::shared_ptr<resolver> res,
                                          std::unique_ptr<connector_ops> ops, const policy& p,
                                          logger_ptr logger) {
  validate(p);
  if (!res) throw std::invalid_argument("qorb: pool needs a resolver (got a null pointer)");
  if (!ops) throw std::invalid_argument("qorb: pool needs a connector");
  return std::make_shared<core_impl>(std::move(executor), std::move(name), std::move(res),
                                     std::move(ops), p, std::move(logger));
}

}  // namespace qorb::detail
