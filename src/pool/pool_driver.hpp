// SPDX-License-Identifier: BSL-1.0
// The Asio driver of the sans-I/O core: every entry point has one shape —
// lock, one pool_state call, unlock, apply the effects (start and cancel
// connector operations, close connections, complete claims, re-arm the one
// timer, turn observations into probes and logs).
#pragma once

#include <qorb/claim_error.hpp>
#include <qorb/detail/pool_core.hpp>

#include "core/pool_state.hpp"
#include "log_limiter.hpp"
#include "pool/adaptive_mutex.hpp"
#include "pool/backend_errors.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <unordered_map>
#include <vector>

namespace qorb::detail {

/// The system's monotonic clock and a seeded engine, for the core.
class system_environment final : public core::environment {
 public:
  system_environment();
  core::time_point now() override;
  core::time_point coarse_now() override;
  double random01() override;

 private:
  std::mt19937_64 engine_;
};

/// The error a claim that ended with `o` completes with.
error_code to_error(core::claim_outcome o);

class pool_driver final : public pool_core {
 public:
  /// How often a repeated warning about one backend is logged at warn
  /// level (docs/behaviour.md).
  static constexpr std::chrono::seconds warning_interval{10};

  pool_driver(asio::any_io_executor ex, std::string name, std::shared_ptr<resolver> res,
              std::unique_ptr<connector_ops> ops, const policy& p, logger_ptr logger);
  ~pool_driver() override;

  void start() override;
  claimed_slot try_claim(bool quiet, const std::source_location& site) noexcept override;
  void submit(claim_request* r) override;
  void cancel(claim_request* r) noexcept override;
  void release(core::slot* s, bool discard, std::string_view why) noexcept override;
  void report_failure(core::slot* s, std::string_view why) noexcept override;
  error_code terminate() noexcept override;
  error_code timeout_error() const override;
  pool_stats stats() const override;
  std::vector<claim_holder> holders() const override;
  pool_status status() const override;
  void on_status_change(std::function<void(pool_status, pool_status)> f) override;
  void wait_ready(std::size_t min_online, duration timeout,
                  asio::any_completion_handler<void(error_code)> h) override;
  void drain(duration timeout,
             asio::any_completion_handler<void(error_code, std::size_t)> h) override;
  void set_observer(std::shared_ptr<pool_observer> o) override;
  void set_policy(const policy& p) override;
  void evict_all() override;
  const asio::any_io_executor& executor() const noexcept override { return ex_; }
  const std::string& name() const noexcept override { return name_; }
  void connect_done(const op_context& ctx, std::exception_ptr e, box_ptr box) override;
  void watch_done(const op_context& ctx, std::exception_ptr e) override;
  void check_done(const op_context& ctx, check_kind kind, std::exception_ptr e,
                  check_result result) override;

 private:
  // Registered under mu_ (so a cancel made by another thread right after
  // always finds it), started and cancelled after the unlock, in either
  // order: a cancel that comes before the start is carried out by it.
  struct running_op {
    asio::strand<asio::any_io_executor> strand;
    std::shared_ptr<op_signal> signal;
    bool started = false;
    bool cancelled = false;
  };

  /// Every event's one shape: lock, `event(fx)` on the core, note what
  /// the driver must do, unlock, do it.
  template <class Event>
  void run(Event&& event) noexcept;
  core::effects fresh_effects() const;
  /// An event's observations for the observer: numbered under mu_ (0:
  /// none), delivered in that order (observer.cpp).
  struct observed_batch {
    std::uint64_t seq = 0;
    std::chrono::steady_clock::time_point at{};
  };
  void apply(core::effects& fx, std::optional<core::time_point> wake,
             const observed_batch& batch) noexcept;
  void deliver_observed(core::effects& fx, const observed_batch& batch) noexcept;
  void notify(pool_observer& o, const core::observation& seen,
              std::chrono::steady_clock::time_point at) const;
  void close_connections(core::effects& fx) noexcept;
  void register_ops(const core::effects& fx);
  void start_ops(core::effects& fx);
  void cancel_ops(core::effects& fx);
  void arm_timer(std::optional<core::time_point> wake);
  void timer_fired();
  enum class outcome : std::uint8_t { ok, failed, ended, refused, reported };
  void finished(std::uint64_t op, outcome how, box_ptr box, std::string why) noexcept;
  void on_backends(const backend_map& backends);
  void on_backend_changes(const backend_changes& changes);
  void observe(const core::observation& o) const;
  static bool is_lifecycle(core::observation::kind k) noexcept {
    using kind = core::observation::kind;
    return k == kind::status_changed || k == kind::set_online || k == kind::set_offline ||
           k == kind::drained;
  }
  /// Status callbacks in order, ready waiters, a drain's end (lifecycle.cpp).
  void after_lifecycle(const core::effects& fx) noexcept;
  void deliver_status(std::uint64_t seq, pool_status from, pool_status to) noexcept;
  void check_ready_waiters(std::size_t online, pool_status status) noexcept;
  void end_drain(error_code ec, std::size_t still_claimed) noexcept;
  void begin_drain();
  /// Calls a user's callback `f`, logging and dropping what it throws
  /// (`who`: "a status callback", "an observer's hook").
  template <class F>
  void call_user(const char* who, F&& f) const noexcept {
    try {
      f();
    } catch (const std::exception& e) {
      if (log_) log_->error("pool {}: {} threw: {}", name_, who, strip_error_suffix(e.what()));
    } catch (...) {
      if (log_) log_->error("pool {}: {} threw", name_, who);
    }
  }
  void log_op_failed(const core::observation& o) const;
  void record_errors(const core::effects& fx);
  template <class... Args>
  void log(spdlog::level::level_enum level, spdlog::format_string_t<Args...> fmt,
           Args&&... args) const;
  /// A line about one backend that may repeat (a connection lost, a
  /// connect or a check failed): logged at `level` at most once per
  /// `warning_interval` for the same backend and `what`, saying how many
  /// were held back since the last one; the others at debug level.
  template <class... Args>
  void log_repeated(spdlog::level::level_enum level, const core::observation& o,
                    std::string_view what, spdlog::format_string_t<Args...> fmt,
                    Args&&... args) const;

