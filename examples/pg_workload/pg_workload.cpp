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
#ifdef QORB_PG_WORKLOAD_STATS
#include <qorb/stats_server.hpp>
#endif
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>
#ifdef QORB_PG_WORKLOAD_DNS
#include <qorb/resolvers/dns.hpp>
#endif

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

namespace asio = boost::asio;
namespace pg = qorb::connectors::postgres;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

struct options {
  std::vector<asio::ip::tcp::endpoint> backends;
  std::string dns_service;
  std::vector<asio::ip::udp::endpoint> dns_servers;
  std::string user = "postgres";
  std::string database = "postgres";
  std::string sslmode = "prefer";
  double duration_s = 10;
  int concurrency = 32;
  int threads = 2;
  std::size_t max_slots = 16;
  std::size_t spares = 8;
  std::array<int, 3> mix{80, 15, 5};  // read, write, transaction
  int rows = 1000;
  std::optional<asio::ip::tcp::endpoint> stats_addr;  // serve /stats, /metrics, qtop here
};

// usage(nullptr): --help, on stdout, exit 0; else the reason and exit 2.
[[noreturn]] void usage(const char* why) {
  std::fprintf(
      why ? stderr : stdout,
      "%s%s%s"
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
      "which), 1 on any other failure.\n",
      why ? "pg_workload: " : "", why ? why : "", why ? "\n" : "");
  std::exit(why ? 2 : 0);
}

template <class T>
std::string number_text(T v) {
  if constexpr (std::is_floating_point_v<T>) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.15g", v);
    return buf;
  } else {
    return std::to_string(v);
  }
}

