// qorb: pool<Conn>, the connection pool.
#pragma once

#include <qorb/backend.hpp>
#include <qorb/claim.hpp>
#include <qorb/connector.hpp>
#include <qorb/detail/claim_op.hpp>
#include <qorb/detail/pool_core.hpp>
#include <qorb/detail/typed_connector.hpp>
#include <qorb/error.hpp>
#include <qorb/log.hpp>
#include <qorb/policy.hpp>
#include <qorb/resolver.hpp>
#include <qorb/stats.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/system_error.hpp>

#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

namespace qorb {

/// A pool of connections of type `Conn` to the backends of one service.
///
/// The pool asks its resolver for backends, keeps slots (connections,
/// connected or connecting) spread over them, checks and recycles
/// connections through the connector, and hands out `handle<Conn>` claims:
/// best backend first, waiting claims served first-come first-served.
///
/// Executor: all the pool's own work (timers, connector calls, completion
/// of claims whose handler has no executor of its own) runs on the executor
/// given at construction, which may be a multi-threaded `io_context`; some
/// thread must run it.
///
/// Thread safety: every member function may be called from any thread at
/// once, except that construction, move and destruction must not race with
/// other calls on the same object.
///
/// Lifetime: destroying the pool terminates it (see `async_terminate`).
/// Handles may outlive the pool.
template <class Conn>
class pool {
 public:
  using connection_type = Conn;
  using executor_type = asio::any_io_executor;
  using handle_type = handle<Conn>;

  /// Builds the pool and starts resolving and connecting at once.
  ///
  /// Throws `invalid_policy` (naming the field) for a bad policy and
  /// `std::invalid_argument` for a null resolver. `logger` may be null
  /// (silence).
  template <connector C>
  requires std::same_as<typename C::connection_type, Conn> pool(
      executor_type executor, std::string name, std::shared_ptr<resolver> res, C connector,
      const policy& p = {}, logger_ptr logger = default_logger())
      : executor_(executor),
        core_(detail::make_pool_core(
            std::move(executor), std::move(name), std::move(res),
            std::make_unique<detail::typed_connector_ops<C>>(std::move(connector)), p,
            std::move(logger))),
        has_on_acquire_(connector_with_on_acquire<C>) {
    core_->start();
  }

  pool(pool&& other) noexcept = default;
  pool& operator=(pool&& other) noexcept {
    if (this != &other) {
      if (core_) core_->terminate();
      executor_ = std::move(other.executor_);
      core_ = std::move(other.core_);
      has_on_acquire_ = other.has_on_acquire_;
    }
    return *this;
  }
  pool(const pool&) = delete;
  pool& operator=(const pool&) = delete;

  /// Terminates the pool if it was not terminated: idle connections close
  /// now, claimed ones when their handles return them.
  ~pool() {
    if (core_) core_->terminate();
  }

  executor_type get_executor() const noexcept { return executor_; }
  const std::string& name() const { return checked_core()->name(); }

  /// Claims a connection, waiting up to the policy's `claim_timeout`.
  ///
  /// Handler signature: `void(qorb::error_code, qorb::handle<Conn>)`. On
  /// success the handle holds a connection that passed `on_acquire`; on
  /// failure it is empty and the error is `errc::no_backends`,
  /// `errc::no_backends_online`, `errc::all_claims_used` (timed out, with
  /// the reason), `errc::terminated`, or operation_aborted (cancelled).
  ///
  /// The handler runs on its associated executor, or the pool's, and never
  /// from within this call: a claim served at once completes as if by
  /// `asio::defer`; one that waited, by `asio::dispatch` from the thread
  /// that freed the connection.
  ///
  /// Per-operation cancellation (terminal, partial or total) through the
  /// handler's cancellation slot removes the claim from the queue; a
  /// connection being acquired for it is returned, never lost.
  template <class CompletionToken>
  auto async_claim(CompletionToken&& token) {
    return async_claim(duration::zero(), std::forward<CompletionToken>(token));
  }

  /// As above, waiting up to `timeout` (zero: the policy's claim_timeout).
  template <class CompletionToken>
  auto async_claim(duration timeout, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(error_code, handle<Conn>)>(
        [](auto handler, std::shared_ptr<detail::pool_core> core, duration t) {
          using op_type = detail::claim_op<Conn, std::decay_t<decltype(handler)>>;
          auto* op = new op_type(core, std::move(handler));
          op->timeout = t;
          op->watch_cancellation();
          core->submit(op);
        },
        token, checked_core(), timeout);
  }

