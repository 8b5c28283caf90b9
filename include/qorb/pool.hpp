// SPDX-License-Identifier: BSL-1.0
// qorb: pool<Conn>, the connection pool.
//
// Over 500 lines on purpose: it is the public class a user reads, and most
// of it is the documentation of each operation (claim, try_claim, co_claim,
// async_claim, terminate, stats, the lifecycle) beside its few lines of
// code. What is not
// the class's own lives in detail/ (the blocking claim's waiter, the
// executor-thread test, the claim operation, the connector checks).
#pragma once

#include <qorb/backend.hpp>
#include <qorb/claim.hpp>
#include <qorb/claim_error.hpp>
#include <qorb/connector.hpp>
#include <qorb/detail/blocking_waiter.hpp>
#include <qorb/detail/claim_awaitable.hpp>
#include <qorb/detail/claim_op.hpp>
#include <qorb/detail/connector_diagnostics.hpp>
#include <qorb/detail/executor_thread.hpp>
#include <qorb/detail/lifecycle_ops.hpp>
#include <qorb/detail/pool_core.hpp>
#include <qorb/detail/typed_connector.hpp>
#include <qorb/error.hpp>
#include <qorb/log.hpp>
#include <qorb/observer.hpp>
#include <qorb/policy.hpp>
#include <qorb/resolver.hpp>
#include <qorb/stats.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <source_location>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace qorb {

/// A pool of connections of type `Conn` to the backends of one service.
///
/// The pool asks its resolver for backends, keeps slots (connections,
/// connected or connecting) spread over them, checks and recycles
/// connections through the connector, and hands out `handle<Conn>` claims:
/// best backend first, waiting claims served first-come first-served.
///
/// Executor: all the pool's own work (its timer, connector calls, the
/// completion of claims whose handler has no executor of its own) runs on
/// the executor given at construction, which may be a multi-threaded
/// `io_context`; some thread must run it. Each connector call runs on a
/// strand of its own, made from that executor.
///
/// Thread safety: every member function may be called from any thread at
/// once, except that construction, move and destruction must not race with
/// other calls on the same object. Each call takes the pool's lock only to
/// decide; connector calls and claim handlers never run under it. A
/// connection the pool decides to close is destroyed on the thread of the
/// call that made the decision (a claim, a handle's return, `terminate`, the
/// resolver's update, or a thread running the executor), so `Conn`'s
/// destructor must allow that.
///
/// Lifetime: destroying the pool terminates it (see `async_terminate`).
/// Handles, claims still in flight and connector calls still running keep
/// the pool's internals alive until they end; handles may outlive the pool.
///
/// Example: a pool of TCP connections to two fixed backends, claimed in a
/// coroutine (the README's "Use it" is a whole program):
/// @code
/// asio::io_context io;
/// qorb::pool<asio::ip::tcp::socket> pool(
///     io.get_executor(), "echo",
///     std::make_shared<qorb::fixed_resolver>(endpoints),  // or a DNS or etcd resolver
///     qorb::tcp_connector{}, qorb::policy{});
/// asio::co_spawn(io, [&]() -> asio::awaitable<void> {
///   auto conn = co_await pool.co_claim();  // throws with the reason on failure
///   co_await asio::async_write(*conn, asio::buffer("hello\n", 6), asio::use_awaitable);
///   // the connection goes back to the pool when `conn` is destroyed
/// }, asio::detached);
/// io.run();
/// @endcode
template <class Conn>
class pool {
 public:
  using connection_type = Conn;                 ///< what a claim gives access to
  using executor_type = asio::any_io_executor;  ///< the pool's executor
  using handle_type = handle<Conn>;             ///< a claimed connection

