// SPDX-License-Identifier: BSL-1.0
// The earliest of many deadlines (slot timers, claim deadlines): an
// indexed_heap keyed by time, so queued objects need no allocation and can
// leave it from anywhere.
#pragma once

#include <qorb/detail/core_port.hpp>

#include "core/indexed_heap.hpp"

#include <cstddef>

namespace qorb::core {

/// Objects of type T with a `deadline_hook` member `Hook`.
template <class T, deadline_hook T::*Hook>
class deadline_heap {
 public:
  bool empty() const noexcept { return heap_.empty(); }
  std::size_t size() const noexcept { return heap_.size(); }
  T* top() const noexcept { return heap_.top(); }
  time_point top_time() const noexcept { return heap_.top_key(); }

  /// Queues `item` at `at`, or moves it there if it is queued.
  void schedule(T& item, time_point at) {
    (item.*Hook).at = at;
    if (heap::contains(item)) {
      heap_.update(item, at);
    } else {
      heap_.push(item, at);
    }
  }

  void cancel(T& item) noexcept {
    if (heap::contains(item)) heap_.erase(item);
  }

 private:
  struct position {
    static std::size_t& of(T& item) noexcept { return (item.*Hook).pos; }
  };
  using heap = indexed_heap<T, time_point, position>;
  static_assert(deadline_hook::unqueued == heap::absent);
  heap heap_;
};

}  // namespace qorb::core
