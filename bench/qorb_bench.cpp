// SPDX-License-Identifier: BSL-1.0
// qorb_bench: what a claim costs, how claims scale under contention, how a
// burst of claims drains through a full pool, and what an idle slot weighs.
//
// Every pool here has one backend (127.0.0.1:1: nothing connects for real),
// a connector whose `connect` returns at once and nothing else (no checks),
// the default policy unless said otherwise, and no logger. Pools are warmed
// up (the idle slots the policy wants are connected) before timing starts.
// The scale/ benchmarks are the exception to "one backend": they claim from
// pools of 1 to 10,000 backends (127.0.0.1:1..N). Figures and how they
// compare with their targets: BENCHMARKS.md.
//
// Over 500 lines on purpose: one function per benchmark, each read on its
// own against its row in BENCHMARKS.md; the measuring tools they share
// (heap accounting, the syscall counter) live in bench/support/.
//
// Linked with bench/support/: heap_meter (global operator new/delete
// replaced to count live heap bytes, for the memory benchmarks) and
// syscall_meter (the syscalls_per_claim counter of every claim benchmark).
//
// Why one file over ~500 lines: it is the catalogue of the benchmarks that
// BENCHMARKS.md names, one function each and registered in one place at the
// end; the pool under test and its helpers are the only shared code left
// here, and the reusable meters are in bench/support/.

#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <benchmark/benchmark.h>
#include <malloc.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "support/heap_meter.hpp"
#include "support/syscall_meter.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// ----- the pool under test ----------------------------------------------------

struct bench_conn {
  std::uint64_t serial = 0;
};

// Connects at once; nothing to check, acquire or recycle.
struct instant_connector {
  using connection_type = bench_conn;
  asio::awaitable<bench_conn> connect(const qorb::backend&) { co_return bench_conn{}; }
};

// The same, with a watch on every idle connection: a timer that never
// fires, so what is measured is the pool's machinery (start on the return,
// cancel on the claim), not a socket's.
struct watching_connector {
  using connection_type = bench_conn;
  asio::awaitable<bench_conn> connect(const qorb::backend&) { co_return bench_conn{}; }
  asio::awaitable<void> watch(bench_conn&) {
    asio::steady_timer never(co_await asio::this_coro::executor,
                             asio::steady_timer::time_point::max());
    co_await never.async_wait(asio::use_awaitable);
  }
};

using bench_pool = qorb::pool<bench_conn>;

// A pool over `backends` backends: 127.0.0.1 ports 1, 2, ... (distinct
// backends; the instant connector never opens a socket).
bench_pool make_pool(asio::any_io_executor ex, const qorb::policy& p = {},
                     std::size_t backends = 1) {
  std::vector<asio::ip::tcp::endpoint> endpoints;
  endpoints.reserve(backends);
  for (std::size_t i = 0; i < backends; ++i) {
    endpoints.emplace_back(asio::ip::make_address_v4("127.0.0.1"),
                           static_cast<unsigned short>(i + 1));
  }
  auto res = std::make_shared<qorb::fixed_resolver>(std::move(endpoints));
  return bench_pool(std::move(ex), "bench", std::move(res), instant_connector{}, p, nullptr);
}

bench_pool make_watched_pool(asio::any_io_executor ex) {
  auto res = std::make_shared<qorb::fixed_resolver>(
      std::vector<asio::ip::tcp::endpoint>{{asio::ip::make_address_v4("127.0.0.1"), 1}});
  return bench_pool(std::move(ex), "bench", std::move(res), watching_connector{}, qorb::policy{},
                    nullptr);
}

std::size_t idle_slots(const bench_pool& pool) {
  std::size_t n = 0;
  for (const auto& [name, b] : pool.stats().backends) n += b.unclaimed;
  return n;
}

// Waits until the pool has `wanted` idle slots, calling `step` (which runs
// the executor or sleeps) in between; false after 10 s.
bool warm_up(const bench_pool& pool, std::size_t wanted, const std::function<void()>& step) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (idle_slots(pool) < wanted) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    step();
  }
  return true;
}

bool warm_up_threaded(const bench_pool& pool, std::size_t wanted = qorb::policy{}.spares_wanted) {
  return warm_up(pool, wanted, [] { std::this_thread::sleep_for(100us); });
}

