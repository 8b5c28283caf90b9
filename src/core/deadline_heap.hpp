// SPDX-License-Identifier: BSL-1.0
// The earliest of many deadlines, with O(log n) updates: an intrusive binary
// heap, so queued objects need no allocation and can leave it from anywhere.
#pragma once

#include <qorb/detail/core_port.hpp>

#include <cstddef>
#include <utility>
#include <vector>

namespace qorb::core {

/// Objects of type T with a `deadline_hook` member `Hook`.
template <class T, deadline_hook T::*Hook>
class deadline_heap {
 public:
  bool empty() const noexcept { return heap_.empty(); }
  std::size_t size() const noexcept { return heap_.size(); }
  T* top() const noexcept { return heap_.empty() ? nullptr : heap_.front(); }
  time_point top_time() const noexcept { return (heap_.front()->*Hook).at; }

  /// Queues `item` at `at`, or moves it there if it is queued.
  void schedule(T& item, time_point at) {
    deadline_hook& h = item.*Hook;
    if (!h.queued()) {
      h.at = at;
      h.pos = heap_.size();
      heap_.push_back(&item);
      up(h.pos);
      return;
    }
    // Both ways: the new time may be the hook's own field, set beforehand.
    h.at = at;
    up(h.pos);
    down(h.pos);
  }

  void cancel(T& item) noexcept {
    deadline_hook& h = item.*Hook;
    if (!h.queued()) return;
    const std::size_t pos = h.pos;
    h.pos = deadline_hook::unqueued;
    T* last = heap_.back();
    heap_.pop_back();
    if (pos == heap_.size()) return;
    heap_[pos] = last;
    (last->*Hook).pos = pos;
    up(pos);
    down((last->*Hook).pos);
  }

 private:
  time_point at(std::size_t i) const noexcept { return (heap_[i]->*Hook).at; }

  void place(std::size_t i, T* item) noexcept {
    heap_[i] = item;
    (item->*Hook).pos = i;
  }

  void up(std::size_t i) noexcept {
    T* item = heap_[i];
    const time_point t = (item->*Hook).at;
    while (i > 0) {
      const std::size_t parent = (i - 1) / 2;
      if (!(t < at(parent))) break;
      place(i, heap_[parent]);
      i = parent;
    }
    place(i, item);
  }

  void down(std::size_t i) noexcept {
    T* item = heap_[i];
    const time_point t = (item->*Hook).at;
    const std::size_t n = heap_.size();
    for (;;) {
      std::size_t child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && at(child + 1) < at(child)) ++child;
      if (!(at(child) < t)) break;
      place(i, heap_[child]);
      i = child;
    }
    place(i, item);
  }

  std::vector<T*> heap_;
};

}  // namespace qorb::core