  /// Builds the pool and starts it: checks the policy, starts the resolver
  /// and arms the pool's timer. A resolver that answers at once (such as
  /// `fixed_resolver`) has the first connects started (queued on the
  /// executor) before this returns; nothing runs until a thread runs
  /// `executor`.
  ///
  /// - `executor`: where the pool's own work runs (see the class comment).
  /// - `name`: the pool's name in logs, probes and stats.
  /// - `res`: shared with the caller; started now, stopped when the pool
  ///   terminates.
  /// - `connector`: moved into the pool and shared by every connector call
  ///   (which may run concurrently); it lives until the last call has ended,
  ///   which may be after the pool is destroyed.
  /// - `p`: checked first, as `qorb::validate` does.
  /// - `logger`: the spdlog logger for the pool's log lines; null silences
  ///   them.
  ///
  /// Errors: reported by exceptions (below).
  ///
  /// Executor: runs in the caller; the resolver's `start` is called here.
  ///
  /// Cancellation: none.
  ///
  /// Lifetimes: `res` and the connector are kept as long as the pool's
  /// internals live (see the class comment).
  ///
  /// Thread safety: construction must not race with other uses of the
  /// object.
  ///
  /// Exceptions: `invalid_policy` (naming the field) for a bad policy;
  /// `std::invalid_argument` for a null resolver; whatever the resolver's
  /// `start` throws; `std::bad_alloc`.
  ///
  /// A connector without `connection_type`, with a `connect` of another
  /// signature, or whose `connection_type` is not `Conn` is a compile error
  /// of one line that says what to write.
  template <class C>
  pool(executor_type executor, std::string name, std::shared_ptr<resolver> res, C connector,
       const policy& p = {}, logger_ptr logger = default_logger())
      : executor_(executor),
        core_(detail::make_pool_core(std::move(executor), std::move(name), std::move(res),
                                     detail::make_connector_ops<Conn>(std::move(connector)), p,
                                     std::move(logger))),
        has_on_acquire_(connector_with_on_acquire<C>),
        claim_timeout_(p.claim_timeout) {
    core_->start();
  }

  /// As the constructor above, on `context`'s executor (an `io_context`,
  /// a `thread_pool` or any other Asio execution context), as Asio's I/O
  /// objects take either. The context must outlive the pool's use of it
  /// (as for an executor).
  template <class ExecutionContext, class C>
  requires std::is_convertible_v<ExecutionContext&, asio::execution_context&> pool(
      ExecutionContext& context, std::string name, std::shared_ptr<resolver> res, C connector,
      const policy& p = {}, logger_ptr logger = default_logger())
      : pool(executor_type(context.get_executor()), std::move(name), std::move(res),
             std::move(connector), p, std::move(logger)) {}

  /// Takes `other`'s pool; `other` is left moved-from (its calls throw
  /// `std::logic_error`, destroying it does nothing).
  pool(pool&& other) noexcept = default;
  /// Terminates this pool (as `terminate()`), then takes `other`'s.
  pool& operator=(pool&& other) noexcept {
    if (this != &other) {
      if (core_) core_->terminate();
      executor_ = std::move(other.executor_);
      core_ = std::move(other.core_);
      has_on_acquire_ = other.has_on_acquire_;
      claim_timeout_ = other.claim_timeout_;
    }
    return *this;
  }
  pool(const pool&) = delete;
  pool& operator=(const pool&) = delete;

  /// Terminates the pool if it was not terminated (as `terminate()`): idle
  /// connections close now, claimed ones when their handles return them.
  /// It does not wait for connector calls in flight; they end on the
  /// executor and their results are closed.
  ~pool() {
    if (core_) core_->terminate();
  }

  /// The executor given at construction. Any thread.
  executor_type get_executor() const noexcept { return executor_; }
  /// The pool's name. Any thread; `std::logic_error` on a moved-from pool.
  const std::string& name() const { return checked_core()->name(); }

