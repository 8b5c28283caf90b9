// SPDX-License-Identifier: BSL-1.0
// qorb: handle<Conn>, the RAII claim on one pooled connection.
#pragma once

#include <qorb/detail/pool_core.hpp>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace qorb {

/// A claimed connection. Move-only; destroying it (or `reset()`, or
/// assigning another handle to it) returns the connection to the pool,
/// which recycles it (`on_recycle`, or `is_valid` when there is none)
/// before it can be claimed again. `discard()` says the connection is
/// broken: the pool closes it and reconnects instead.
///
/// Thread safety: a handle is one object, not to be used from two threads at
/// once, but it may be moved to and destroyed on any thread, also after the
/// pool is gone (the connection is then closed).
///
/// Accessing the connection of an empty handle (default-constructed, moved
/// from, reset or discarded) throws `std::logic_error`.
///
/// Example:
/// @code
/// qorb::handle<asio::ip::tcp::socket> conn = co_await pool.co_claim();
/// std::cout << "talking to " << conn.backend().name << "\n";
/// auto [ec, n] = co_await asio::async_write(*conn, request, asio::as_tuple(asio::use_awaitable));
/// if (ec) conn.discard();  // broken: the pool closes it and reconnects
/// // otherwise it returns to the pool when `conn` goes out of scope
/// @endcode
template <class Conn>
class handle {
 public:
  /// An empty handle.
  handle() noexcept = default;

  /// Takes `other`'s connection; `other` becomes empty.
  handle(handle&& other) noexcept
      : core_(std::exchange(other.core_, nullptr)),
        slot_(std::exchange(other.slot_, nullptr)),
        conn_(std::exchange(other.conn_, nullptr)) {}

  /// Returns this handle's connection (as `reset()`), then takes
  /// `other`'s; `other` becomes empty.
  handle& operator=(handle&& other) noexcept {
    if (this != &other) {
      reset();
      core_ = std::exchange(other.core_, nullptr);
      slot_ = std::exchange(other.slot_, nullptr);
      conn_ = std::exchange(other.conn_, nullptr);
    }
    return *this;
  }

  handle(const handle&) = delete;
  handle& operator=(const handle&) = delete;

  /// Returns the connection, if any, as `reset()` does.
  ///
  /// Handler, errors, executor, cancellation, lifetimes, thread safety and
  /// exceptions: as `reset()`.
  ~handle() { reset(); }

  /// The connection.
  Conn& get() const {
    if (!conn_)
      throw std::logic_error("qorb::handle: no connection (empty, moved-from or returned)");
    return *conn_;
  }
  /// The connection, as `get()`.
  Conn& operator*() const { return get(); }
  /// The connection's members, as `get()`.
  Conn* operator->() const { return &get(); }

  /// Whether this handle holds a connection.
  explicit operator bool() const noexcept { return conn_ != nullptr; }

  /// Returns the connection to the pool now; the handle becomes empty. Does
  /// nothing on an empty handle.
  ///
  /// The pool recycles the connection (`on_recycle`, or `is_valid` when there
  /// is none, on the pool's executor); then it goes to the oldest waiting
  /// claim, or waits unclaimed. With neither hook that happens at once. The
  /// connection is closed instead when the pool has terminated, the backend
  /// was removed, or the pool now wants fewer connections to that backend.
  ///
  /// Errors: none reported; a failed recycle counts against the backend and
  /// the pool replaces the connection.
  ///
  /// Executor: runs in the caller. A connection closed here is destroyed on
  /// this thread (`Conn`'s destructor; other connections the pool closes in
  /// the same step, e.g. by a rebalance, too). A waiting claim this serves
  /// completes on its handler's executor (deferred), never inside this call.
  ///
  /// Cancellation: none.
  ///
  /// Lifetimes: references obtained from `get()` dangle afterwards. Works
  /// after the pool is gone (the pool's internals live as long as any
  /// handle): the connection is then closed, on this thread. After the
  /// pool's `io_context` is destroyed the connection is not closed but kept
  /// open for the life of the process (its destructor would use the
  /// destroyed context, as a socket's does), with an error in the pool's
  /// log: return handles before destroying the `io_context`.
  ///
  /// Thread safety: not concurrently with other uses of this handle; from any
  /// thread, concurrently with other handles and the pool.
  ///
  /// Exceptions: none (a throwing `Conn` destructor terminates the program).
  void reset() noexcept { give_back(false); }

