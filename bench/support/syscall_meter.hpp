// SPDX-License-Identifier: BSL-1.0
// The system calls the whole process (every thread) made, counted by the
// kernel (the raw_syscalls:sys_enter tracepoint, through perf_event_open,
// opened in main() before any thread starts and inherited by every thread
// started later). Where the kernel does not allow it (perf_event_paranoid,
// no tracefs), the counter reads -1; then count them from outside:
// strace -c -f, or perf stat -e raw_syscalls:sys_enter.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>

namespace syscalls {

// Opens the counter; call it in main() before any thread starts.
//
// Counting costs every system call a trip through the kernel's tracepoint
// (about a microsecond here), which slows the benchmarks that make system
// calls: QORB_BENCH_SYSCALLS=0 turns the counter off (the figures read -1)
// for timing runs such as scripts/bench-compare.sh.
void open_counter();

// The count so far (every thread of the process), or -1.
std::int64_t now();

// Counts across a benchmark's timed loop: start() before it, report()
// after it, with the number of claims the loop made (the counter
// syscalls_per_claim).
class meter {
 public:
  void start() { begin_ = now(); }
  void report(benchmark::State& state, double claims) const {
    const std::int64_t end = now();
    state.counters["syscalls_per_claim"] =
        begin_ < 0 || end < 0 || claims <= 0 ? -1.0 : static_cast<double>(end - begin_) / claims;
  }

 private:
  std::int64_t begin_ = -1;
};

}  // namespace syscalls
