// SPDX-License-Identifier: BSL-1.0
// qorb internals: what the sans-I/O core (src/core) and the typed faces
// (pool<Conn>, handle<Conn>, claim ops) share. No Asio here: the core sees
// connections as opaque boxes and claims as intrusive nodes.
#pragma once

#include <qorb/policy.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <source_location>

namespace qorb::core {

/// The core's clock: it is never read by the core. Its time points are the
/// driver's monotonic clock (or a simulator's manual one), handed in.
struct core_clock {
  using duration = qorb::duration;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<core_clock>;
  static constexpr bool is_steady = true;
};
using time_point = core_clock::time_point;

/// `t + d`, saturating at the end of time (a policy may say "forever").
inline time_point after(time_point t, duration d) noexcept {
  if (d <= duration::zero()) return t;
  if (t.time_since_epoch() > time_point::max().time_since_epoch() - d) return time_point::max();
  return t + d;
}

/// Where an object sits in a deadline_heap (src/core/deadline_heap.hpp).
struct deadline_hook {
  static constexpr std::size_t unqueued = std::numeric_limits<std::size_t>::max();
  time_point at{};
  std::size_t pos = unqueued;
  bool queued() const noexcept { return pos != unqueued; }
};

/// Where an object sits in an intrusive_list (src/core/intrusive_list.hpp).
template <class T>
struct list_hook {
  T* prev = nullptr;
  T* next = nullptr;
};

class slot;  // src/core/slot.hpp

/// A claim, as the core keeps it: the driver's claim op derives from this
/// and the core links it into its queue without allocating.
class claim_node {
 public:
  enum class phase : std::uint8_t { fresh, queued, acquiring, done };

  /// Zero: the policy's claim_timeout.
  duration timeout{};

  // Owned by the core (under the driver's lock).
  list_hook<claim_node> in_queue;
  deadline_hook deadline;
  time_point waiting_since{};  // set once it had to wait
  bool waited = false;
  bool acquire_failed = false;  // the last on_acquire run for it failed
  std::uint64_t id = 0;
  phase where = phase::fresh;
  slot* acquiring_on = nullptr;  // the slot whose on_acquire runs for it
  std::source_location site{};   // where the claim was made (the caller's code)
};

}  // namespace qorb::core

namespace qorb::detail {

/// A connection of any type. Destroying the box closes the connection; the
/// core never does that itself: it hands boxes to the driver to close.
struct connection_box {
  virtual ~connection_box() = default;
};

using box_ptr = std::unique_ptr<connection_box>;

}  // namespace qorb::detail