  const asio::any_io_executor ex_;
  // Set when the executor's execution context shuts down (its destructor
  // runs). A connection closed after that (a handle returned late) would
  // touch the destroyed reactor from its destructor: it is parked instead.
  const std::shared_ptr<const std::atomic<bool>> context_gone_;
  const std::string name_;
  const std::shared_ptr<resolver> resolver_;
  const std::unique_ptr<connector_ops> ops_;
  const logger_ptr log_;
  mutable backend_errors errors_;  // leaf lock: each backend's last error (observe.cpp)
  mutable keyed_log_limiter warnings_{warning_interval};  // leaf lock (observe.cpp)

  mutable adaptive_mutex mu_;  // guards env_, state_ and self_
  system_environment env_;
  core::pool_state state_;
  // Set when the pool terminates with slots still claimed: handles hold a
  // plain pointer (no reference count to write on every claim), so the
  // core keeps itself alive until the last one is released.
  std::shared_ptr<pool_core> self_;

  std::mutex ops_mu_;  // leaf lock: operations that can still be cancelled
  std::unordered_map<std::uint64_t, running_op> running_;

  // Lifecycle (lifecycle.cpp). Leaf locks, never taken with mu_ held.
  struct ready_waiter {
    std::uint64_t id;
    std::size_t min_online;
    asio::any_completion_handler<void(error_code)> handler;
    std::unique_ptr<asio::steady_timer> timer;
  };
  std::mutex life_mu_;  // ready_waiters_, drain_
  std::vector<ready_waiter> ready_waiters_;
  std::uint64_t waiter_ids_ = 0;
  struct drain_state {
    asio::any_completion_handler<void(error_code, std::size_t)> handler;
    std::unique_ptr<asio::steady_timer> timer;
  };
  std::optional<drain_state> drain_;
  std::mutex status_mu_;  // the status callbacks and their delivery order
  struct status_callback {
    std::uint64_t after_seq;  // changes up to this one happened before it was added
    std::function<void(pool_status, pool_status)> f;
  };
  std::vector<status_callback> status_callbacks_;
  std::map<std::uint64_t, std::pair<pool_status, pool_status>> status_pending_;
  std::uint64_t status_next_ = 1;
  bool status_delivering_ = false;

  // The observer (observer.cpp): set under mu_ and observer_mu_; events
  // numbered under mu_, delivered in order by one thread at a time, hooks
  // called with no lock held (as the status callbacks).
  std::atomic<bool> observing_{false};  // one relaxed load per event
  std::uint64_t observed_seq_ = 0;      // under mu_
  std::mutex observer_mu_;              // leaf lock: what follows
  std::shared_ptr<pool_observer> observer_;
  std::map<std::uint64_t,
           std::pair<std::chrono::steady_clock::time_point, std::vector<core::observation>>>
      observed_pending_;
  std::uint64_t observed_next_ = 1;
  bool observed_delivering_ = false;

  std::mutex timer_mu_;  // leaf lock: the one timer
  std::optional<asio::steady_timer> timer_;
  // When the timer fires (written under timer_mu_, read without it so an
  // event that needs no earlier wake-up takes no lock).
  std::atomic<qorb::duration::rep> armed_{core::time_point::max().time_since_epoch().count()};
};

}  // namespace qorb::detail