  /// Claims a connection, waiting up to the policy's `claim_timeout`.
  ///
  /// Takes any Asio completion token (a callback, `use_awaitable`,
  /// `use_future`, `deferred`, `as_tuple(...)`). The claim is served at once
  /// when some backend has an unclaimed connection (the best-ranked
  /// backend's most recently used one); otherwise it waits in a first come,
  /// first served queue, and each connection that becomes ready goes to the
  /// oldest waiting claim. Then the connector's `on_acquire`, if it has one,
  /// runs on the connection; if it fails, the claim tries again, first in
  /// line, while its deadline allows.
  ///
  /// Handler: `void(qorb::error_code ec, qorb::handle<Conn> h)`. On success
  /// `h` holds a connection (that passed `on_acquire`); on failure it is
  /// empty.
  ///
  /// Errors:
  /// - `errc::no_backends`: the deadline passed and the resolver knows no
  ///   backend; or, with `fail_fast_without_backends`, at once while the
  ///   resolver's published set is empty (claims waiting then fail too).
  /// - `errc::no_backends_online`: the deadline passed; backends are known
  ///   but none is online.
  /// - `errc::all_claims_used`: the deadline passed while some backend was
  ///   online: every connection was in use.
  /// - `errc::terminated`: the pool was terminated before the claim, or
  ///   while it waited or ran `on_acquire`.
  /// - `asio::error::operation_aborted`: the claim was cancelled (below).
  ///
  /// The deadline holds during `on_acquire` too: a claim whose `on_acquire`
  /// still runs at its deadline fails then, with the reason of that moment.
  ///
  /// Executor: the handler runs on its associated executor, or the pool's
  /// when it has none; that executor's work is tracked until then, so its
  /// `io_context` does not run out of work while the claim waits. The
  /// handler never runs inside this call, nor inside any other call of the
  /// pool (a handle's return, a cancellation, `terminate`): every completion,
  /// at once or after waiting, success or failure, is submitted with
  /// `asio::defer` to that executor, from the thread that completed the
  /// claim (this one when it is served or fails at once; for a claim that
  /// waited, the thread that made a connection ready, fired the timer or
  /// terminated the pool).
  ///
  /// Cancellation: per-operation cancellation through the handler's
  /// associated cancellation slot; terminal, partial and total all do the
  /// same. A waiting claim leaves the queue. A claim whose `on_acquire` runs
  /// completes at once, and `on_acquire` is cancelled (terminal); when it
  /// answers, the connection is recycled (`on_recycle` if there is one) and
  /// goes back to the pool, and nothing counts against the backend. If it
  /// does not answer within `health_check_timeout`, the pool gives up on it,
  /// closes the connection when it comes back, and reconnects that slot.
  /// Either way the handler gets `operation_aborted` and an empty handle; no
  /// connection is lost. A cancellation that comes after the claim completed
  /// (its handler queued) does nothing: the handler gets its result. As for
  /// any Asio operation, emit the signal from where the handler runs (or
  /// otherwise not concurrently with its completion).
  ///
  /// Lifetimes: the pool may be terminated or destroyed while the claim
  /// waits: the claim then fails with `errc::terminated`, and keeps the
  /// pool's internals alive until its handler has run. The handle may
  /// outlive the pool. If the handler's executor is destroyed without
  /// running the handler, the handle queued with it is destroyed and the
  /// connection goes back to the pool.
  ///
  /// Thread safety: any thread, concurrently with other members (see the
  /// class comment).
  ///
  /// Exceptions: `std::logic_error` on a moved-from pool (from this call,
  /// before anything starts); `std::bad_alloc`. Claim errors go to the
  /// handler; tokens that turn them into exceptions (`use_awaitable`,
  /// `use_future`) throw `qorb::claim_error` (naming the pool, the wait
  /// and the cause) where the result is awaited; `asio::deferred`
  /// co_awaited directly throws Asio's plain `boost::system::system_error`.
  /// An exception thrown by the handler leaves the executor's `run()`, as
  /// for any Asio handler; the pool is not affected.
  ///
  /// Default token: `asio::deferred` (Boost 1.81's Asio gives an
  /// `any_io_executor` no default token of its own; later Asio versions
  /// made `deferred` the default): `co_await pool.async_claim()` in an
  /// `asio::awaitable` (the handle, or a `system_error` thrown: prefer
  /// `co_claim`, whose `qorb::claim_error` explains itself), or
  /// `pool.async_claim()(handler)`.
  ///
  /// Claim site: every claim function takes the caller's place in the code
  /// as a defaulted `std::source_location` (`pool_stats::sites`,
  /// `holders()`, the hold warning name it). Here it comes after the token
  /// (a defaulted parameter cannot come before a defaulted token without
  /// making `async_claim(timeout, token)` ambiguous); the overload
  /// `async_claim(timeout, site, token)` below takes it before the token,
  /// for wrappers that pass their own caller's site on.
  template <class CompletionToken = asio::deferred_t>
  requires(
      !std::is_convertible_v<CompletionToken, duration> &&
      !std::is_same_v<std::decay_t<CompletionToken>,
                      std::source_location>) auto async_claim(CompletionToken&& token = {},
                                                              std::source_location site =
                                                                  std::source_location::current()) {
    return async_claim(duration::zero(), site, std::forward<CompletionToken>(token));
  }

  /// Claims a connection, waiting up to `timeout` from this call; zero or
  /// negative means the policy's `claim_timeout`, `duration::max()` forever.
  ///
  /// Handler: `void(qorb::error_code, qorb::handle<Conn>)`, as above.
  ///
  /// Errors: as above; the timeout errors come when `timeout` has passed.
  ///
  /// Executor: as above: on the handler's associated executor (or the
  /// pool's), always through `asio::defer`, never inside this call.
  ///
  /// Cancellation: as above (terminal, partial, total; `on_acquire` is
  /// cancelled and its connection recycled when it answers).
  ///
  /// Lifetimes, thread safety and exceptions: as above.
  template <class CompletionToken = asio::deferred_t>
  requires(!std::is_same_v<std::decay_t<CompletionToken>, std::source_location>) auto async_claim(
      duration timeout, CompletionToken&& token = {},
      std::source_location site = std::source_location::current()) {
    return async_claim(timeout, site, std::forward<CompletionToken>(token));
  }

