// SPDX-License-Identifier: BSL-1.0
// The core's one doubly linked intrusive list: a slot in its set and in its
// set's idle list, a set waiting for room under max_slots, a waiting claim.
// Linking and unlinking never allocate and take O(1) from anywhere in the
// list; an object can sit in as many lists as it has hooks.
#pragma once

#include <qorb/detail/core_port.hpp>

#include <cstddef>

namespace qorb::core {

/// Objects of type T with a `list_hook<T>` member `Hook`.
template <class T, list_hook<T> T::*Hook>
class intrusive_list {
 public:
  intrusive_list() = default;
  intrusive_list(const intrusive_list&) = delete;
  intrusive_list& operator=(const intrusive_list&) = delete;

  bool empty() const noexcept { return head_ == nullptr; }
  std::size_t size() const noexcept { return size_; }
  T* front() const noexcept { return head_; }
  T* back() const noexcept { return tail_; }
  static T* next(const T& x) noexcept { return (x.*Hook).next; }
  /// Whether `x` is in this list (given it is in no other list of this hook).
  bool contains(const T& x) const noexcept {
    return (x.*Hook).prev != nullptr || (x.*Hook).next != nullptr || head_ == &x;
  }

  void push_front(T& x) noexcept {
    list_hook<T>& h = x.*Hook;
    h.prev = nullptr;
    h.next = head_;
    (head_ ? (head_->*Hook).prev : tail_) = &x;
    head_ = &x;
    ++size_;
  }

  void push_back(T& x) noexcept {
    list_hook<T>& h = x.*Hook;
    h.next = nullptr;
    h.prev = tail_;
    (tail_ ? (tail_->*Hook).next : head_) = &x;
    tail_ = &x;
    ++size_;
  }

  /// `x` must be in this list.
  void remove(T& x) noexcept {
    list_hook<T>& h = x.*Hook;
    (h.prev ? (h.prev->*Hook).next : head_) = h.next;
    (h.next ? (h.next->*Hook).prev : tail_) = h.prev;
    h.prev = h.next = nullptr;
    --size_;
  }

  T* pop_front() noexcept {
    T* x = head_;
    if (x) remove(*x);
    return x;
  }

  /// Forgets every element without touching them (their hooks keep stale
  /// links: only for lists whose elements are being dropped too).
  void forget_all() noexcept {
    head_ = tail_ = nullptr;
    size_ = 0;
  }

  /// Calls `f` on every element, front to back; `f` may remove the element
  /// it is given.
  template <class F>
  void for_each(F&& f) const {
    for (T* x = head_; x;) {
      T* following = (x->*Hook).next;
      f(*x);
      x = following;
    }
  }

 private:
  T* head_ = nullptr;
  T* tail_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace qorb::core
