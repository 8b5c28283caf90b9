// SPDX-License-Identifier: BSL-1.0
// qorb: the resolver interface (how a pool finds its backends).
#pragma once

#include <qorb/backend.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <functional>
#include <string>
#include <vector>

namespace qorb {

/// A change to a published set of backends: what one event of the source
/// changed, so that applying it costs the size of the change rather than of
/// the set.
struct backend_changes {
  /// New names, and names whose backend changed (replace the old one).
  backend_map added;
  /// Names that are gone. A name is never both added and removed.
  std::vector<std::string> removed;
};

/// Turns a service name into the current set of backends and publishes the
/// *whole* set every time it changes (or, through `start_incremental`, the
/// whole set first and then what changed). A resolver does not judge health:
/// that is the pool's job.
///
/// Lifetime: the pool holds its resolver in a `std::shared_ptr`, calls
/// `start` once when the pool is built and `stop` once when it terminates.
///
/// Thread safety: `listener` may be called from any thread running
/// `executor`, never from two threads at once. After `stop()` returns, no
/// new call of `listener` starts (one already running on another thread may
/// still finish; the pool ignores it).
class resolver {
 public:
  /// Called with the whole set of backends each time it changes.
  using listener = std::function<void(const backend_map&)>;
  /// Called with a change to the set last published (whole or changed).
  using change_listener = std::function<void(const backend_changes&)>;

  virtual ~resolver() = default;

  /// Begin resolving on `executor` and call `on_change` with the whole set
  /// each time it changes (the first call may be an empty set).
  ///
  /// Handler: `on_change`, `void(const backend_map&)`, called any number of
  /// times until `stop()`; the map is only valid during the call.
  ///
  /// Errors: a resolver reports none to the pool; it keeps publishing the
  /// last known set while its source is unreachable, and logs why.
  ///
  /// Executor: `on_change` runs on `executor` (the pool's), on one thread at
  /// a time; it may also run inside this call (a resolver that knows its set
  /// at once, such as `fixed_resolver`).
  ///
  /// Cancellation: through `stop()`.
  ///
  /// Lifetimes: the pool keeps the resolver (a `shared_ptr`) and whatever
  /// `on_change` captures alive until `stop()` has returned.
  ///
  /// Thread safety: the pool calls `start` once, before any `stop`.
  ///
  /// Exceptions: whatever it throws leaves the pool's constructor; a thrown
  /// `on_change` is the pool's bug, not the resolver's.
  virtual void start(asio::any_io_executor executor, listener on_change) = 0;

  /// As `start`, for a caller that can take changes: the resolver calls
  /// `on_set` with a whole set (at first, and whenever it starts over) and
  /// may call `on_change` with what changed since its last call of either.
  /// The two are called on the same terms as `start`'s listener, one call
  /// at a time, in order. The pool starts its resolver this way.
  ///
  /// The default calls `start(executor, on_set)`: a resolver that only
  /// knows whole sets need not override it. Override it when a large set
  /// changes a little at a time (the etcd resolver does), so that one
  /// change does not cost a pass over every backend.
  ///
  /// Handler: `on_set`, `void(const backend_map&)`, and `on_change`,
  /// `void(const backend_changes&)`; errors, executor, cancellation,
  /// lifetimes, thread safety and exceptions: as `start`.
  virtual void start_incremental(asio::any_io_executor executor, listener on_set,
                                 change_listener on_change) {
    static_cast<void>(on_change);
    start(std::move(executor), std::move(on_set));
  }

  /// Stop resolving: cancel outstanding work promptly, call no more.
  ///
  /// Errors: none.
  ///
  /// Executor: runs in the caller (the thread that terminated the pool).
  ///
  /// Cancellation: it is the cancellation of `start`'s work.
  ///
  /// Lifetimes: once it returns, no new `on_change` call starts (one already
  /// running on another thread may still finish; the pool ignores it).
  ///
  /// Thread safety: called once, from any thread, possibly while `on_change`
  /// runs on another.
  ///
  /// Exceptions: must not throw.
  virtual void stop() = 0;
};

}  // namespace qorb