  /// As `async_claim(timeout, token)`, made from `site` (the claim site the
  /// stats, `holders()` and the hold warning name): for a wrapper that
  /// passes its own caller's `std::source_location` on.
  ///
  /// Handler, errors, executor, cancellation, lifetimes, thread safety and
  /// exceptions: as `async_claim(timeout, token)`.
  template <class CompletionToken = asio::deferred_t>
  auto async_claim(duration timeout, std::source_location site, CompletionToken&& token = {}) {
    return asio::async_initiate<CompletionToken, void(error_code, handle<Conn>)>(
        [](auto handler, std::shared_ptr<detail::pool_core> core, duration t,
           std::source_location where) {
          using op_type = detail::claim_op<Conn, std::decay_t<decltype(handler)>>;
          auto* op = new op_type(core, std::move(handler));
          op->timeout = t;
          op->site = where;
          op->watch_cancellation();
          core->submit(op);
        },
        token, checked_core(), timeout, site);
  }

  /// Claims a connection, blocking the calling thread until the claim
  /// completes: up to `timeout` (zero or negative: the policy's
  /// `claim_timeout`). It is `async_claim` waited for.
  ///
  /// Handler: none; the handle is returned (empty on failure) and the error
  /// set in `ec` (cleared on success).
  ///
  /// Errors: those of `async_claim` but `operation_aborted` (this claim
  /// cannot be cancelled), and `errc::would_deadlock`, at once and without
  /// claiming, on a thread that runs the pool's executor. That is detected
  /// for an `io_context` or a `thread_pool` executor (also tracked, or
  /// through a strand); with another kind of executor it is not: do not
  /// call it there.
  ///
  /// Executor: a connection that is unclaimed is claimed on the calling
  /// thread, with no other thread involved. Otherwise the claim waits in
  /// the pool (on the pool's executor, which another thread must run) and
  /// completes on the system executor, which wakes the calling thread. The
  /// timeout holds whatever the pool's executor does: if it cannot run (its
  /// threads all blocked), the call gives up 50 ms after the timeout with
  /// the timeout's error, and a connection that comes later goes back to
  /// the pool.
  ///
  /// Cancellation: none; the timeout and `terminate` bound it.
  ///
  /// Lifetimes: the pool must not be destroyed during the call (that races
  /// with it); terminating it from another thread makes the call return
  /// `errc::terminated`. The handle may outlive the pool.
  ///
  /// Thread safety: any thread but those running the pool's executor.
  ///
  /// Exceptions: `std::logic_error` on a moved-from pool, `std::bad_alloc`;
  /// claim errors go to `ec`.
  handle<Conn> claim(error_code& ec, std::source_location site = std::source_location::current()) {
    return claim(duration::zero(), ec, site);
  }

  /// As `claim(ec)`, waiting up to `timeout` from this call instead (zero
  /// or negative: the policy's `claim_timeout`; `duration::max()`: forever).
  ///
  /// Handler, errors, executor, cancellation, lifetimes, thread safety and
  /// exceptions: as `claim(ec)` above.
  handle<Conn> claim(duration timeout, error_code& ec,
                     std::source_location site = std::source_location::current()) {
    if (on_executor_thread()) {
      ec = make_error_code(errc::would_deadlock);
      return {};
    }
    ec.clear();
    // An idle connection: served here, without a wake-up of any thread.
    if (auto h = try_claim_quietly(site)) return h;
    // Else an async_claim, completed on the system executor and waited
    // for here up to its deadline (see detail/blocking_waiter.hpp).
    auto w = std::make_shared<detail::blocking_waiter<Conn>>();
    async_claim(timeout, site, detail::blocking_waiter<Conn>::handler(w));
    handle<Conn> h;
    if (!w->wait(timeout > duration::zero() ? timeout : claim_timeout_, ec, h)) {
      ec = core_->timeout_error();
      return {};
    }
    return h;
  }
  /// As `claim(timeout, ec)`, but throws instead of setting an error:
  /// `qorb::claim_error` (a `boost::system::system_error`) with the error
  /// code above, whose `what()` names the pool, the wait, the pool's state
  /// and the cause (docs/errors.md).
  ///
  /// Handler: none; returns a handle that holds a connection.
  ///
  /// Errors, executor, cancellation, lifetimes, thread safety: as
  /// `claim(timeout, ec)`.
  ///
  /// Exceptions: `qorb::claim_error` for every claim error
  /// (`would_deadlock` included); `std::logic_error` on a moved-from pool;
  /// `std::bad_alloc`.
  handle<Conn> claim(duration timeout = duration::zero(),
                     std::source_location site = std::source_location::current()) {
    // Served at once: no clock read (claim(timeout, ec) tries again, quietly).
    if (!on_executor_thread()) {
      if (auto h = try_claim_quietly(site)) return h;
    }
    const auto start = std::chrono::steady_clock::now();
    error_code ec;
    auto h = claim(timeout, ec, site);
    if (ec) throw claim_error(ec, core_->stats(), std::chrono::steady_clock::now() - start);
    return h;
  }

