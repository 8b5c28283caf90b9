// SPDX-License-Identifier: BSL-1.0
// The driver's entry points and the application of the core's effects.
// Over 500 lines on purpose: every event's one shape (run, apply) and what it
// carries out (operations started and cancelled, connections closed, the
// timer) read best together; the observer, probes and the lifecycle are in
// observer.cpp, observe.cpp and lifecycle.cpp.
#include "pool/pool_driver.hpp"

#include "core/claim_outcomes.hpp"

#include <qorb/claim_error.hpp>
#include <qorb/error.hpp>

#include "probes.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <ctime>
#include <mutex>
#include <vector>

namespace qorb::detail {

namespace {

std::string describe(const std::exception_ptr& e) {
  if (!e) return "no connection returned";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    // The connector's own words; Boost's what() ends in "[category:N at
    // file:line]": noise in a log, a stats row or a claim's error.
    return std::string(strip_error_suffix(ex.what()));
  } catch (...) {
    return "unknown exception";
  }
}

// A connector's way of saying a connect will never succeed.
bool permanent(const std::exception_ptr& e) {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const permanent_error&) {
    return true;
  } catch (...) {
  }
  return false;
}

// Whether a hook threw `code` (errc::connection_ended: the server ended
// the connection normally; errc::request_failed: the backend failed a
// request, the connection is fine).
bool threw(const std::exception_ptr& e, errc code) {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const boost::system::system_error& ex) {
    return ex.code() == code;
  } catch (const std::system_error& ex) {
    return ex.code() == code;
  } catch (...) {
  }
  return false;
}
bool ended_normally(const std::exception_ptr& e) { return threw(e, errc::connection_ended); }

}  // namespace

error_code to_error(core::claim_outcome o) {
  const auto& row = core::info(o);
  switch (row.kind) {
    case core::claim_outcome_info::code_kind::none:
      return {};
    case core::claim_outcome_info::code_kind::errc_value:
      return make_error_code(row.code);
    case core::claim_outcome_info::code_kind::aborted:
      break;
  }
  return asio::error::operation_aborted;  // as Asio's own operations complete
}

namespace {

std::chrono::steady_clock::time_point to_steady(core::time_point t) {
  return std::chrono::steady_clock::time_point(t.time_since_epoch());
}

// A service in the pool's execution context, only to hear of its shutdown:
// the context calls shutdown() on its services from its destructor (or
// shutdown()), before it frees them and its reactor. One per context,
// shared by its pools.
class context_watch final : public asio::execution_context::service {
 public:
  static asio::execution_context::id id;
  explicit context_watch(asio::execution_context& ctx) : service(ctx) {}
  std::shared_ptr<const std::atomic<bool>> flag() const { return gone_; }

 private:
  void shutdown() override { gone_->store(true, std::memory_order_release); }
  const std::shared_ptr<std::atomic<bool>> gone_ = std::make_shared<std::atomic<bool>>(false);
};

asio::execution_context::id context_watch::id;

std::shared_ptr<const std::atomic<bool>> watch_context(const asio::any_io_executor& ex) {
  return asio::use_service<context_watch>(asio::query(ex, asio::execution::context)).flag();
}

}  // namespace

system_environment::system_environment() : engine_(std::random_device{}()) {}

core::time_point system_environment::now() {
  return core::time_point(std::chrono::steady_clock::now().time_since_epoch());
}

