// qorb: the resolver interface (how a pool finds its backends).
#pragma once

#include <qorb/backend.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <functional>

namespace qorb {

/// Turns a service name into the current set of backends and publishes the
/// *whole* set every time it changes. A resolver does not judge health:
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
  using listener = std::function<void(const backend_map&)>;

  virtual ~resolver() = default;

  /// Begin resolving on `executor` and call `on_change` with the whole set
  /// each time it changes (the first call may be an empty set).
  virtual void start(asio::any_io_executor executor, listener on_change) = 0;

  /// Stop resolving: cancel outstanding work promptly, call no more.
  virtual void stop() = 0;
};

}  // namespace qorb