  /// Claims an unclaimed connection if there is one right now (the
  /// best-ranked backend's most recently used one, as `async_claim` would),
  /// else returns an empty handle. Never blocks, never waits, never queues;
  /// a claim it serves counts in the stats like any other.
  ///
  /// Errors: none reported: an empty handle means no connection was
  /// unclaimed, or the pool is terminated.
  ///
  /// Executor: runs in the caller, on any thread, including one running the
  /// pool's executor.
  ///
  /// Cancellation: none (nothing waits).
  ///
  /// Lifetimes: the handle may outlive the pool.
  ///
  /// Thread safety: any thread, concurrently with other members.
  ///
  /// Exceptions: `std::logic_error` if the connector has an `on_acquire`
  /// (which is asynchronous: use `async_claim`) or the pool is moved-from.
  handle<Conn> try_claim(std::source_location site = std::source_location::current()) {
    if (has_on_acquire_) {
      throw std::logic_error(
          "qorb: try_claim cannot run the connector's asynchronous on_acquire; use async_claim");
    }
    return held(checked_core()->try_claim(false, site));
  }

  /// Claims a connection in a coroutine: `co_await pool.co_claim()`. When
  /// a connection is unclaimed (so no claim waits: waiting claims are
  /// served first) and the connector has no `on_acquire`, the claim is
  /// served without suspending the coroutine: no trip through the
  /// executor's queue, no system call. Otherwise it is `async_claim(timeout,
  /// use_awaitable)`: it waits, first come first served, and resumes the
  /// coroutine through its executor.
  ///
  /// Handler: none; the coroutine gets the handle (which holds a
  /// connection).
  ///
  /// Errors: those of `async_claim`, thrown as `qorb::claim_error` (a
  /// `boost::system::system_error`) where the result is awaited.
  ///
  /// Executor: the coroutine's. Served at once, the coroutine goes on
  /// without yielding: a coroutine that claims in a loop and is always
  /// served runs until it waits for something else (as any code that does
  /// not suspend).
  ///
  /// Cancellation: the coroutine's cancellation state, while it waits (as
  /// `async_claim`).
  ///
  /// Lifetimes: the pool must outlive the call's start (the returned
  /// awaitable refers to it until it is first resumed); the handle may
  /// outlive the pool.
  ///
  /// Thread safety: any thread, concurrently with other members.
  ///
  /// Exceptions: `qorb::claim_error` for claim errors;
  /// `std::logic_error` on a moved-from pool; `std::bad_alloc`.
  asio::awaitable<handle<Conn>> co_claim(
      duration timeout = duration::zero(),
      std::source_location site = std::source_location::current()) {
    if (auto h = try_claim_quietly(site)) co_return h;
    co_return co_await async_claim(timeout, site, asio::use_awaitable);
  }