// Threads running an io_context until destroyed.
class io_threads {
 public:
  io_threads(asio::io_context& io, int n) : io_(io), work_(asio::make_work_guard(io)) {
    for (int i = 0; i < n; ++i) threads_.emplace_back([&io] { io.run(); });
  }
  io_threads(const io_threads&) = delete;
  io_threads& operator=(const io_threads&) = delete;
  ~io_threads() {
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }

 private:
  asio::io_context& io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
};

std::string describe(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "unknown exception";
  }
}

// ----- claim + release ----------------------------------------------------------

// try_claim and release on the benchmark thread; the pool's io_context runs
// on one background thread (and has nothing to do).
void try_loop(benchmark::State& state, bench_pool (*make)(asio::any_io_executor)) {
  asio::io_context io(1);
  io_threads runner(io, 1);
  auto pool = make(io.get_executor());
  if (!warm_up_threaded(pool)) return state.SkipWithError("pool did not warm up");
  syscalls::meter meter;
  meter.start();
  for (auto _ : state) {
    auto h = pool.try_claim();
    if (!h) {
      state.SkipWithError("try_claim found no idle connection");
      break;
    }
    benchmark::DoNotOptimize(h.get());
  }
  meter.report(state, static_cast<double>(state.iterations()));
}
void sequential_try(benchmark::State& state) {
  try_loop(state, [](asio::any_io_executor ex) { return make_pool(std::move(ex)); });
}

// sequential_try with a connector that watches idle connections: each
// claim cancels a watch (posted to its strand) and each return starts one.
// No peer has a watch: its figure is ours against sequential_try's.
void sequential_try_watched(benchmark::State& state) { try_loop(state, make_watched_pool); }

// The benchmark's own timing loop runs inside a coroutine on the pool's
// io_context, which the benchmark thread runs: one iteration is one
// co_await async_claim plus the release.
asio::awaitable<void> timed_claim_loop(bench_pool& pool, benchmark::State& state) {
  for (auto _ : state) {
    auto h = co_await pool.async_claim(asio::use_awaitable);
    benchmark::DoNotOptimize(h.get());
  }
}

// The same loop with co_await pool.co_claim(): served without suspending
// when a connection is idle.
asio::awaitable<void> timed_co_claim_loop(bench_pool& pool, benchmark::State& state) {
  for (auto _ : state) {
    auto h = co_await pool.co_claim();
    benchmark::DoNotOptimize(h.get());
  }
}

void sequential_on_one_thread(benchmark::State& state,
                              asio::awaitable<void> (*loop)(bench_pool&, benchmark::State&),
                              bool observed = false) {
  asio::io_context io(1);
  auto pool = make_pool(io.get_executor());
  // An observer whose hooks do nothing: the cost of recording and
  // delivering the events, not of what a user does with them.
  if (observed) pool.set_observer(std::make_shared<qorb::pool_observer>());
  if (!warm_up(pool, qorb::policy{}.spares_wanted, [&] { io.run_one_for(1ms); })) {
    return state.SkipWithError("pool did not warm up");
  }
  bool done = false;
  syscalls::meter meter;
  meter.start();
  asio::co_spawn(io, loop(pool, state), [&](std::exception_ptr e) {
    if (e) state.SkipWithError(describe(e).c_str());
    done = true;
  });
  while (!done) io.run_one();
  meter.report(state, static_cast<double>(state.iterations()));
}

void sequential_async(benchmark::State& state) {
  sequential_on_one_thread(state, timed_claim_loop);
}

void sequential_co_claim(benchmark::State& state) {
  sequential_on_one_thread(state, timed_co_claim_loop);
}

// sequential_co_claim with a pool_observer set (its hooks empty).
void sequential_co_claim_observed(benchmark::State& state) {
  sequential_on_one_thread(state, timed_co_claim_loop, true);
}

enum class claim_form {
  token,     // co_await async_claim(use_awaitable)
  co_claim,  // co_await co_claim()
};

// `claims` claim + release; `hold`: keep the connection over one yield (a
// post through the executor), as a claim held over some I/O would be, so
// that other claimers run while it is out.
asio::awaitable<void> claim_loop(bench_pool& pool, int claims, claim_form form, bool hold) {
  for (int i = 0; i < claims; ++i) {
    auto h = form == claim_form::co_claim ? co_await pool.co_claim()
                                          : co_await pool.async_claim(asio::use_awaitable);
    benchmark::DoNotOptimize(h.get());
    if (hold) co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  }
}

