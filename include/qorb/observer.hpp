// SPDX-License-Identifier: BSL-1.0
// pool_observer: a pool's events as a stream of calls (MongoDB's CMAP
// events, r2d2's HandleEvent): what a user needs to open a span around a
// claim or feed another metrics system. Set with pool<Conn>::set_observer;
// docs/observer.md says what each event means and when it comes.
#pragma once

#include <qorb/error.hpp>
#include <qorb/policy.hpp>
#include <qorb/stats.hpp>

#include <chrono>
#include <cstdint>
#include <source_location>
#include <string_view>

namespace qorb {

/// What every event says: which pool, and when.
struct pool_event {
  /// The pool's name (valid for the hook's call only: copy it to keep it).
  std::string_view pool;
  /// When the pool saw it happen (taken under the pool's lock: the times
  /// of a pool's events never go backwards).
  std::chrono::steady_clock::time_point at;
};

/// What the events about one claim say.
struct claim_event : pool_event {
  /// The claim's id: 1, 2, ... in the order the pool saw the claims.
  std::uint64_t claim = 0;
  /// Where the claim was made (default-constructed until claims carry
  /// their site).
  std::source_location site{};
};

/// What the events about one backend's connection say.
struct connection_event : pool_event {
  /// The backend's name, as the resolver gave it (valid for the call only).
  std::string_view backend;
  /// The backend's address, printed ("127.0.0.1:5432"; valid for the call
  /// only).
  std::string_view address;
  /// The slot's id (0, 1, ...): unique within its backend, the one the
  /// probes name.
  std::uint64_t slot = 0;
};

/// A claim was made (`claim`, `co_claim`, `async_claim`, `try_claim`).
struct claim_started_event : claim_event {};

/// A claim got its connection.
struct claim_served_event : claim_event {
  /// The backend that serves it (valid for the call only).
  std::string_view backend;
  /// That backend's address, printed (valid for the call only).
  std::string_view address;
  /// The slot it got (its `released` or `discarded` names the same one).
  std::uint64_t slot = 0;
};

/// A claim failed: it timed out, was cancelled, the pool was terminated or
/// failed, or `try_claim` found no idle connection.
struct claim_failed_event : claim_event {
  /// What the claimer gets: a `qorb::errc` (`all_claims_used`,
  /// `no_backends_online`, ...), `asio::error::operation_aborted` when
  /// cancelled, `asio::error::would_block` for a `try_claim` that found
  /// nothing.
  error_code error;
};

/// A handle gave its connection back (not discarded).
struct released_event : connection_event {};

/// A handle gave its connection back as broken (`handle::discard`): it is
/// closed, and counts as a failure of its backend.
struct discarded_event : connection_event {
  /// The handle's reason (valid for the call only).
  std::string_view reason;
};

/// The pool began to connect to a backend.
struct connect_started_event : connection_event {};

/// A connect gave the pool a connection.
struct connect_succeeded_event : connection_event {};

/// A connect failed, or timed out.
struct connect_failed_event : connection_event {
  /// What failed, as the backend's `last_error` says it (valid for the
  /// call only).
  std::string_view error;
  /// It ran past `set_config::connect_timeout`.
  bool timed_out = false;
  /// The connector said it will never succeed (`qorb::permanent_error`).
  bool permanent = false;
  /// When the slot tries again, from now.
  duration retry_in{};
};

/// The pool closed a connection (`close_reason` says why; also counted in
/// `pool_stats::connections`).
struct connection_closed_event : connection_event {
  /// Why it was closed.
  close_reason reason = close_reason::terminated;
};

/// A backend went online (it has a connection) or offline.
struct backend_event : pool_event {
  /// The backend's name (valid for the call only).
  std::string_view backend;
  /// Its address, printed (valid for the call only).
  std::string_view address;
  /// How many backends are online now, this one counted as it now is.
  std::size_t online_backends = 0;
};

/// The pool's status changed (as `pool::on_status_change` hears it).
struct status_changed_event : pool_event {
  /// The status before.
  pool_status from = pool_status::starting;
  /// The status now.
  pool_status to = pool_status::starting;
};

/// Receives a pool's events; override the hooks you need (each does
/// nothing by default). Set with `pool<Conn>::set_observer`.
///
/// Every hook is called in the order its events happened in the pool (the
/// order the pool took them under its lock, also when several threads
/// make them at once), never under the pool's lock, on a thread that
/// carried the pool's work out: the one that made the event (a claim, a
/// return), one of the pool's executor's threads (a connect, a timer), or
/// another thread carrying out an earlier event when two came at once.
/// One hook runs at a time per pool. A hook may call the pool (claim,
/// return, read `stats()`), but must not block: the pool's work waits
/// behind it. An exception a hook throws is logged (error level) and
/// dropped; the pool goes on.
///
/// The events of one claim: `claim_started`, then `claim_served` or
/// `claim_failed`; a served claim ends with `released` or `discarded`
/// when its handle gives the connection back. A connection: `connect_started`,
/// `connect_succeeded` or `connect_failed`, and `connection_closed` when
/// the pool closes it.
class pool_observer {
 public:
  virtual ~pool_observer() = default;

  // ----- claims ------------------------------------------------------------
  // Thread safety and exceptions of every hook: as the class says (one at a
  // time per pool, in order, never under the pool's lock; what a hook
  // throws is logged and dropped).

  /// A claim was made, before the pool looked for a connection for it: a
  /// span opens here. Runs on the claiming thread (or one delivering
  /// earlier events).
  virtual void on_claim_started(const claim_started_event&) {}

  /// The claim got a connection from `backend`'s slot `slot`; its handler
  /// (or `claim()`) gets the handle only after this returns.
  virtual void on_claim_served(const claim_served_event&) {}

  /// The claim failed with `error` (timed out, cancelled, terminated, the
  /// pool failed, or `try_claim` found nothing); its handler gets the error
  /// after this returns.
  virtual void on_claim_failed(const claim_failed_event&) {}

  // ----- returns -----------------------------------------------------------

  /// A handle gave its connection back (it is recycled, then claimable).
  virtual void on_released(const released_event&) {}

  /// A handle gave its connection back as broken, saying why: it is
  /// closed (an `on_connection_closed` with `close_reason::discarded`
  /// follows) and counted as a failure of its backend.
  virtual void on_discarded(const discarded_event&) {}

  // ----- connections -------------------------------------------------------

  /// A connect began (on one of the pool's executor's threads, mostly).
  virtual void on_connect_started(const connect_started_event&) {}
  /// That connect gave a connection.
  virtual void on_connect_succeeded(const connect_succeeded_event&) {}
  /// That connect failed or timed out; the slot tries again after
  /// `retry_in`.
  virtual void on_connect_failed(const connect_failed_event&) {}
  /// The pool closed a connection, for `reason`.
  virtual void on_connection_closed(const connection_closed_event&) {}

  // ----- backends and the pool ---------------------------------------------

  /// A backend went online: it has a connection.
  virtual void on_backend_online(const backend_event&) {}
  /// A backend went offline: it has none, and its connects fail.
  virtual void on_backend_offline(const backend_event&) {}
  /// The pool's status changed (`starting`, `running`, `failed`,
  /// `stopping`, `stopped`), as `pool::on_status_change` hears it.
  virtual void on_status_changed(const status_changed_event&) {}
};

}  // namespace qorb