// `text` as a number from `min` to `max`. Anything else (not a number, NaN,
// infinite, negative, out of range, too large to parse) is one line naming
// the option and its range.
template <class T>
T number(std::string_view text, const char* name, T min, T max) {
  T v{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  // Written so that NaN, which compares false with everything, fails it.
  const bool in_range = v >= min && v <= max;
  if (ec != std::errc{} || end != text.data() + text.size() || !in_range) {
    const auto why = std::string(name) + " must be a number from " + number_text(min) + " to " +
                     number_text(max) + ", not '" + std::string(text) + "'";
    usage(why.c_str());
  }
  return v;
}

// "127.0.0.1:5432" or "[::1]:5432".
asio::ip::tcp::endpoint parse_address(std::string_view text) {
  const auto endpoint = qorb::parse_endpoint(text);
  if (!endpoint) usage(qorb::endpoint_error(text).c_str());
  return *endpoint;
}

options parse(int argc, char** argv) {
  options o;
  bool spares_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") usage(nullptr);
    const auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) {
        std::string why = "missing value for ";
        why.append(arg);
        usage(why.c_str());
      }
      return argv[++i];
    };
    if (arg == "--backend") {
      o.backends.push_back(parse_address(value()));
    } else if (arg == "--dns") {
      o.dns_service = value();
    } else if (arg == "--dns-server") {
      const auto server = parse_address(value());
      o.dns_servers.emplace_back(server.address(), server.port());
    } else if (arg == "--user") {
      o.user = value();
    } else if (arg == "--database") {
      o.database = value();
    } else if (arg == "--sslmode") {
      o.sslmode = value();
    } else if (arg == "--stats-addr") {
      o.stats_addr = parse_address(value());
    } else if (arg == "--duration") {
      o.duration_s = number<double>(value(), "--duration", 0.1, 1e6);
    } else if (arg == "--concurrency") {
      o.concurrency = number<int>(value(), "--concurrency", 1, 10'000);
    } else if (arg == "--threads") {
      o.threads = number<int>(value(), "--threads", 1, 256);
    } else if (arg == "--max-slots") {
      o.max_slots = number<std::size_t>(value(), "--max-slots", 1, 100'000);
    } else if (arg == "--spares") {
      o.spares = number<std::size_t>(value(), "--spares", 0, 100'000);
      spares_given = true;
    } else if (arg == "--rows") {
      o.rows = number<int>(value(), "--rows", 1, 10'000'000);
    } else if (arg == "--mix") {
      const std::string_view mix = value();
      const auto c1 = mix.find(',');
      const auto c2 = mix.find(',', c1 == std::string_view::npos ? c1 : c1 + 1);
      if (c1 == std::string_view::npos || c2 == std::string_view::npos)
        usage("--mix is READ,WRITE,TX (three weights)");
      // Each bounded, so their sum cannot overflow.
      o.mix = {number<int>(mix.substr(0, c1), "--mix", 0, 1'000'000),
               number<int>(mix.substr(c1 + 1, c2 - c1 - 1), "--mix", 0, 1'000'000),
               number<int>(mix.substr(c2 + 1), "--mix", 0, 1'000'000)};
    } else {
      std::string why = "unknown option '";
      why.append(arg).append("'");
      usage(why.c_str());
    }
  }
  if (o.backends.empty() == o.dns_service.empty()) usage("give --backend or --dns");
  if (!o.dns_service.empty() && o.dns_servers.empty()) usage("--dns needs --dns-server");
  if (o.mix[0] + o.mix[1] + o.mix[2] == 0) usage("--mix: at least one weight above 0");
  // The default spares follow a smaller --max-slots; given ones are checked.
  if (!spares_given) o.spares = std::min(o.spares, o.max_slots);
  return o;
}

std::shared_ptr<qorb::resolver> make_resolver(const options& o) {
  if (!o.backends.empty()) return std::make_shared<qorb::fixed_resolver>(o.backends);
#ifdef QORB_PG_WORKLOAD_DNS
  qorb::dns_resolver_config dns;
  dns.service = o.dns_service;
  dns.servers = o.dns_servers;
  return std::make_shared<qorb::dns_resolver>(std::move(dns));
#else
  usage("this build has no DNS resolver");
#endif
}

enum kind { read_op, write_op, transaction_op, kinds };
constexpr std::array<const char*, kinds> kind_names{"read", "write", "transaction"};

// Latencies (microseconds) per kind, collected by every worker.
struct measurements {
  std::mutex mu;
  std::array<std::vector<std::uint32_t>, kinds> latency_us;
  std::map<std::string, std::uint64_t> errors;
  std::atomic<std::uint64_t> done{0};
  std::atomic<std::uint64_t> failed{0};

  void record(kind k, clock_type::duration took) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(took).count();
    std::lock_guard lock(mu);
    latency_us[k].push_back(static_cast<std::uint32_t>(std::min<long long>(us, UINT32_MAX)));
  }
  void error(const std::string& what) {
    failed.fetch_add(1);
    std::lock_guard lock(mu);
    ++errors[what];
  }
  // A claim still waiting when the run ended, with the pool's reason.
  void unserved(const std::string& why) {
    std::lock_guard lock(mu);
    ++unserved_claims[why];
  }
  std::map<std::string, std::uint64_t> unserved_claims;
};

constexpr qorb::duration claim_timeout = 10s;

// What the end of --duration leaves to operations under way before it drops
// them: a server that never answers must not hold the summary back.
constexpr auto end_grace = 1s;

// Operations started and not ended: those the run's end drops are reported.
// Not in `measurements`: a dropped coroutine's frame, and this count's guard
// in it, outlive main's locals.
std::atomic<int> under_way{0};

struct under_way_guard {
  under_way_guard() { under_way.fetch_add(1); }
  ~under_way_guard() { under_way.fetch_sub(1); }
  under_way_guard(const under_way_guard&) = delete;
  under_way_guard& operator=(const under_way_guard&) = delete;
};

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
        m.unserved(e.what());  // cut by the run's end, not a failure
        break;
      }
      m.error(e.what());
      continue;
    }
    try {
      const under_way_guard counted;
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
      m.error(e.what());
    }
  }
}