// Runs `claimers` coroutines of `claims` claim+release each on the pool's
// executor and waits for all; returns the first failure.
std::exception_ptr run_claimers(bench_pool& pool, int claimers, int claims,
                                claim_form form = claim_form::token, bool hold = false) {
  std::atomic<int> left{claimers};
  std::promise<void> all_done;
  std::mutex mu;
  std::exception_ptr first;
  for (int i = 0; i < claimers; ++i) {
    asio::co_spawn(pool.get_executor(), claim_loop(pool, claims, form, hold),
                   [&](std::exception_ptr e) {
                     if (e) {
                       std::lock_guard lock(mu);
                       if (!first) first = e;
                     }
                     if (left.fetch_sub(1) == 1) all_done.set_value();
                   });
  }
  all_done.get_future().wait();
  return first;
}

// `claimers` coroutines claiming and releasing as fast as they can on a
// 2-thread io_context; one iteration is claimers x 500 claims. With `hold`
// each claim keeps its connection over a yield (see claim_loop).
void contention(benchmark::State& state, int claimers, const qorb::policy& p, claim_form form,
                bool hold) {
  constexpr int claims_each = 500;
  asio::io_context io(2);
  io_threads runner(io, 2);
  auto pool = make_pool(io.get_executor(), p);
  if (!warm_up_threaded(pool, std::min(p.spares_wanted, p.max_slots))) {
    return state.SkipWithError("pool did not warm up");
  }
  // Untimed round: lets the pool grow to the slots the claimers want.
  if (auto e = run_claimers(pool, claimers, claims_each, form, hold)) {
    return state.SkipWithError(describe(e).c_str());
  }
  std::int64_t claims = 0;
  syscalls::meter meter;
  meter.start();
  for (auto _ : state) {
    if (auto e = run_claimers(pool, claimers, claims_each, form, hold)) {
      state.SkipWithError(describe(e).c_str());
      break;
    }
    claims += claimers * claims_each;
  }
  meter.report(state, static_cast<double>(claims));
  state.counters["claims_per_s"] =
      benchmark::Counter(static_cast<double>(claims), benchmark::Counter::kIsRate);
}

void contention16(benchmark::State& state) {
  contention(state, 16, qorb::policy{}, claim_form::token, false);
}
void contention16_co_claim(benchmark::State& state) {
  contention(state, 16, qorb::policy{}, claim_form::co_claim, false);
}

// 64 claimers on 16 slots, each holding its connection over a yield: most
// claims find every slot out and wait.
qorb::policy scarce_policy() {
  qorb::policy p;
  p.max_slots = 16;
  p.spares_wanted = 16;
  p.set_config.max_count = 16;
  return p;
}
void contention64_scarce(benchmark::State& state) {
  contention(state, 64, scarce_policy(), claim_form::token, true);
}
void contention64_scarce_co_claim(benchmark::State& state) {
  contention(state, 64, scarce_policy(), claim_form::co_claim, true);
}

// ----- a burst of claims that hold their connection ------------------------------

// Starts one claim per timer at once (from the benchmark thread); each
// holds its connection for 50 us (an asio timer, not a blocking sleep) and
// returns it. Waits for all. The pool's io_context has one thread: with two,
// cross-thread wake-ups on this shared 2-core machine cost more than they
// bring (see BENCHMARKS.md).
qorb::error_code run_batch(bench_pool& pool, std::vector<asio::steady_timer>& timers) {
  std::atomic<std::size_t> left{timers.size()};
  std::promise<void> all_done;
  std::mutex mu;
  qorb::error_code first;
  auto finish_one = [&] {
    if (left.fetch_sub(1) == 1) all_done.set_value();
  };
  for (auto& t : timers) {
    pool.async_claim(
        [&mu, &first, &finish_one, &t](qorb::error_code ec, qorb::handle<bench_conn> h) {
          if (ec) {
            {
              std::lock_guard lock(mu);
              if (!first) first = ec;
            }
            finish_one();
            return;
          }
          t.expires_after(50us);
          t.async_wait([&finish_one, h = std::move(h)](const qorb::error_code&) mutable {
            h.reset();
            finish_one();
          });
        });
  }
  all_done.get_future().wait();
  return first;
}