  /// Terminates the pool, then calls the handler.
  ///
  /// The work is done when the operation is initiated (for `deferred`, when
  /// the deferred operation is launched), as `terminate()` does it: the
  /// resolver is stopped; waiting claims, and claims whose `on_acquire`
  /// runs, fail with `errc::terminated`; connects and checks in flight are
  /// cancelled, without waiting for them; idle connections are closed (on
  /// this thread); claimed ones close when their handles return them. Then
  /// claims fail with `errc::terminated`, `try_claim` returns empty handles
  /// and `stats()` still answers, with `terminated` set.
  ///
  /// Handler: `void(qorb::error_code ec)`.
  ///
  /// Errors: none the first time; `errc::terminated` when the pool was
  /// already terminated, or is moved-from.
  ///
  /// Executor: the handler is posted (`asio::post`) to its associated
  /// executor, or the pool's; it never runs inside this call. It does not
  /// wait for cancelled connector calls to end or for claimed connections
  /// to come back.
  ///
  /// Cancellation: none; the handler's cancellation slot is not used (the
  /// termination is done before the handler is queued).
  ///
  /// Lifetimes: the pool may be destroyed as soon as this returns. A
  /// moved-from pool has no executor: there the handler runs on its own
  /// associated executor, or on the system executor.
  ///
  /// Thread safety: any thread, concurrently with other members; of
  /// concurrent terminations one does the work and the others get
  /// `errc::terminated`.
  ///
  /// Exceptions: `std::bad_alloc` from queuing the handler.
  template <class CompletionToken>
  auto async_terminate(CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(error_code)>(
        [](auto handler, std::shared_ptr<detail::pool_core> core, executor_type ex) {
          const error_code ec = core ? core->terminate() : error_code(errc::terminated);
          // A moved-from pool has no executor: the handler's own, or the
          // system executor, runs it then.
          if (ex) {
            auto hex = asio::get_associated_executor(handler, ex);
            asio::post(hex, [h = std::move(handler), ec]() mutable { std::move(h)(ec); });
          } else {
            auto hex = asio::get_associated_executor(handler);
            asio::post(hex, [h = std::move(handler), ec]() mutable { std::move(h)(ec); });
          }
        },
        token, core_, executor_);
  }

  /// Terminates the pool now, as `async_terminate` does (the work is not
  /// asynchronous: nothing is waited for).
  ///
  /// Handler: none; the result is returned.
  ///
  /// Errors: an empty code the first time; `errc::terminated` when the pool
  /// was already terminated, or is moved-from.
  ///
  /// Executor: runs in the caller: idle connections are closed on this
  /// thread; the handlers of the claims it fails are deferred to their
  /// executors, never run inside this call. It may be called from a thread
  /// running the pool's executor, also from a claim's handler.
  ///
  /// Cancellation: none.
  ///
  /// Lifetimes: the pool object stays usable (claims fail with
  /// `errc::terminated`, `stats()` answers); handles out keep their
  /// connections until they return them, which then close.
  ///
  /// Thread safety: any thread, concurrently with other members.
  ///
  /// Exceptions: none.
  error_code terminate() noexcept {
    return core_ ? core_->terminate() : error_code(errc::terminated);
  }

  // ----- the pool's life (docs/lifecycle.md) ---------------------------------

  /// Where the pool is in its life: `starting` (no backend online yet),
  /// `running`, `failed` (no backend online for `policy::failed_after`, or
  /// every known backend's last connect failed permanently: claims fail at
  /// once with `errc::pool_failed` unless `policy::wait_when_failed`),
  /// `stopping` (a drain waits, or terminated with claims out), `stopped`.
  /// A moved-from pool says `stopped`. Any thread; no exceptions.
  pool_status status() const noexcept {
    try {
      return core_ ? core_->status() : pool_status::stopped;
    } catch (...) {
      return pool_status::stopped;
    }
  }

  /// Adds `f`, called as `f(from, to)` at every status change after this
  /// call (not for the status the pool has now), in order, never under the
  /// pool's lock, on the thread that carried the change out (do not block
  /// in it; an exception it throws is logged and dropped). It may call the
  /// pool. Also a probe (`pool_status_change`), a log line (info; warn for
  /// `failed`) and the `/metrics` gauge `qorb_pool_status` follow each
  /// change. The pool keeps `f` until it is destroyed and may call it up to
  /// then (the destructor's terminate is a change): what `f` refers to must
  /// outlive the pool. Throws `std::logic_error` on a moved-from pool.
  void on_status_change(std::function<void(pool_status from, pool_status to)> f) {
    checked_core()->on_status_change(std::move(f));
  }

