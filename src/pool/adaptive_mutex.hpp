// SPDX-License-Identifier: BSL-1.0
// The pool's lock: spins briefly, then sleeps in the kernel.
//
// Every claim and every return takes the pool's lock for a few dozen
// nanoseconds. A plain std::mutex sleeps in the kernel (futex) as soon as it
// finds the lock taken, so two threads claiming at once pay two system calls
// for a wait shorter than either call. This one first spins for about the
// length of a critical section, so a contended claim usually takes the lock
// without a system call; past that (the holder was preempted), it sleeps
// like std::mutex and the unlock wakes it.
#pragma once

#include <atomic>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace qorb::detail {

class adaptive_mutex {
 public:
  adaptive_mutex() = default;
  adaptive_mutex(const adaptive_mutex&) = delete;
  adaptive_mutex& operator=(const adaptive_mutex&) = delete;

  void lock() noexcept {
    int expected = free;
    if (state_.compare_exchange_strong(expected, locked, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
      return;
    }
    lock_contended();
  }

  bool try_lock() noexcept {
    int expected = free;
    return state_.compare_exchange_strong(expected, locked, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }

  void unlock() noexcept {
    if (state_.exchange(free, std::memory_order_release) == sleepers) state_.notify_one();
  }

 private:
  static constexpr int free = 0;
  static constexpr int locked = 1;    // held, nobody sleeps on it
  static constexpr int sleepers = 2;  // held, someone may sleep on it

  static void relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }

  void lock_contended() noexcept {
    // About a critical section's worth of waiting (a pause is tens of
    // cycles); reads only, so the holder's cache line is not stolen.
    for (int spin = 0; spin < 128; ++spin) {
      relax();
      int expected = state_.load(std::memory_order_relaxed);
      if (expected == free &&
          state_.compare_exchange_weak(expected, locked, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return;
      }
    }
    // Sleep: mark the lock so its unlock wakes a sleeper. Whoever takes it
    // from here keeps the mark (it cannot know whether others still sleep).
    while (state_.exchange(sleepers, std::memory_order_acquire) != free) {
      state_.wait(sleepers, std::memory_order_relaxed);
    }
  }

  std::atomic<int> state_{free};
};

}  // namespace qorb::detail