  /// Claims a connection, blocking the calling thread (up to the policy's
  /// claim_timeout). Must not be called from a thread running the pool's
  /// executor: that fails with `errc::would_deadlock`.
  handle<Conn> claim(error_code& ec) { return claim(duration::zero(), ec); }
  handle<Conn> claim(duration timeout, error_code& ec) {
    if (on_executor_thread()) {
      ec = make_error_code(errc::would_deadlock);
      return {};
    }
    std::promise<std::pair<error_code, handle<Conn>>> done;
    auto result = done.get_future();
    async_claim(timeout, [&done](error_code e, handle<Conn> h) {
      done.set_value({e, std::move(h)});
    });
    auto [e, h] = result.get();
    ec = e;
    return std::move(h);
  }
  /// Throwing versions: `boost::system::system_error` (as Asio throws) with
  /// the error above.
  handle<Conn> claim(duration timeout = duration::zero()) {
    error_code ec;
    auto h = claim(timeout, ec);
    if (ec) throw boost::system::system_error(ec, "qorb: claim from pool '" + name() + "'");
    return h;
  }

  /// Claims an idle connection if there is one right now, else returns an
  /// empty handle. Never blocks, never waits. Throws `std::logic_error` if
  /// the connector has an `on_acquire` (which is asynchronous: use
  /// `async_claim`).
  handle<Conn> try_claim() {
    if (has_on_acquire_) {
      throw std::logic_error(
          "qorb: try_claim cannot run the connector's asynchronous on_acquire; use async_claim");
    }
    const auto c = checked_core()->try_claim();
    if (!c.s) return {};
    return handle<Conn>(core_, c.s, &static_cast<detail::typed_box<Conn>*>(c.box)->conn);
  }

  /// Terminates the pool: stops the resolver, fails waiting claims with
  /// `errc::terminated`, cancels connects and checks in flight (without
  /// waiting for them), closes idle connections now and claimed ones when
  /// they return. Handler: `void(error_code)`; `errc::terminated` if
  /// the pool was already terminated.
  template <class CompletionToken>
  auto async_terminate(CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(error_code)>(
        [](auto handler, std::shared_ptr<detail::pool_core> core, executor_type ex) {
          const error_code ec = core ? core->terminate() : error_code(errc::terminated);
          auto hex = asio::get_associated_executor(handler, ex);
          asio::post(hex, [h = std::move(handler), ec]() mutable { std::move(h)(ec); });
        },
        token, core_, executor_);
  }

  /// Synchronous terminate (the work is not asynchronous); same result.
  error_code terminate() noexcept {
    return core_ ? core_->terminate() : error_code(errc::terminated);
  }

  /// A snapshot of every backend's slots and the pool's counters.
  pool_stats stats() const { return core_ ? core_->stats() : pool_stats{}; }

  /// A function giving this pool's stats for as long as the pool exists
  /// (then std::nullopt), safe to call from any thread: how observers such
  /// as `stats_server` watch a pool without owning it.
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

  // Whether this thread runs the io_context behind `ex` (also through a
  // strand, or with work tracking): blocking it would stop the pool.
  static bool runs_here(const executor_type& ex) {
    using io_ex = asio::io_context::executor_type;
    using tracked_io_ex = std::decay_t<decltype(asio::prefer(
        std::declval<io_ex>(), asio::execution::outstanding_work.tracked))>;
    if (auto* io = ex.target<io_ex>()) return io->running_in_this_thread();
    if (auto* io = ex.target<tracked_io_ex>()) return io->running_in_this_thread();
    if (auto* s = ex.target<asio::strand<io_ex>>()) {
      return s->get_inner_executor().running_in_this_thread();
    }
    if (auto* s = ex.target<asio::strand<executor_type>>())
      return runs_here(s->get_inner_executor());
    return false;
  }

  bool on_executor_thread() const { return runs_here(executor_); }

  executor_type executor_;
  std::shared_ptr<detail::pool_core> core_;
  bool has_on_acquire_ = false;
};

}  // namespace qorb