double percentile(std::vector<std::uint32_t>& v, double p) {
  if (v.empty()) return 0;
  const auto at = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(at), v.end());
  return v[at] / 1000.0;
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
    usage(std::string(flag).append(": ").append(e.what()).c_str());
  }

  asio::thread_pool threads(static_cast<std::size_t>(o.threads));
#ifdef QORB_PG_WORKLOAD_STATS
  // Started before the pool: a port in use is then the only line printed.
  std::optional<qorb::stats_server> stats;
  if (o.stats_addr) {
    qorb::stats_server_config stats_cfg;
    stats_cfg.listen = *o.stats_addr;
    try {
      stats.emplace(threads.get_executor(), stats_cfg);
      stats->start();
    } catch (const std::exception& e) {
      const auto* se = dynamic_cast<const boost::system::system_error*>(&e);
      std::fprintf(stderr, "pg_workload: cannot serve stats on %s: %s\n",
                   qorb::to_string(*o.stats_addr).c_str(),
                   se ? se->code().message().c_str() : e.what());
      std::fflush(stdout);
      std::_Exit(1);  // threads run: leave without destructors under them
    }
  }
#else
  if (o.stats_addr) usage("this build has no stats server (the observability component)");
#endif
  qorb::pool<pg::connection> pool(threads.get_executor(), "pg_workload", make_resolver(o),
                                  pg::connector(cfg), policy);

#ifdef QORB_PG_WORKLOAD_STATS
  if (stats) {
    stats->attach(pool);
    const auto at = qorb::to_string(stats->local_endpoint());
    std::printf("stats: http://%s/stats  http://%s/metrics  qtop ws://%s/qtop/stats\n", at.c_str(),
                at.c_str(), at.c_str());
  }
#endif
  std::printf("pg_workload: %d workers, %d threads, max %zu connections, mix %d/%d/%d, %.1f s\n",
              o.concurrency, o.threads, o.max_slots, o.mix[0], o.mix[1], o.mix[2], o.duration_s);
  measurements m;
  const auto start = clock_type::now();
  const auto end = start + std::chrono::duration_cast<clock_type::duration>(
                               std::chrono::duration<double>(o.duration_s));
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
    std::this_thread::sleep_for(20ms);
    const auto now = clock_type::now();
    if (now >= end + end_grace) {
      threads.stop();  // what is still under way is dropped
      break;
    }
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
#ifdef QORB_PG_WORKLOAD_STATS
  if (stats) stats->stop();  // its listener is work too: join() would wait for it forever
#endif
  threads.join();
  // No thread runs now: what the grace second left is still counted.
  const int dropped = under_way.load();

  std::printf("\n%llu operations in %.1f s: %.0f ops/s, %llu errors\n",
              static_cast<unsigned long long>(m.done.load()), elapsed,
              static_cast<double>(m.done.load()) / elapsed,
              static_cast<unsigned long long>(m.failed.load()));
  std::printf("latency (ms, claim included)      count      p50      p90      p99      max\n");
  for (int k = 0; k < kinds; ++k) {
    auto& v = m.latency_us[static_cast<std::size_t>(k)];
    const std::size_t count = v.size();
    const double p50 = percentile(v, 0.50);
    const double p90 = percentile(v, 0.90);
    const double p99 = percentile(v, 0.99);
    const double max = percentile(v, 1.0);
    std::printf("  %-30s %8zu %8.2f %8.2f %8.2f %8.2f\n", kind_names[static_cast<std::size_t>(k)],
                count, p50, p90, p99, max);
  }
  for (const auto& [what, count] : m.errors) {
    std::printf("  error x%llu: %s\n", static_cast<unsigned long long>(count), what.c_str());
  }
  for (const auto& [why, count] : m.unserved_claims) {
    std::printf("  claims still waiting at the end x%llu: %s\n",
                static_cast<unsigned long long>(count), why.c_str());
  }
  if (dropped > 0) {
    std::printf("  operations still under way at the end x%d: dropped after one second\n", dropped);
  }
  return m.done.load() > 0 ? 0 : 1;
}