void batch_hold50us(benchmark::State& state) {
  const auto count = static_cast<std::size_t>(state.range(0));
  asio::io_context io(1);
  io_threads runner(io, 1);
  auto pool = make_pool(io.get_executor());
  if (!warm_up_threaded(pool)) return state.SkipWithError("pool did not warm up");
  std::vector<asio::steady_timer> timers;
  timers.reserve(count);
  for (std::size_t i = 0; i < count; ++i) timers.emplace_back(io);
  // Untimed batch: lets the pool grow to its 16 slots.
  if (auto ec = run_batch(pool, timers)) return state.SkipWithError(ec.message().c_str());
  for (auto _ : state) {
    if (auto ec = run_batch(pool, timers)) {
      state.SkipWithError(ec.message().c_str());
      break;
    }
  }
}

// The floor the batches above are measured against: the same number of
// 50 us holds as 16 chains of timer waits (16 slots, no pool), on the same
// one-thread io_context. What this costs on the machine is not qorb's.
void timer_chains16_hold50us(benchmark::State& state) {
  constexpr std::size_t chains = 16;
  const auto holds = state.range(0);
  asio::io_context io(1);
  io_threads runner(io, 1);
  std::vector<asio::steady_timer> timers;
  for (std::size_t i = 0; i < chains; ++i) timers.emplace_back(io);
  for (auto _ : state) {
    std::atomic<std::int64_t> to_start{holds};
    std::atomic<std::size_t> running{chains};
    std::promise<void> all_done;
    std::function<void(asio::steady_timer&)> next = [&](asio::steady_timer& t) {
      if (to_start.fetch_sub(1) <= 0) {
        if (running.fetch_sub(1) == 1) all_done.set_value();
        return;
      }
      t.expires_after(50us);
      t.async_wait([&](const qorb::error_code&) { next(t); });
    };
    for (auto& t : timers) asio::post(io, [&] { next(t); });
    all_done.get_future().wait();
  }
}

// ----- scale: claim + release over many backends ------------------------------
//
// scale/{try,async}/backends:N/idle:I: the same claim + release as
// sequential_try and sequential_async, from a pool of N backends with I
// idle connections each (set_config.max_count = I, max_slots =
// spares_wanted = N * I), warmed up until all N * I slots are idle. What
// they show is how the cost of one claim grows with the number of backends
// (and of idle slots) the pool has to pick from.

// Warm-up bound for the scale pools (the other benchmarks allow 10 s).
// Before the core rewrite, a pool of 10,000 backends took 0.3-1.2 s to
// construct (its constructor takes in the resolver's first list) and then
// 0.04-0.55 s to connect its 10,000 / 20,000 slots; each run reports both
// (construct_ms, warmup_ms). Only the second is bounded: 30 s leaves room
// for a loaded machine or a slower pool, which then gets an error naming
// the idle count it reached instead of hanging the run.
constexpr std::chrono::seconds scale_warm_up_bound{30};

qorb::policy scale_policy(std::size_t backends, std::size_t idle) {
  qorb::policy p;
  p.set_config.max_count = idle;
  p.max_slots = p.spares_wanted = backends * idle;
  return p;
}

// Like warm_up, for big pools: stats() copies every backend's stats under
// the pool's lock (milliseconds at 10,000 backends), so `step(d)` lets the
// pool work for d, at least 1 ms and 4x what the last stats() call took,
// between looks. Returns the idle slots reached; `took` is the time spent.
std::size_t warm_up_scaled(const bench_pool& pool, std::size_t wanted,
                           const std::function<void(std::chrono::nanoseconds)>& step,
                           std::chrono::nanoseconds& took) {
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + scale_warm_up_bound;
  std::size_t idle = 0;
  for (;;) {
    const auto before = std::chrono::steady_clock::now();
    idle = idle_slots(pool);
    const auto after = std::chrono::steady_clock::now();
    if (idle >= wanted || after > deadline) break;
    step(std::max<std::chrono::nanoseconds>(1ms, 4 * (after - before)));
  }
  took = std::chrono::steady_clock::now() - start;
  return idle;
}

