// SPDX-License-Identifier: BSL-1.0
// pg_workload: a qorb pool over a PostgreSQL fleet (a fixed list of servers
// or a DNS SRV name) running a mix of point reads, updates and short
// transactions from many concurrent workers; prints throughput and the pool's
// per-backend state every second, and latency percentiles at the end.
//
//   PGPASSWORD=secret pg_workload --backend 127.0.0.1:5432 --backend 127.0.0.1:5433
//   pg_workload --dns _postgresql._tcp.db.example.com --dns-server 127.0.0.1:53
//
// The password comes from the environment (PGPASSWORD), never from the
// command line, and is never printed.
#include <qorb/connectors/postgres.hpp>
#include <qorb/pool.hpp>

#include "common/workload_support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace asio = boost::asio;
namespace pg = qorb::connectors::postgres;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
namespace ex = qorb::examples;

namespace {

struct options : ex::workload_options {
  std::string user = "postgres";
  std::string database = "postgres";
  std::string sslmode = "prefer";
  int concurrency = 32;
  std::size_t spares = 8;
  std::array<int, 3> mix{80, 15, 5};  // read, write, transaction
  int rows = 1000;
};

constexpr const char* usage_text =
    "usage: pg_workload (--backend IP:PORT ... | --dns SERVICE --dns-server IP:PORT ...)\n"
    "       [--user NAME] [--database NAME] [--sslmode MODE] [--duration SECONDS]\n"
    "       [--concurrency N] [--threads N] [--max-slots N] [--spares N]\n"
    "       [--mix READ,WRITE,TX] [--rows N] [--stats-addr IP:PORT]\n"
    "  --duration S     how long to run (0.1 to 1000000 s, default 10); claims\n"
    "                   still waiting at its end end there (counted apart from\n"
    "                   the errors), operations under way get one more second\n"
    "  --concurrency N  workers (1 to 10000, default 32)\n"
    "  --threads N      threads running them (1 to 256, default 2)\n"
    "  --max-slots N    the pool's cap (1 to 100000, default 16)\n"
    "  --spares N       idle connections wanted (0 to 100000, default 8, or\n"
    "                   --max-slots when smaller)\n"
    "  --mix R,W,T      weights of reads, writes, transactions (each 0 to\n"
    "                   1000000, not all 0; default 80,15,5)\n"
    "  --rows N         rows in the table (1 to 10000000, default 1000)\n"
    "The password is read from PGPASSWORD. SIGINT/SIGTERM end the process at\n"
    "once (their default action: no summary).\n"
    "Exit status: 0 when the run completed, 2 on bad arguments (one line saying\n"
    "which), 1 on any other failure.\n";

// The whole text for --help and after a bad argument; a bad address is
// its problem alone.
const ex::workload_tool tool{"pg_workload", usage_text, usage_text, false};

options parse(int argc, char** argv) {
  options o;
  bool spares_given = false;
  ex::workload_args args(argc, argv, tool);
  args.read(o, [&](std::string_view arg) {
    if (arg == "--user") {
      o.user = args.value();
    } else if (arg == "--database") {
      o.database = args.value();
    } else if (arg == "--sslmode") {
      o.sslmode = args.value();
    } else if (arg == "--concurrency") {
      o.concurrency = args.number<int>(1, 10'000);
    } else if (arg == "--spares") {
      o.spares = args.number<std::size_t>(0, 100'000);
      spares_given = true;
    } else if (arg == "--rows") {
      o.rows = args.number<int>(1, 10'000'000);
    } else if (arg == "--mix") {
      const std::string_view mix = args.value();
      const auto c1 = mix.find(',');
      const auto c2 = mix.find(',', c1 == std::string_view::npos ? c1 : c1 + 1);
      if (c1 == std::string_view::npos || c2 == std::string_view::npos)
        args.fail("--mix is READ,WRITE,TX (three weights)");
      // Each bounded, so their sum cannot overflow.
      o.mix = {args.number<int>(mix.substr(0, c1), 0, 1'000'000),
               args.number<int>(mix.substr(c1 + 1, c2 - c1 - 1), 0, 1'000'000),
               args.number<int>(mix.substr(c2 + 1), 0, 1'000'000)};
    } else {
      return false;
    }
    return true;
  });
  if (o.mix[0] + o.mix[1] + o.mix[2] == 0) args.fail("--mix: at least one weight above 0");
  // The default spares follow a smaller --max-slots; given ones are checked.
  if (!spares_given) o.spares = std::min(o.spares, o.max_slots);
  return o;
}

enum kind { read_op, write_op, transaction_op, kinds };
constexpr std::array<const char*, kinds> kind_names{"read", "write", "transaction"};

// Latencies (microseconds) per kind, collected by every worker.
struct measurements : ex::workload_tally {
  std::array<std::vector<std::uint32_t>, kinds> latency_us;
  std::atomic<std::uint64_t> done{0};

  void record(kind k, clock_type::duration took) {
    std::lock_guard lock(mu);
    latency_us[k].push_back(ex::micros(took));
  }
};

constexpr qorb::duration claim_timeout = 10s;

asio::awaitable<void> worker(qorb::pool<pg::connection>& pool, const options& o, measurements& m,
                             clock_type::time_point end, unsigned seed) {
  std::mt19937 rng(seed);
  std::discrete_distribution<int> pick({static_cast<double>(o.mix[0]),
                                        static_cast<double>(o.mix[1]),
                                        static_cast<double>(o.mix[2])});
  std::uniform_int_distribution<int> row(1, o.rows);
  while (clock_type::now() < end) {
    const auto k = static_cast<kind>(pick(rng));
    const int id = row(rng);
    const auto start = clock_type::now();
    // A claim waits no longer than the run lasts: with no server online it
    // would otherwise hold the run's end back by the claim timeout.
    const auto left = std::min<qorb::duration>(end - start, claim_timeout);
    if (left <= qorb::duration::zero()) break;
    qorb::handle<pg::connection> h;
    try {
      h = co_await pool.async_claim(left, asio::use_awaitable);
    } catch (const std::exception& e) {
      if (clock_type::now() >= end) {
        m.unserved(e);  // cut by the run's end, not a failure
        break;
      }
      m.error(e);
      continue;
    }
    try {
      const ex::under_way_guard counted;
      try {
        switch (k) {
          case read_op:
            co_await h->query("SELECT v FROM qorb_workload WHERE id = $1", id);
            break;
          case write_op:
            co_await h->query("UPDATE qorb_workload SET v = v + 1 WHERE id = $1", id);
            break;
          case transaction_op:
            co_await h->execute("BEGIN");
            co_await h->query("SELECT v FROM qorb_workload WHERE id = $1 FOR UPDATE", id);
            co_await h->query("UPDATE qorb_workload SET v = v + 1 WHERE id = $1", id);
            co_await h->execute("COMMIT");
            break;
          case kinds:
            break;
        }
      } catch (const pg::error& e) {
        // A broken session goes back as broken; the pool reconnects.
        if (e.code() == pg::errc::connection_broken) h.discard();
        throw;
      }
      m.record(k, clock_type::now() - start);
      m.done.fetch_add(1);
    } catch (const std::exception& e) {
      m.error(e);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // the report shows as it happens, also in a pipe
  const options o = parse(argc, argv);

  pg::config cfg;
  cfg.user = o.user;
  cfg.database = o.database;
  cfg.sslmode = o.sslmode;
  if (const char* password = std::getenv("PGPASSWORD")) cfg.password = password;
  cfg.application_name = "qorb-pg-workload";
  // Every server of the fleet gets the table; the advisory lock keeps
  // sessions connecting at once from racing to create it.
  cfg.on_connect =
      "SELECT pg_advisory_lock(7411);"
      "CREATE TABLE IF NOT EXISTS qorb_workload (id int PRIMARY KEY, v bigint NOT NULL);"
      "INSERT INTO qorb_workload SELECT g, 0 FROM generate_series(1, " +
      std::to_string(o.rows) +
      ") g ON CONFLICT DO NOTHING;"
      "SELECT pg_advisory_unlock(7411)";
  cfg.on_acquire = "SET statement_timeout = '5s'";

  qorb::policy policy;
  policy.max_slots = o.max_slots;
  policy.spares_wanted = o.spares;
  policy.claim_timeout = claim_timeout;
  try {
    qorb::validate(policy);
  } catch (const qorb::invalid_policy& e) {
    // A clear line, not an uncaught exception (abort, status 134).
    const std::string flag = e.field() == "max_slots" ? "--max-slots" : "--spares";
    ex::bad_arguments(tool, std::string(flag).append(": ").append(e.what()));
  }

  // SIGINT and SIGTERM keep their default action: they end the process.
  ex::workload_run run(ex::workload_run::signals::default_action);
  asio::thread_pool threads(static_cast<std::size_t>(o.threads));
  // Started before the pool: a port in use is then the only line printed.
  ex::workload_stats stats(tool, threads.get_executor(), o.stats_addr);
  qorb::pool<pg::connection> pool(threads.get_executor(), "pg_workload", ex::make_resolver(tool, o),
                                  pg::connector(cfg), policy);
  stats.attach(pool);
  std::printf("pg_workload: %d workers, %d threads, max %zu connections, mix %d/%d/%d, %.1f s\n",
              o.concurrency, o.threads, o.max_slots, o.mix[0], o.mix[1], o.mix[2], o.duration_s);
  measurements m;
  run.begin(o.duration_s);
  const auto start = run.start();
  const auto end = run.end();
  std::atomic<int> running{o.concurrency};
  for (int i = 0; i < o.concurrency; ++i) {
    asio::co_spawn(threads, worker(pool, o, m, end, static_cast<unsigned>(i) + 1),
                   [&running](std::exception_ptr) { running.fetch_sub(1); });
  }

  std::uint64_t last_done = 0;
  auto last = start;
  std::map<std::string, std::uint64_t> last_claims;
  while (running.load() > 0) {
    // Poll for the end often, report once a second.
    if (run.tick() == ex::workload_run::step::drop) {
      threads.stop();  // what is still under way is dropped
      break;
    }
    const auto now = clock_type::now();
    if (now - last < 1s) continue;
    const std::uint64_t done = m.done.load();
    const double secs = std::chrono::duration<double>(now - last).count();
    std::printf("[%5.1fs] %8.0f ops/s  errors %llu\n",
                std::chrono::duration<double>(now - start).count(),
                static_cast<double>(done - last_done) / secs,
                static_cast<unsigned long long>(m.failed.load()));
    for (const auto& [name, b] : pool.stats().backends) {
      std::printf(
          "    %-22s %7.0f claims/s  connecting %zu  unclaimed %zu  checking %zu  "
          "claimed %zu  failures: connect %llu check %llu\n",
          name.c_str(), static_cast<double>(b.total_claims - last_claims[name]) / secs,
          b.connecting, b.unclaimed, b.checking, b.claimed,
          static_cast<unsigned long long>(b.connect_failures),
          static_cast<unsigned long long>(b.check_failures));
      last_claims[name] = b.total_claims;
    }
    last_done = done;
    last = now;
  }
  const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  pool.terminate();
  stats.stop();
  threads.join();
  // No thread runs now: what the grace second left is still counted.
  const int dropped = ex::under_way().load();

  std::printf("\n%llu operations in %.1f s: %.0f ops/s, %llu errors\n",
              static_cast<unsigned long long>(m.done.load()), elapsed,
              static_cast<double>(m.done.load()) / elapsed,
              static_cast<unsigned long long>(m.failed.load()));
  std::printf("latency (ms, claim included)      count      p50      p90      p99      max\n");
  for (int k = 0; k < kinds; ++k) {
    auto& v = m.latency_us[static_cast<std::size_t>(k)];
    const std::size_t count = v.size();
    const double p50 = ex::percentile_ms(v, 0.50);
    const double p90 = ex::percentile_ms(v, 0.90);
    const double p99 = ex::percentile_ms(v, 0.99);
    const double max = ex::percentile_ms(v, 1.0);
    std::printf("  %-30s %8zu %8.2f %8.2f %8.2f %8.2f\n", kind_names[static_cast<std::size_t>(k)],
                count, p50, p90, p99, max);
  }
  m.print_failures("operations", dropped);
  return m.done.load() > 0 ? 0 : 1;
}
