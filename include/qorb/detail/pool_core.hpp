// SPDX-License-Identifier: BSL-1.0
// qorb internals: the type-erased pool that pool<Conn> and handle<Conn> are
// thin typed faces over. Its decisions live in a sans-I/O core (src/core);
// the driver (src/pool) carries them out on Asio.
#pragma once

#include <qorb/backend.hpp>
#include <qorb/detail/core_port.hpp>
#include <qorb/error.hpp>
#include <qorb/log.hpp>
#include <qorb/observer.hpp>
#include <qorb/policy.hpp>
#include <qorb/resolver.hpp>
#include <qorb/stats.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <source_location>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace qorb::detail {

class pool_core;

/// A connection as the driver holds it: every operation on it after its
/// connect (checks, the watch) and its close run on one strand, the one
/// it was connected on, so the connector's hooks never run beside each
/// other on one connection, and a cancelled watch has let go of it before
/// it is destroyed.
struct driven_box : connection_box {
  std::optional<asio::strand<asio::any_io_executor>> home;
  bool watched = false;  // a watch ran on it: it is closed on `home`
};

template <class Conn>
struct typed_box final : driven_box {
  explicit typed_box(Conn&& c) : conn(std::move(c)) {}
  Conn conn;
};

enum class check_kind { is_valid, on_acquire, on_recycle };

/// What a connector check gives back: the connection (so a failed
/// on_acquire can still be recycled) and the failure, if any.
struct check_result {
  box_ptr box;
  std::exception_ptr error;
};

/// Where a connector operation runs and whom it reports to. The operation's
/// completion handler owns a copy, so the cancellation signal outlives every
/// use the operation makes of it.
/// An operation's cancellation: the signal the connector's call is bound
/// to, and whether the core has cancelled it (set under the pool's lock, in
/// the event that decided it), read before the call is made: a call
/// cancelled before it starts never reaches the connector.
struct op_signal : asio::cancellation_signal {
  std::atomic<bool> cancelled{false};
};

struct op_context {
  std::shared_ptr<pool_core> core;
  std::uint64_t op;  // the core's operation id; a stale one's result is closed
  asio::strand<asio::any_io_executor> executor;
  std::shared_ptr<op_signal> signal;
};

/// The user's connector behind a virtual face.
class connector_ops {
 public:
  virtual ~connector_ops() = default;
  /// Starts `connect` on ctx.executor (posted: never inline in the
  /// caller); reports to core->connect_done.
  virtual void start_connect(op_context ctx, const backend& b) = 0;
  /// Starts a check on `box`; reports to core->check_done.
  virtual void start_check(op_context ctx, check_kind kind, box_ptr box) = 0;
  /// Starts `watch` on an idle connection, which stays the slot's (the
  /// watch only borrows it); reports to core->watch_done.
  virtual void start_watch(op_context ctx, connection_box* box) = 0;

  bool has_is_valid = false;
  bool has_on_acquire = false;
  bool has_on_recycle = false;       // on_recycle or is_valid: something to run on return
  bool recycle_is_is_valid = false;  // no on_recycle: is_valid runs on return
  bool has_watch = false;
};

/// A claim waiting for (or being given) a connection. The pool calls
/// `complete` exactly once, outside its lock.
class claim_request : public core::claim_node {
 public:
  virtual ~claim_request() = default;
  /// On success `s`/`box` are the claimed slot and its connection.
  virtual void complete(error_code ec, core::slot* s, connection_box* box) = 0;
};

struct claimed_slot {
  core::slot* s = nullptr;
  connection_box* box = nullptr;
};

class pool_core : public std::enable_shared_from_this<pool_core> {
 public:
  virtual ~pool_core() = default;

  /// Starts the resolver and timers (needs shared_from_this, so not in the
  /// constructor).
  virtual void start() = 0;
  /// Claims an idle connection now, or returns {} (also after termination).
  /// `quiet`: a miss is not counted or traced as a claim (a waiting claim
  /// follows it).
  /// `site`: where the claim was made (the caller's code).
  virtual claimed_slot try_claim(bool quiet = false,
                                 const std::source_location& site = {}) noexcept = 0;
  /// Serves `r` now or queues it until its deadline (`r->timeout`).
  virtual void submit(claim_request* r) = 0;
  /// Per-operation cancellation of a submitted claim.
  virtual void cancel(claim_request* r) noexcept = 0;
  /// A handle gives its slot back; `discard` closes the connection instead
  /// of recycling it (`why`: the caller's reason).
  virtual void release(core::slot* s, bool discard, std::string_view why = {}) noexcept = 0;
  /// A handle's caller saw the backend fail a request on `s` (`why`).
  virtual void report_failure(core::slot* s, std::string_view why) noexcept = 0;
  /// Terminates: errc::terminated if it already was. Slots still claimed
  /// then keep the core alive (handles hold a plain pointer to it) until
  /// the last one is released.
  virtual error_code terminate() noexcept = 0;
  /// The error a claim timing out now would get.
  virtual error_code timeout_error() const = 0;
  virtual pool_stats stats() const = 0;
  /// Every claimed connection, oldest hold first.
  virtual std::vector<claim_holder> holders() const = 0;
  virtual pool_status status() const = 0;
  /// Adds a status callback: called for each change after this, in order,
  /// never under the pool's lock.
  virtual void on_status_change(std::function<void(pool_status, pool_status)> f) = 0;
  /// Completes `h` once `min_online` backends are online (success), the
  /// pool is failed (errc::pool_failed) or terminated (errc::terminated),
  /// or `timeout` passes (asio::error::timed_out).
  virtual void wait_ready(std::size_t min_online, duration timeout,
                          asio::any_completion_handler<void(error_code)> h) = 0;
  /// Refuses new claims, completes `h` with (ok, 0) once every claim is
  /// back or (timed_out, claims still out) at `timeout`, then terminates.
  virtual void drain(duration timeout,
                     asio::any_completion_handler<void(error_code, std::size_t)> h) = 0;
  /// Sets (or with null, removes) the observer that hears the pool's
  /// events, in order, outside the lock (src/pool/observer.cpp).
  virtual void set_observer(std::shared_ptr<pool_observer> o) = 0;
  /// `p` must be valid.
  virtual void set_policy(const policy& p) = 0;
  virtual void evict_all() = 0;
  virtual const asio::any_io_executor& executor() const noexcept = 0;
  virtual const std::string& name() const noexcept = 0;

  virtual void connect_done(const op_context& ctx, std::exception_ptr e, box_ptr box) = 0;
  virtual void check_done(const op_context& ctx, check_kind kind, std::exception_ptr e,
                          check_result result) = 0;
  /// A watch ended: the connection is lost (`e`: why; null when the watch
  /// returned), unless the watch was cancelled (then its op is stale).
  virtual void watch_done(const op_context& ctx, std::exception_ptr e) = 0;

  static const backend& backend_of(const core::slot* s) noexcept;
  static std::uint64_t id_of(const core::slot* s) noexcept;
};

std::shared_ptr<pool_core> make_pool_core(asio::any_io_executor executor, std::string name,
                                          std::shared_ptr<resolver> resolver,
                                          std::unique_ptr<connector_ops> ops, const policy& p,
                                          logger_ptr logger);

}  // namespace qorb::detail