// Reports the set-up (as counters, so the JSON output carries them:
// construct_ms, the pool's constructor, which takes in the resolver's
// first list of backends; warmup_ms, from then until all slots were idle)
// and fails the benchmark when the pool did not get there in time.
bool scale_warmed_up(benchmark::State& state, std::size_t idle, std::size_t wanted,
                     std::chrono::nanoseconds construct, std::chrono::nanoseconds took) {
  state.counters["idle_slots"] = static_cast<double>(idle);
  state.counters["construct_ms"] = std::chrono::duration<double, std::milli>(construct).count();
  state.counters["warmup_ms"] = std::chrono::duration<double, std::milli>(took).count();
  if (idle >= wanted) return true;
  state.SkipWithError(("pool did not warm up: " + std::to_string(idle) + " of " +
                       std::to_string(wanted) + " slots idle after " +
                       std::to_string(scale_warm_up_bound.count()) + " s")
                          .c_str());
  return false;
}

// try_claim + release on the benchmark thread; the pool's io_context runs
// on one background thread.
void scale_try(benchmark::State& state) {
  const auto backends = static_cast<std::size_t>(state.range(0));
  const auto idle = static_cast<std::size_t>(state.range(1));
  asio::io_context io(1);
  io_threads runner(io, 1);
  const auto start = std::chrono::steady_clock::now();
  auto pool = make_pool(io.get_executor(), scale_policy(backends, idle), backends);
  const auto construct = std::chrono::steady_clock::now() - start;
  std::chrono::nanoseconds took{};
  const std::size_t reached = warm_up_scaled(
      pool, backends * idle, [](std::chrono::nanoseconds d) { std::this_thread::sleep_for(d); },
      took);
  if (!scale_warmed_up(state, reached, backends * idle, construct, took)) return;
  for (auto _ : state) {
    auto h = pool.try_claim();
    if (!h) {
      state.SkipWithError("try_claim found no idle connection");
      break;
    }
    benchmark::DoNotOptimize(h.get());
  }
}

// co_await async_claim(use_awaitable) + release; the timing loop runs in a
// coroutine on the pool's one-thread io_context, which the benchmark
// thread runs (as in sequential_async).
void scale_async(benchmark::State& state) {
  const auto backends = static_cast<std::size_t>(state.range(0));
  const auto idle = static_cast<std::size_t>(state.range(1));
  asio::io_context io(1);
  const auto start = std::chrono::steady_clock::now();
  auto pool = make_pool(io.get_executor(), scale_policy(backends, idle), backends);
  const auto construct = std::chrono::steady_clock::now() - start;
  std::chrono::nanoseconds took{};
  const std::size_t reached = warm_up_scaled(
      pool, backends * idle, [&](std::chrono::nanoseconds d) { io.run_for(d); }, took);
  if (!scale_warmed_up(state, reached, backends * idle, construct, took)) return;
  bool done = false;
  asio::co_spawn(io, timed_claim_loop(pool, state), [&](std::exception_ptr e) {
    if (e) state.SkipWithError(describe(e).c_str());
    done = true;
  });
  while (!done) io.run_one();
}

// ----- memory -------------------------------------------------------------------

// Heap bytes a warmed-up pool of 1000 idle slots holds, per slot, minus the
// connection object itself. Includes the pool's fixed cost (/1000).
void idle_slot_memory(benchmark::State& state) {
  constexpr std::size_t slots = 1000;
  qorb::policy p;
  p.max_slots = p.spares_wanted = p.set_config.max_count = slots;
  double per_slot = 0, per_slot_malloc = 0;
  for (auto _ : state) {
    asio::io_context io(1);
    const std::int64_t before = heap::live_bytes();
    const auto malloc_before = mallinfo2().uordblks;
    {
      auto pool = make_pool(io.get_executor(), p);
      if (!warm_up(pool, slots, [&] { io.run_one_for(1ms); })) {
        return state.SkipWithError("pool did not warm up");
      }
      const std::int64_t after = heap::live_bytes();
      const auto malloc_after = mallinfo2().uordblks;
      per_slot =
          static_cast<double>(after - before) / slots - static_cast<double>(sizeof(bench_conn));
      per_slot_malloc =
          (static_cast<double>(malloc_after) - static_cast<double>(malloc_before)) / slots -
          static_cast<double>(sizeof(bench_conn));
    }
  }
  state.counters["bytes_per_idle_slot"] = per_slot;
  // Cross-check: everything malloc holds, Asio's own aligned_alloc
  // handler caches included (new/delete do not see those).
  state.counters["malloc_bytes_per_idle_slot"] = per_slot_malloc;
}