  /// Returns the connection as broken: the pool closes it now, counts a
  /// failure against its backend (`check_failures` and its recent failures,
  /// which rank it lower), and connects again: at once if the connection had
  /// been up for `max_connection_backoff`, else after a backoff. When the
  /// pool has terminated or the backend was removed, the connection is only
  /// closed. The handle becomes empty; nothing happens on an empty handle.
  /// Use it when the connection is known broken; `reset()` otherwise.
  ///
  /// Errors: none reported.
  ///
  /// Executor: runs in the caller; the connection is destroyed on this
  /// thread (other connections the pool closes in the same step too), and
  /// the new `connect` runs on the pool's executor. With a connector that
  /// has a `watch`, a connection a watch ran on is destroyed on its strand
  /// instead, right after (so the cancelled watch has let go of it).
  ///
  /// Cancellation: none.
  ///
  /// Lifetimes: references obtained from `get()` dangle afterwards. Works
  /// after the pool is gone: the connection is closed, on this thread (kept
  /// open after the `io_context` is gone, as for `reset()`).
  ///
  /// Thread safety: as `reset()`.
  ///
  /// Exceptions: none (a throwing `Conn` destructor terminates the program).
  void discard() noexcept { give_back(true); }

  /// As `discard()`, saying why (`reason`): kept as the backend's last
  /// error (`backend_stats::last_error`, operation "discard"), given to
  /// the `connection_discarded` probe and counted in
  /// `backend_stats::discards` (`qorb_claims_reported_total{kind="discard"}`).
  ///
  /// Errors: none reported.
  ///
  /// Executor: as `discard()`.
  ///
  /// Cancellation: none.
  ///
  /// Lifetimes: `reason` is copied before the call returns.
  ///
  /// Thread safety: as `reset()`.
  ///
  /// Exceptions: `std::bad_alloc` only in copying `reason` (then the
  /// handle is discarded without it).
  void discard(std::string_view reason) noexcept { give_back(true, reason); }

  /// Says the backend failed a request on this connection although the
  /// connection itself is fine (a 5xx answer, a query timeout): counted
  /// in the backend's failure window, which ranks it lower when the pool
  /// chooses backends, and in `backend_stats::failures_reported`
  /// (`qorb_claims_reported_total{kind="failure"}`); `reason` is kept as
  /// the backend's last error (operation "report") and given to the
  /// `failure_reported` probe. The handle keeps its connection. Precondition:
  /// `*this` is true.
  ///
  /// Errors: none reported.
  ///
  /// Executor: runs in the caller, under the pool's lock for a moment.
  ///
  /// Cancellation: none.
  ///
  /// Lifetimes: `reason` is copied before the call returns.
  ///
  /// Thread safety: as `reset()`.
  ///
  /// Exceptions: `std::logic_error` on an empty handle.
  void report_failure(std::string_view reason) {
    get();
    core_->report_failure(slot_, reason);
  }

  /// The backend this connection goes to. Precondition: `*this` is true.
  const qorb::backend& backend() const {
    get();
    return detail::pool_core::backend_of(slot_);
  }

  /// The slot's id (upper 16 bits: backend set, lower 48: slot number), as
  /// in probes and logs. Precondition: `*this` is true.
  std::uint64_t slot_id() const {
    get();
    return detail::pool_core::id_of(slot_);
  }

  /// For the pool only. A claimed slot keeps its pool's internals alive
  /// (see `pool_core::terminate`), so the handle holds a plain pointer:
  /// claiming and returning write no shared reference count.
  handle(detail::pool_core* owner, core::slot* s, Conn* conn) noexcept
      : core_(owner), slot_(s), conn_(conn) {}

 private:
  void give_back(bool discard, std::string_view why = {}) noexcept {
    if (!slot_) return;
    conn_ = nullptr;
    std::exchange(core_, nullptr)->release(std::exchange(slot_, nullptr), discard, why);
  }

  detail::pool_core* core_ = nullptr;
  core::slot* slot_ = nullptr;
  Conn* conn_ = nullptr;
};

}  // namespace qorb