core::time_point system_environment::coarse_now() {
  // The kernel's tick-granular monotonic clock: a plain read of the vDSO's
  // page (no TSC read, no system call), a third of steady_clock's cost.
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return core::time_point(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
}

double system_environment::random01() {
  return std::uniform_real_distribution<double>(0.0, 1.0)(engine_);
}

const backend& pool_core::backend_of(const core::slot* s) noexcept { return s->set().target(); }
std::uint64_t pool_core::id_of(const core::slot* s) noexcept { return s->id(); }

pool_driver::pool_driver(asio::any_io_executor ex, std::string name, std::shared_ptr<resolver> res,
                         std::unique_ptr<connector_ops> ops, const policy& p, logger_ptr logger)
    : ex_(std::move(ex)),
      context_gone_(watch_context(ex_)),
      name_(std::move(name)),
      resolver_(std::move(res)),
      ops_(std::move(ops)),
      log_(std::move(logger)),
      state_(p,
             {ops_->has_is_valid, ops_->has_on_acquire, ops_->has_on_recycle,
              ops_->recycle_is_is_valid, ops_->has_watch},
             env_),
      timer_(std::in_place, ex_) {
  // Not an error (the defaults, 8 spares under 16 slots, would reject every
  // max_slots below 8), but not silent either.
  if (log_ && p.spares_wanted > p.max_slots) {
    log_->warn("pool {}: spares_wanted {} is above max_slots {}: at most {} connections are kept",
               name_, p.spares_wanted, p.max_slots, p.max_slots);
  }
}

pool_driver::~pool_driver() = default;

void pool_driver::start() {
  std::weak_ptr<pool_core> weak = weak_from_this();
  resolver_->start_incremental(
      ex_,
      [weak](const backend_map& backends) {
        if (auto self = weak.lock()) static_cast<pool_driver&>(*self).on_backends(backends);
      },
      [weak](const backend_changes& changes) {
        if (auto self = weak.lock()) static_cast<pool_driver&>(*self).on_backend_changes(changes);
      });
  std::optional<core::time_point> wake;
  {
    std::lock_guard lock(mu_);
    wake = state_.next_wakeup();
  }
  arm_timer(wake);
}

// Per-claim observations are recorded only while a tracer or an observer
// listens (one relaxed load: nothing more on the claim path without).
core::effects pool_driver::fresh_effects() const {
  core::effects fx;
  fx.trace = QORB_ANY_PROBE_ENABLED() || observing_.load(std::memory_order_relaxed);
  return fx;
}

template <class Event>
void pool_driver::run(Event&& event) noexcept {
  // Declared first, so destroyed last: the core's own reference, let go
  // when the last claimed slot of a terminated pool comes back; it may
  // free this object.
  std::shared_ptr<pool_core> last;
  auto fx = fresh_effects();
  std::optional<core::time_point> wake;
  observed_batch batch;
  {
    std::lock_guard lock(mu_);
    event(fx);
    if (!fx.seen.empty()) {
      record_errors(fx);
      if (observing_.load(std::memory_order_relaxed)) {
        batch = {++observed_seq_, std::chrono::steady_clock::now()};
      }
    }
    if (fx.rearm) wake = state_.next_wakeup();
    // Guarded here, not inside: the claim path (nothing to start or cancel)
    // must not pay for a call.
    if (!fx.starts.empty() || !fx.cancels.empty()) register_ops(fx);
    if (self_ && state_.drained()) last = std::move(self_);
  }
  apply(fx, wake, batch);
}

claimed_slot pool_driver::try_claim(bool quiet, const std::source_location& site) noexcept {
  claimed_slot out;
  run([&](core::effects& fx) {
    out.s = state_.try_claim(fx, quiet, site);
    if (out.s) out.box = out.s->connection();
  });
  return out;
}

void pool_driver::submit(claim_request* r) {
  run([&](core::effects& fx) { state_.claim(*r, fx); });
}

void pool_driver::cancel(claim_request* r) noexcept {
  run([&](core::effects& fx) { state_.cancel(*r, fx); });
}

void pool_driver::release(core::slot* s, bool discard, std::string_view why) noexcept {
  run([&](core::effects& fx) { state_.release(*s, discard, fx, why); });
}

void pool_driver::report_failure(core::slot* s, std::string_view why) noexcept {
  run([&](core::effects& fx) { state_.failure_reported(*s, why, fx); });
}

error_code pool_driver::terminate() noexcept {
  bool first = false;
  std::size_t still_claimed = 0;
  run([&](core::effects& fx) {
    first = state_.terminate(fx);
    if (first && !state_.drained()) self_ = shared_from_this();
    still_claimed = state_.claims_out();
  });
  if (!first) return make_error_code(errc::terminated);
  // A drain still waiting ends here (when the drain ended by itself, it
  // is what called this, and its handler is gone already).
  end_drain(make_error_code(errc::terminated), still_claimed);
  {
    // No timer after terminate: handles may be returned after the
    // io_context is gone, and must not touch it.
    std::lock_guard lock(timer_mu_);
    timer_.reset();
    armed_.store(core::time_point::min().time_since_epoch().count(), std::memory_order_release);
  }
  resolver_->stop();
  return {};
}

// The lifecycle's events (lifecycle.cpp has the rest).
void pool_driver::begin_drain() {
  run([&](core::effects& fx) { state_.begin_drain(fx); });
}

void pool_driver::set_policy(const policy& p) {
  run([&](core::effects& fx) { state_.set_policy(p, fx); });
}

void pool_driver::evict_all() {
  run([&](core::effects& fx) { state_.evict_all(fx); });
}

error_code pool_driver::timeout_error() const {
  std::lock_guard lock(mu_);
  return to_error(state_.timeout_reason());
}

pool_stats pool_driver::stats() const {
  std::lock_guard lock(mu_);
  pool_stats out = state_.stats();
  out.name = name_;
  out.max_slots = state_.config().max_slots;
  errors_.fill(out);
  return out;
}

std::vector<claim_holder> pool_driver::holders() const {
  std::lock_guard lock(mu_);
  return state_.holders();
}

void pool_driver::on_backends(const backend_map& backends) {
  run([&](core::effects& fx) { state_.backends_changed(backends, fx); });
}

void pool_driver::on_backend_changes(const backend_changes& changes) {
  run([&](core::effects& fx) { state_.backends_delta(changes.added, changes.removed, fx); });
}

void pool_driver::timer_fired() {
  {
    std::lock_guard lock(timer_mu_);
    if (!timer_) return;  // terminated
    armed_.store(core::time_point::max().time_since_epoch().count(), std::memory_order_release);
  }
  run([&](core::effects& fx) { state_.timer_fired(fx); });
}

void pool_driver::connect_done(const op_context& ctx, std::exception_ptr e, box_ptr box) {
  const bool ok = !e && box;
  if (ok) static_cast<driven_box&>(*box).home = ctx.executor;
  const outcome how = ok ? outcome::ok : permanent(e) ? outcome::refused : outcome::failed;
  finished(ctx.op, how, std::move(box), ok ? std::string() : describe(e));
}

void pool_driver::check_done(const op_context& ctx, check_kind, std::exception_ptr e,
                             check_result result) {
  std::exception_ptr error = e ? e : result.error;
  const bool ok = !error && result.box;
  const outcome how = ok                                                       ? outcome::ok
                      : ended_normally(error)                                  ? outcome::ended
                      : result.box && !e && threw(error, errc::request_failed) ? outcome::reported
                                                                               : outcome::failed;
  finished(ctx.op, how, std::move(result.box), ok ? std::string() : describe(error));
}

void pool_driver::watch_done(const op_context& ctx, std::exception_ptr e) {
  {
    std::lock_guard lock(ops_mu_);
    // Cancelled once it ran: the core gave up on it, nothing to hear.
    if (running_.erase(ctx.op) == 0) return;
  }
  const outcome how = ended_normally(e) ? outcome::ended : outcome::failed;
  std::string why = e ? describe(e) : std::string("the connector's watch ended");
  run([&](core::effects& fx) {
    if (how == outcome::ended) {
      state_.op_ended(ctx.op, nullptr, std::move(why), fx);
    } else {
      state_.op_finished(ctx.op, false, nullptr, std::move(why), fx);
    }
  });
}

void pool_driver::finished(std::uint64_t op, outcome how, box_ptr box, std::string why) noexcept {
  {
    std::lock_guard lock(ops_mu_);
    running_.erase(op);
  }
  run([&](core::effects& fx) {
    if (how == outcome::ended) {
      state_.op_ended(op, std::move(box), std::move(why), fx);
    } else if (how == outcome::reported) {
      state_.op_reported(op, std::move(box), std::move(why), fx);
    } else {
      state_.op_finished(op, how == outcome::ok, std::move(box), std::move(why), fx,
                         how == outcome::refused);
    }
  });
}

// After the lock: what the core decided. Claims complete last, so a
// handler that claims again finds the pool's own work already under way.
void pool_driver::apply(core::effects& fx, std::optional<core::time_point> wake,
                        const observed_batch& batch) noexcept {
  if (fx.empty() && !wake) return;
  // Cancelled first: a watch lets go of a connection before it is closed
  // (on its strand, after the cancellation). Then closed: the new connect
  // an event starts (replacing one) must not have the old socket still
  // open beside it.
  if (!fx.cancels.empty()) cancel_ops(fx);
  if (!fx.closing.empty()) close_connections(fx);
  if (!fx.starts.empty()) start_ops(fx);
  if (wake) arm_timer(wake);
  if (!fx.seen.empty()) {
    bool lifecycle = false;
    for (const auto& o : fx.seen) {
      observe(o);
      lifecycle = lifecycle || is_lifecycle(o.what);
    }
    if (lifecycle) after_lifecycle(fx);
    if (batch.seq != 0) deliver_observed(fx, batch);  // before the claims complete
  }
  for (const auto& c : fx.completions) {
    static_cast<claim_request*>(c.claim)->complete(to_error(c.outcome), c.s, c.box);
  }
}

void pool_driver::close_connections(core::effects& fx) noexcept {
  if (context_gone_->load(std::memory_order_acquire)) {
    // Returned after the io_context was destroyed: a socket's destructor
    // would deregister it from the freed reactor (a use-after-free), so
    // the connection (its memory and descriptor) is parked for the
    // process's life instead. The context cannot be kept alive from here,
    // and the connection type is the user's: there is no other safe way.
    if (log_) {
      log_->error(
          "pool {}: {} connection(s) returned after the pool's io_context was destroyed "
          "are kept open, not closed: return handles before destroying the io_context",
          name_, fx.closing.size());
    }
    static std::mutex parked_mu;
    // Reachable for the process's life (no leak report), never destroyed.
    static auto* parked = new std::vector<box_ptr>;
    std::lock_guard lock(parked_mu);
    for (auto& box : fx.closing) parked->push_back(std::move(box));
  }
  for (auto& box : fx.closing) {
    // A watched one on its strand, behind the cancellation of the watch
    // that borrowed it (at once when the close comes from that strand: a
    // watch's end); others here and now.
    if (!box) continue;
    auto& driven = static_cast<driven_box&>(*box);
    if (driven.watched && driven.home) {
      auto strand = *driven.home;
      asio::dispatch(strand, [b = std::move(box)] {});
    }
  }
  fx.closing.clear();
}

void pool_driver::register_ops(const core::effects& fx) {
  std::lock_guard lock(ops_mu_);
  for (const auto& op : fx.starts) {
    // A connection's operations run on its strand (driven_box).
    auto* box = static_cast<driven_box*>(op.box ? op.box.get() : op.watched);
    if (op.watched) box->watched = true;
    running_.emplace(op.id, running_op{box && box->home ? *box->home : asio::make_strand(ex_),
                                       std::make_shared<op_signal>()});
  }
  // Marked here, under the pool's lock: once anyone can see the event's
  // outcome (a backend gone, a slot closed), a call it cancelled and that
  // has not begun will not begin.
  for (const auto id : fx.cancels) {
    if (auto it = running_.find(id); it != running_.end()) {
      it->second.signal->cancelled.store(true, std::memory_order_release);
    }
  }
}

namespace {
// Cancellation runs on the operation's strand, after its start (posted
// there first): terminal, so the connector's call stops and hands back
// what it holds.
void emit(const asio::strand<asio::any_io_executor>& strand, std::shared_ptr<op_signal> signal) {
  asio::post(strand,
             [signal = std::move(signal)] { signal->emit(asio::cancellation_type::terminal); });
}
}  // namespace

void pool_driver::start_ops(core::effects& fx) {
  for (auto& op : fx.starts) {
    std::optional<op_context> ctx;
    bool cancelled = false;
    {
      std::lock_guard lock(ops_mu_);
      auto it = running_.find(op.id);
      if (it == running_.end()) continue;  // cannot happen: registered under mu_
      it->second.started = true;
      cancelled = it->second.cancelled;
      ctx.emplace(op_context{shared_from_this(), op.id, it->second.strand, it->second.signal});
    }
    switch (op.kind) {
      case core::op_kind::connect:
        ops_->start_connect(*ctx, op.target);
        break;
      case core::op_kind::is_valid:
        ops_->start_check(*ctx, check_kind::is_valid, std::move(op.box));
        break;
      case core::op_kind::on_acquire:
        ops_->start_check(*ctx, check_kind::on_acquire, std::move(op.box));
        break;
      case core::op_kind::on_recycle:
        ops_->start_check(*ctx, check_kind::on_recycle, std::move(op.box));
        break;
      case core::op_kind::watch:
        ops_->start_watch(*ctx, op.watched);
        break;
    }
    if (cancelled) emit(ctx->executor, ctx->signal);
  }
}

void pool_driver::cancel_ops(core::effects& fx) {
  for (const auto id : fx.cancels) {
    std::optional<running_op> started;
    {
      std::lock_guard lock(ops_mu_);
      auto it = running_.find(id);
      if (it == running_.end()) continue;  // it has finished
      if (!it->second.started) {
        it->second.cancelled = true;  // its start (this event's, or on another thread) cancels it
        continue;
      }
      started.emplace(std::move(it->second));
      running_.erase(it);
    }
    emit(started->strand, std::move(started->signal));
  }
}

void pool_driver::arm_timer(std::optional<core::time_point> wake) {
  if (!wake) return;
  const auto at = wake->time_since_epoch().count();
  if (at >= armed_.load(std::memory_order_acquire)) return;
  std::lock_guard lock(timer_mu_);
  if (!timer_ || at >= armed_.load(std::memory_order_relaxed)) return;
  armed_.store(at, std::memory_order_release);
  timer_->expires_at(to_steady(*wake));
  timer_->async_wait([weak = weak_from_this()](const error_code& ec) {
    if (ec) return;  // re-armed earlier, or terminated
    if (auto self = weak.lock()) static_cast<pool_driver&>(*self).timer_fired();
  });
}

std::shared_ptr<pool_core> make_pool_core(asio::any_io_executor executor, std::string name,
                                          std::shared_ptr<resolver> res,
                                          std::unique_ptr<connector_ops> ops, const policy& p,
                                          logger_ptr logger) {
  validate(p);
  if (!res) throw std::invalid_argument("qorb: pool needs a resolver (got a null pointer)");
  if (!ops) throw std::invalid_argument("qorb: pool needs a connector");
  return std::make_shared<pool_driver>(std::move(executor), std::move(name), std::move(res),
                                       std::move(ops), p, std::move(logger));
}

}  // namespace qorb::detail