// RSS growth per idle slot, in a fresh process (a fork, so memory that
// earlier benchmarks freed but malloc kept cannot hide the growth): a pool
// of 10,000 idle slots on one backend, minus the connection object itself.
// Also the live operator-new bytes per slot in that process, for
// comparison with bytes_per_idle_slot above.
void idle_slot_rss(benchmark::State& state) {
  constexpr std::size_t slots = 10000;
  double rss_per_slot = -1, heap_per_slot = -1, trimmed_per_slot = -1, arena_per_slot = -1;
  for (auto _ : state) {
    int out[2];
    if (::pipe(out) != 0) return state.SkipWithError("pipe failed");
    const pid_t child = ::fork();
    if (child < 0) return state.SkipWithError("fork failed");
    if (child == 0) {
      ::close(out[0]);
      auto resident = [] {
        long size = 0, pages = 0;
        std::FILE* f = std::fopen("/proc/self/statm", "r");
        if (!f || std::fscanf(f, "%ld %ld", &size, &pages) != 2) pages = -1;
        if (f) std::fclose(f);
        return static_cast<double>(pages) * static_cast<double>(::sysconf(_SC_PAGESIZE));
      };
      qorb::policy p;
      p.max_slots = p.spares_wanted = p.set_config.max_count = slots;
      asio::io_context io(1);
      double result[4] = {-1, -1, -1, -1};
      const double rss_before = resident();
      const auto arena_before = mallinfo2().arena;
      const std::int64_t heap_before = heap::live_bytes();
      {
        auto pool = make_pool(io.get_executor(), p);
        if (warm_up(pool, slots, [&] { io.run_one_for(1ms); })) {
          const double conn = static_cast<double>(sizeof(bench_conn));
          result[0] = (resident() - rss_before) / slots - conn;
          result[1] = static_cast<double>(heap::live_bytes() - heap_before) / slots - conn;
          // What malloc keeps of the warm-up's transient memory (the
          // connects' coroutine frames, strands and timers, freed between
          // the slots' own blocks) counts above; handed back, this is what
          // the slots themselves hold.
          // Heap malloc took from the system (its high-water mark, roughly)
          // per slot: what the warm-up needed at its peak.
          result[3] =
              (static_cast<double>(mallinfo2().arena) - static_cast<double>(arena_before)) / slots;
          ::malloc_trim(0);
          result[2] = (resident() - rss_before) / slots - conn;
        }
      }
      const auto wrote = ::write(out[1], result, sizeof(result));
      ::_exit(wrote == static_cast<ssize_t>(sizeof(result)) ? 0 : 1);
    }
    ::close(out[1]);
    double result[4] = {-1, -1, -1, -1};
    const auto got = ::read(out[0], result, sizeof(result));
    ::close(out[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    if (got != static_cast<ssize_t>(sizeof(result)) || result[0] < 0) {
      return state.SkipWithError("the measuring process failed (warm-up or pipe)");
    }
    rss_per_slot = result[0];
    heap_per_slot = result[1];
    trimmed_per_slot = result[2];
    arena_per_slot = result[3];
  }
  state.counters["rss_bytes_per_idle_slot"] = rss_per_slot;
  state.counters["rss_kib_per_10k_idle_slots"] = rss_per_slot * 10000 / 1024;
  state.counters["heap_bytes_per_idle_slot"] = heap_per_slot;
  state.counters["rss_bytes_per_idle_slot_trimmed"] = trimmed_per_slot;
  state.counters["malloc_arena_bytes_per_idle_slot"] = arena_per_slot;
}

// ----- many waiting claims -------------------------------------------------------

// 100,000 claims waiting at once on a pool of 16 slots, all claimed: the
// claims are queued (callbacks), then the 16 connections come back and each
// served claim returns its connection at once, which serves the next. The
// time is from the first claim made to the last served (manual time); the
// counters say the heap each waiting claim held and how many failed.
void waiting_100k(benchmark::State& state) {
  constexpr std::size_t claims = 100000;
  qorb::policy p = scarce_policy();
  p.claim_timeout = 120s;
  double bytes_per_claim = 0;
  std::size_t failed = 0;
  for (auto _ : state) {
    asio::io_context io(1);
    auto pool = make_pool(io.get_executor(), p);
    if (!warm_up(pool, p.max_slots, [&] { io.run_one_for(1ms); })) {
      return state.SkipWithError("pool did not warm up");
    }
    std::vector<qorb::handle<bench_conn>> out;
    for (std::size_t i = 0; i < p.max_slots; ++i) out.push_back(pool.try_claim());
    std::size_t done = 0;
    failed = 0;
    const std::int64_t heap_before = heap::live_bytes();
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < claims; ++i) {
      pool.async_claim([&](qorb::error_code ec, qorb::handle<bench_conn> h) {
        ++done;
        if (ec || !h) ++failed;
      });
    }
    bytes_per_claim = static_cast<double>(heap::live_bytes() - heap_before) / claims;
    out.clear();
    for (std::size_t budget = 100 * claims; done < claims && budget > 0; --budget) io.run_one();
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (done < claims) return state.SkipWithError("not every claim completed");
  }
  state.counters["bytes_per_waiting_claim"] = bytes_per_claim;
  state.counters["failed"] = static_cast<double>(failed);
}

// ----- reference: what this machine charges --------------------------------------

// One cheap system call (getppid), and one clock read (the vDSO: no system
// call), so the claim figures can be read against this machine's costs.
void syscall_getppid(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(::syscall(SYS_getppid));
}
// The floor of a claim + release that takes a lock for each: two
// uncontended lock/unlock pairs (a compare-exchange and an exchange each,
// as the pool's lock does when it is free).
void lock_unlock_twice(benchmark::State& state) {
  std::atomic<int> lock{0};
  for (auto _ : state) {
    for (int i = 0; i < 2; ++i) {
      int expected = 0;
      benchmark::DoNotOptimize(
          lock.compare_exchange_strong(expected, 1, std::memory_order_acquire));
      benchmark::DoNotOptimize(lock.exchange(0, std::memory_order_release));
    }
  }
}
void steady_clock_now(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(std::chrono::steady_clock::now());
}

}  // namespace

