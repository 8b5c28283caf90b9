// SPDX-License-Identifier: BSL-1.0
// Heap accounting for the benchmarks: linking heap_meter.cpp replaces the
// global operator new/delete (every form) to count live heap bytes, as
// malloc_usable_size sees them, so allocator rounding is included. Each
// thread counts into its own cache line with plain loads and stores, so the
// timed benchmarks pay almost nothing for it; the live total is the sum.
#pragma once

#include <cstdint>

namespace heap {

// The heap bytes live now, over every thread (a relaxed sum: exact when the
// other threads are quiet).
std::int64_t live_bytes() noexcept;

}  // namespace heap
