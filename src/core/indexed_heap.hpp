// SPDX-License-Identifier: BSL-1.0
// The core's one binary heap: the least key first, O(log n) updates, and an
// object can leave it from anywhere because it knows its position (its
// hook). Used for deadlines (deadline_heap: slot timers, claim deadlines)
// and for the backend priority list (priority_list). The keys sit in the
// heap beside the pointers, so sifting reads no object.
#pragma once

#include <cstddef>
#include <limits>
#include <utility>
#include <vector>

namespace qorb::core {

/// `Position::of(T&)` is where the heap records the object's index (or
/// `absent`, which the object's hook must start as).
template <class T, class Key, class Position>
class indexed_heap {
 public:
  static constexpr std::size_t absent = std::numeric_limits<std::size_t>::max();

  bool empty() const noexcept { return heap_.empty(); }
  std::size_t size() const noexcept { return heap_.size(); }
  /// The object with the least key (null when empty).
  T* top() const noexcept { return heap_.empty() ? nullptr : heap_.front().item; }
  /// Its key; the heap must not be empty.
  const Key& top_key() const noexcept { return heap_.front().key; }
  static bool contains(T& item) noexcept { return Position::of(item) != absent; }
  /// The key of `item`, which must be in the heap.
  const Key& key_of(T& item) const noexcept { return heap_[Position::of(item)].key; }

  /// `item` must not be in the heap.
  void push(T& item, Key key) {
    heap_.push_back({std::move(key), &item});
    Position::of(item) = heap_.size() - 1;
    up(heap_.size() - 1);
  }

  /// Gives `item` (in the heap) a new key, earlier or later.
  void update(T& item, Key key) noexcept {
    const std::size_t i = Position::of(item);
    heap_[i].key = std::move(key);
    up(i);
    down(Position::of(item));
  }

  /// Gives `item` (in the heap) a key no less than its own: one direction.
  void raise(T& item, Key key) noexcept {
    const std::size_t i = Position::of(item);
    heap_[i].key = std::move(key);
    down(i);
  }

  /// Takes `item` (in the heap) out; returns its key.
  Key erase(T& item) noexcept {
    const std::size_t pos = Position::of(item);
    Position::of(item) = absent;
    Key key = std::move(heap_[pos].key);
    entry last = std::move(heap_.back());
    heap_.pop_back();
    if (pos == heap_.size()) return key;
    T* moved = last.item;
    place(pos, std::move(last));
    up(pos);
    down(Position::of(*moved));
    return key;
  }

  /// Every key set anew by `key(T&)`, then the order rebuilt: O(n).
  template <class F>
  void rekey_all(F&& key) {
    for (auto& e : heap_) e.key = key(*e.item);
    for (std::size_t i = heap_.size() / 2; i-- > 0;) down(i);
  }

 private:
  struct entry {
    Key key;
    T* item;
  };

  void place(std::size_t i, entry e) noexcept {
    Position::of(*e.item) = i;
    heap_[i] = std::move(e);
  }

  void up(std::size_t i) noexcept {
    entry e = std::move(heap_[i]);
    while (i > 0) {
      const std::size_t parent = (i - 1) / 2;
      if (!(e.key < heap_[parent].key)) break;
      place(i, std::move(heap_[parent]));
      i = parent;
    }
    place(i, std::move(e));
  }

  void down(std::size_t i) noexcept {
    entry e = std::move(heap_[i]);
    const std::size_t n = heap_.size();
    for (;;) {
      std::size_t child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && heap_[child + 1].key < heap_[child].key) ++child;
      if (!(heap_[child].key < e.key)) break;
      place(i, std::move(heap_[child]));
      i = child;
    }
    place(i, std::move(e));
  }

  std::vector<entry> heap_;
};

}  // namespace qorb::core