  /// Waits until `min_online_backends` backends are online (0: completes
  /// at once): the start-up gate (bb8's `build`, HikariCP's
  /// `initializationFailTimeout`).
  ///
  /// Handler: `void(qorb::error_code ec)`.
  ///
  /// Errors: none once enough backends are online; `errc::pool_failed` as
  /// soon as the pool is `failed`; `errc::terminated` when it is stopping
  /// or stopped, or is moved-from; `asio::error::timed_out` at `timeout`.
  ///
  /// Executor: the handler runs on its associated executor (or the
  /// pool's), never inside this call; it completes at once (posted) when
  /// the pool is already ready.
  ///
  /// Cancellation: none; `timeout` bounds it (`duration::max()`: no bound).
  ///
  /// Lifetimes: the pool may be terminated while it waits (the handler then
  /// gets `errc::terminated`); destroying the pool terminates it.
  ///
  /// Thread safety: any thread, concurrently with other members.
  ///
  /// Exceptions: `std::bad_alloc`.
  template <class CompletionToken = asio::deferred_t>
  auto async_wait_ready(std::size_t min_online_backends, duration timeout,
                        CompletionToken&& token = {}) {
    return asio::async_initiate<CompletionToken, void(error_code)>(
        detail::initiate_wait_ready{}, token, core_, min_online_backends, timeout);
  }

  /// Shuts the pool down gracefully: new claims (and those waiting) fail
  /// with `errc::terminated` at once; claimed connections come back as
  /// usual; then the pool terminates (as `terminate()`). The status is
  /// `stopping` meanwhile.
  ///
  /// Handler: `void(qorb::error_code ec, std::size_t still_claimed)`.
  ///
  /// Errors: none (`still_claimed` 0) once every claim is back;
  /// `asio::error::timed_out` at `timeout`, with how many are still out
  /// (they close when they return); `errc::terminated` for a second drain,
  /// one after terminate, or a moved-from pool.
  ///
  /// Executor: the handler runs on its associated executor (or the
  /// pool's), never inside this call.
  ///
  /// Cancellation: none; `timeout` bounds it (`duration::max()`: no bound).
  ///
  /// Lifetimes: destroying the pool meanwhile terminates it; the handler
  /// still runs (with `errc::terminated` unless the drain ended first).
  ///
  /// Thread safety: any thread, concurrently with other members.
  ///
  /// Exceptions: `std::bad_alloc`.
  template <class CompletionToken = asio::deferred_t>
  auto async_drain(duration timeout, CompletionToken&& token = {}) {
    return asio::async_initiate<CompletionToken, void(error_code, std::size_t)>(
        detail::initiate_drain{}, token, core_, timeout);
  }

  /// Sets `o` as the pool's observer (replacing the one set before), or
  /// with null removes it: its hooks hear the pool's events from here on
  /// (claims, returns, connects, closes, backends online and offline,
  /// status changes; `qorb::pool_observer` and docs/observer.md), in the
  /// order they happened, never under the pool's lock. With no observer
  /// the claim path records nothing for it.
  ///
  /// Errors: none.
  ///
  /// Lifetimes: the pool holds `o` until it is replaced or removed, or the
  /// pool is destroyed. A hook already running on another thread (or an
  /// event that thread carries out right now) may still reach the old one
  /// after this returns; events made after it, by this thread or others
  /// that see it, go to the new one.
  ///
  /// Thread safety: any thread, concurrently with other members, also
  /// from a hook.
  ///
  /// Exceptions: `std::logic_error` on a moved-from pool.
  void set_observer(std::shared_ptr<pool_observer> o) {
    checked_core()->set_observer(std::move(o));
  }

  /// Replaces the policy at run time; every field takes effect. Validated
  /// as the constructor's (`invalid_policy` naming the field; the pool is
  /// unchanged then). A smaller cap closes idle connections now and
  /// claimed ones when they return (never while claimed); a larger one, or
  /// more spares, grows now. Claims already waiting keep their deadline.
  void set_policy(const policy& p) {
    validate(p);
    checked_core()->set_policy(p);
    claim_timeout_ = p.claim_timeout;
  }

  /// Closes every idle connection now and every claimed one when it
  /// returns, opening replacements (HikariCP's soft evict; after a
  /// failover, rotated credentials, a moved primary). Connections opened
  /// after this call are kept. Counted as `close_reason::evicted`.
  void evict_all() { checked_core()->evict_all(); }

  /// A snapshot of the pool: per backend, its slots by state (connecting,
  /// unclaimed, checking, claimed), claims served, connect and check
  /// failures, recent failures, online and removed (a removed backend stays
  /// while claimed connections are out, as "NAME (removed)" if the name is
  /// in use again); and the pool's totals: claims served, claims waiting,
  /// claim failures by reason, the claim wait histogram, terminated.
  ///
  /// Errors: none; a moved-from pool gives an empty `pool_stats`.
  ///
  /// Executor: runs in the caller, under the pool's lock for as long as the
  /// copy takes; it changes nothing.
  ///
  /// Cancellation: none.
  ///
  /// Lifetimes: the result is a copy, independent of the pool.
  ///
  /// Thread safety: any thread, concurrently with other members.
  ///
  /// Exceptions: `std::bad_alloc`.
  pool_stats stats() const { return core_ ? core_->stats() : pool_stats{}; }

