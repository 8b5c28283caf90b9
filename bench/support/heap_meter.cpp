// SPDX-License-Identifier: BSL-1.0
// The replaced global operator new/delete and the per-thread byte counts
// behind heap::live_bytes (see heap_meter.hpp). Linked into a benchmark
// executable, it counts every allocation of the process.
#include "heap_meter.hpp"

#include <malloc.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace heap {
namespace {

struct alignas(64) thread_count {
  std::atomic<std::int64_t> bytes{0};
};

constexpr std::size_t max_threads = 256;
thread_count per_thread[max_threads];
thread_count shared;  // threads beyond max_threads share this one
std::atomic<std::size_t> threads_seen{0};
thread_local thread_count* mine = nullptr;

void add(std::int64_t n) noexcept {
  if (!mine) {
    const std::size_t i = threads_seen.fetch_add(1, std::memory_order_relaxed);
    mine = i < max_threads ? &per_thread[i] : &shared;
  }
  if (mine == &shared) {
    shared.bytes.fetch_add(n, std::memory_order_relaxed);
  } else {
    mine->bytes.store(mine->bytes.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
}

void* allocate(std::size_t n, std::size_t align) noexcept {
  void* p = nullptr;
  if (align <= alignof(std::max_align_t)) {
    p = std::malloc(n ? n : 1);
  } else {
    p = std::aligned_alloc(align, (n + align - 1) / align * align);
  }
  if (p) add(static_cast<std::int64_t>(malloc_usable_size(p)));
  return p;
}

void* allocate_or_throw(std::size_t n, std::size_t align) {
  void* p = allocate(n, align);
  if (!p) throw std::bad_alloc();
  return p;
}

void release(void* p) noexcept {
  if (!p) return;
  add(-static_cast<std::int64_t>(malloc_usable_size(p)));
  std::free(p);
}

}  // namespace

std::int64_t live_bytes() noexcept {
  std::int64_t sum = shared.bytes.load(std::memory_order_relaxed);
  for (const auto& t : per_thread) sum += t.bytes.load(std::memory_order_relaxed);
  return sum;
}

}  // namespace heap

void* operator new(std::size_t n) { return heap::allocate_or_throw(n, 0); }
void* operator new[](std::size_t n) { return heap::allocate_or_throw(n, 0); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return heap::allocate(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return heap::allocate(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) {
  return heap::allocate_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return heap::allocate_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return heap::allocate(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return heap::allocate(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { heap::release(p); }
void operator delete[](void* p) noexcept { heap::release(p); }
void operator delete(void* p, std::size_t) noexcept { heap::release(p); }
void operator delete[](void* p, std::size_t) noexcept { heap::release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { heap::release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { heap::release(p); }
void operator delete(void* p, std::align_val_t) noexcept { heap::release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { heap::release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { heap::release(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { heap::release(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  heap::release(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  heap::release(p);
}