BENCHMARK(sequential_try)->Name("claim_release/sequential_try");
BENCHMARK(sequential_try_watched)->Name("claim_release/sequential_try_watched");
BENCHMARK(sequential_async)->Name("claim_release/sequential_async");
BENCHMARK(sequential_co_claim)->Name("claim_release/sequential_co_claim");
BENCHMARK(sequential_co_claim_observed)->Name("claim_release/sequential_co_claim_observed");
BENCHMARK(contention16)
    ->Name("claim_release/contention16")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(contention16_co_claim)
    ->Name("claim_release/contention16_co_claim")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(contention64_scarce)
    ->Name("claim_release/contention64_scarce")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(contention64_scarce_co_claim)
    ->Name("claim_release/contention64_scarce_co_claim")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(batch_hold50us)
    ->Name("batch_hold50us")
    ->Arg(10)
    ->Arg(100)
    ->Arg(1000)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(timer_chains16_hold50us)
    ->Name("reference/timer_chains16_hold50us")
    ->Arg(1000)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(scale_try)
    ->Name("scale/try")
    ->ArgNames({"backends", "idle"})
    ->ArgsProduct({{1, 100, 10000}, {1, 2}});
BENCHMARK(scale_async)
    ->Name("scale/async")
    ->ArgNames({"backends", "idle"})
    ->ArgsProduct({{1, 100, 10000}, {1, 2}});
BENCHMARK(idle_slot_memory)->Name("memory/idle_slot_bytes")->Iterations(1);
BENCHMARK(idle_slot_rss)->Name("memory/idle_slot_rss")->Iterations(1);
BENCHMARK(waiting_100k)
    ->Name("waiting/100k_claims_on_16_slots")
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);
BENCHMARK(syscall_getppid)->Name("reference/syscall_getppid");
BENCHMARK(steady_clock_now)->Name("reference/steady_clock_now");
BENCHMARK(lock_unlock_twice)->Name("reference/lock_unlock_twice");

// Linux lets a timer fire up to the thread's "timer slack" late (50 us by
// default), which would stretch every 50 us hold of the batch benchmarks to
// about twice that; 1 ns makes the holds what they say. Threads started
// later (the io_context runners) inherit it.
int main(int argc, char** argv) {
  ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  syscalls::open_counter();  // before any thread, so that every thread inherits it
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