  /// Who holds the pool's connections: every claimed connection, oldest
  /// first, with its backend, slot id, claim id and claim site (the
  /// caller's `std::source_location` given to the claim function), and its
  /// age when holds are timed (`policy::time_holds` or
  /// `policy::hold_warning`: the coarse monotonic clock, a few
  /// milliseconds' resolution; untimed, the list is in claim order). What
  /// to look at when claims wait or time out with `errc::all_claims_used`:
  /// a handle kept for minutes is the leak a garbage-collected pool's leak
  /// detection finds.
  ///
  /// Errors: none; a moved-from pool gives an empty list.
  ///
  /// Executor: runs in the caller, under the pool's lock while it copies
  /// (O(claimed connections)).
  ///
  /// Cancellation: none.
  ///
  /// Lifetimes: the result is a copy, independent of the pool.
  ///
  /// Thread safety: any thread, concurrently with other members.
  ///
  /// Exceptions: `std::bad_alloc`.
  std::vector<claim_holder> holders() const {
    return core_ ? core_->holders() : std::vector<claim_holder>{};
  }

  /// What a claim made now would meet, printable (`qorb::pool_explanation`:
  /// the status, each backend's state and last error, the slots and the
  /// queue): for logs and for the error_code forms; a `claim_error`'s
  /// `explanation()` is the same, taken when the claim failed.
  ///
  /// Errors: none; a moved-from pool gives the explanation of an empty
  /// `pool_stats`.
  ///
  /// Executor: runs in the caller, taking `stats()` (under the pool's
  /// lock for as long as the copy takes).
  ///
  /// Thread safety: any thread, concurrently with other members.
  ///
  /// Exceptions: `std::bad_alloc`.
  pool_explanation explain() const { return qorb::explain(stats()); }

  /// A function giving this pool's stats (as `stats()`), or `std::nullopt`
  /// once the pool is gone: how observers such as `stats_server` watch a
  /// pool without owning it. "Gone" means the pool's internals were freed:
  /// handles still out, claims whose handler has not run yet and connector
  /// calls still running keep them after the pool is destroyed, and until
  /// then the function still gives stats (with `terminated` set). For a
  /// moved-from pool it always gives `std::nullopt`.
  ///
  /// Errors: none; `std::nullopt` means gone.
  ///
  /// Executor: the function runs in its caller, briefly under the pool's
  /// lock, as `stats()`.
  ///
  /// Cancellation: none.
  ///
  /// Lifetimes: it holds a weak reference: it never keeps the pool alive,
  /// and may be kept and called after the pool is destroyed.
  ///
  /// Thread safety: the function and its copies may be called from any
  /// thread at once.
  ///
  /// Exceptions: `std::bad_alloc` (making it, or from a call).
  std::function<std::optional<pool_stats>()> stats_source() const {
    return [weak = std::weak_ptr<detail::pool_core>(core_)]() -> std::optional<pool_stats> {
      if (auto core = weak.lock()) return core->stats();
      return std::nullopt;
    };
  }

 private:
  const std::shared_ptr<detail::pool_core>& checked_core() const {
    if (!core_) throw std::logic_error("qorb: use of a moved-from pool");
    return core_;
  }

  handle<Conn> held(detail::claimed_slot c) const noexcept {
    if (!c.s) return {};
    return handle<Conn>(core_.get(), c.s, &static_cast<detail::typed_box<Conn>*>(c.box)->conn);
  }

  // An idle connection now, or an empty handle that counts as nothing (the
  // caller claims next). Never with on_acquire, which is asynchronous.
  handle<Conn> try_claim_quietly(const std::source_location& site) {
    if (has_on_acquire_) return {};
    return held(checked_core()->try_claim(true, site));
  }

  // Whether this thread runs the pool's executor (blocking it would stop
  // the pool; see detail/executor_thread.hpp).
  bool on_executor_thread() const { return detail::runs_here(executor_); }

  executor_type executor_;
  std::shared_ptr<detail::pool_core> core_;
  bool has_on_acquire_ = false;
  duration claim_timeout_{};
};

}  // namespace qorb
