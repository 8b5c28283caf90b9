// SPDX-License-Identifier: BSL-1.0
// http_workload: N claimers doing HTTP requests through a qorb pool of
// keep-alive connections (plain or TLS) to backends from a fixed list or a
// DNS SRV name. Prints a live line per second (requests/s, errors, and per
// backend the pool's connections and failures), and requests/s with
// latency percentiles at the end. --fresh runs the same load on a new
// connection per request (no pool), to show what pooling saves.
//
//   http_workload --backend 127.0.0.1:8080 --claimers 16 --duration 10
//   http_workload --backend 127.0.0.1:8443 --tls --ca-file ca.pem
//   http_workload --dns _http._tcp.example.com --dns-server 127.0.0.1:53
//   http_workload --backend 127.0.0.1:8080 --fresh
#include <qorb/connectors/http.hpp>
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>
#ifdef QORB_HTTP_WORKLOAD_DNS
#include <qorb/resolvers/dns.hpp>
#endif
#ifdef QORB_HTTP_WORKLOAD_STATS
#include <qorb/stats_server.hpp>
#endif

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

namespace asio = boost::asio;
namespace http = qorb::connectors::http;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

struct options {
  std::vector<asio::ip::tcp::endpoint> backends;
  std::string dns_service;
  std::vector<asio::ip::udp::endpoint> dns_servers;
  std::string target = "/";
  bool tls = false;
  std::string ca_file;
  std::string server_name;
  bool fresh = false;
  int claimers = 8;
  int threads = 2;
  std::size_t max_slots = 16;
  double duration_s = 10;
  std::optional<asio::ip::tcp::endpoint> stats_addr;
};

constexpr const char* usage_text =
    "usage: http_workload (--backend IP:PORT ... | --dns SERVICE --dns-server IP:PORT)\n"
    "       [--target PATH] [--tls [--ca-file PEM] [--server-name NAME]]\n"
    "       [--claimers N] [--threads N] [--max-slots N] [--duration S]\n"
    "       [--fresh] [--stats-addr IP:PORT]\n";

constexpr const char* help_text =
    "\n"
    "N claimers doing HTTP/1.1 requests through a pool of keep-alive\n"
    "connections; a line a second, then requests/s and latency percentiles.\n"
    "\n"
    "  --backend IP:PORT     a backend (repeatable)\n"
    "  --dns SERVICE         or backends from this SRV name (the dns component)\n"
    "  --dns-server IP:PORT  the DNS server to ask (repeatable; with --dns)\n"
    "  --target PATH         what to GET (default /)\n"
    "  --tls                 HTTPS: certificates verified, SNI on\n"
    "  --ca-file PEM         the CA to trust (default: the system's store)\n"
    "  --server-name NAME    the name to verify and send (default: the backend's)\n"
    "  --claimers N          concurrent claimers (1 to 10000, default 8)\n"
    "  --threads N           threads running them (1 to 256, default 2)\n"
    "  --max-slots N         the pool's cap (1 to 100000, default 16)\n"
    "  --duration S          how long to run (0.1 to 1000000 s, default 10)\n"
    "  --fresh               a new connection per request, no pool (with\n"
    "                        --backend): what pooling saves\n"
    "  --stats-addr IP:PORT  serve /stats, /metrics and qtop's WebSocket there\n"
    "\n"
    "The run ends at --duration: claims still waiting then end there (the\n"
    "summary counts them apart from the errors, with the pool's reason),\n"
    "requests under way get one more second. SIGINT or SIGTERM ends the run\n"
    "early: waiting claims fail at once, requests under way get one second,\n"
    "then the summary is printed.\n"
    "\n"
    "Exit status: 0 when some request succeeded; 1 when none did, or it cannot\n"
    "start (e.g. the --stats-addr port is in use, a bad --ca-file), with a\n"
    "one-line message on stderr; 2 on bad arguments.\n";

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "http_workload: %s\n%s", why.c_str(), usage_text);
  std::exit(2);
}

// Threads may be running: leave without running destructors under them.
[[noreturn]] void cannot_start(const std::string& why) {
  std::fprintf(stderr, "http_workload: %s\n", why.c_str());
  std::fflush(stdout);
  std::_Exit(1);
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
    usage(std::string(name) + " must be a number from " + number_text(min) + " to " +
          number_text(max) + ", not '" + std::string(text) + "'");
  }
  return v;
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) usage(std::string("missing value for ") + std::string(arg));
      return argv[++i];
    };
    const auto address = [&](const char* what) {
      const auto text = value();
      const auto e = qorb::parse_endpoint(text);
      if (!e) usage(std::string(what) + ": " + qorb::endpoint_error(text));
      return *e;
    };
    if (arg == "--backend") {
      o.backends.push_back(address("--backend"));
    } else if (arg == "--dns") {
      o.dns_service = value();
    } else if (arg == "--dns-server") {
      const auto e = address("--dns-server");
      o.dns_servers.emplace_back(e.address(), e.port());
    } else if (arg == "--target") {
      o.target = value();
      if (o.target.empty() || o.target.front() != '/') usage("--target must start with '/'");
    } else if (arg == "--tls") {
      o.tls = true;
    } else if (arg == "--ca-file") {
      o.ca_file = value();
    } else if (arg == "--server-name") {
      o.server_name = value();
    } else if (arg == "--fresh") {
      o.fresh = true;
    } else if (arg == "--claimers") {
      o.claimers = number<int>(value(), "--claimers", 1, 10'000);
    } else if (arg == "--threads") {
      o.threads = number<int>(value(), "--threads", 1, 256);
    } else if (arg == "--max-slots") {
      o.max_slots = number<std::size_t>(value(), "--max-slots", 1, 100'000);
    } else if (arg == "--duration") {
      o.duration_s = number<double>(value(), "--duration", 0.1, 1e6);
    } else if (arg == "--stats-addr") {
      o.stats_addr = address("--stats-addr");
    } else if (arg == "--help" || arg == "-h") {
      std::printf("%s%s", usage_text, help_text);
      std::exit(0);
    } else {
      usage(std::string("unknown option '") + std::string(arg) + "'");
    }
  }
  if (o.backends.empty() == o.dns_service.empty()) usage("give --backend or --dns");
  if (!o.dns_service.empty() && o.dns_servers.empty()) usage("--dns needs --dns-server");
  if (o.fresh && o.backends.empty()) usage("--fresh needs --backend");
  return o;
}

std::shared_ptr<qorb::resolver> make_resolver(const options& o) {
  if (!o.backends.empty()) return std::make_shared<qorb::fixed_resolver>(o.backends);
#ifdef QORB_HTTP_WORKLOAD_DNS
  qorb::dns_resolver_config dns;
  dns.service = o.dns_service;
  dns.servers = o.dns_servers;
  return std::make_shared<qorb::dns_resolver>(std::move(dns));
#else
  usage("this build has no DNS resolver");
#endif
}

struct results {
  std::mutex mu;
  std::vector<std::uint32_t> latency_us;
  std::map<std::string, std::uint64_t> errors;
  std::atomic<std::uint64_t> ok{0}, failed{0};

  void done(steady::duration took) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(took).count();
    ok.fetch_add(1);
    std::lock_guard lock(mu);
    latency_us.push_back(static_cast<std::uint32_t>(std::min<long long>(us, UINT32_MAX)));
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

http::request make_request(const options& o) { return {http::verb::get, o.target, 11}; }

// Pooled: claim, request, return.
// Set by SIGINT or SIGTERM: the claimers stop.
std::atomic<bool> stopping{false};

constexpr qorb::duration claim_timeout = 10s;

// Requests (with --fresh, connects too) started and not ended: those the
// run's end drops are reported. Not in `results`: a dropped coroutine's
// frame, and this count's guard in it, outlive main's locals.
std::atomic<int> under_way{0};

struct under_way_guard {
  under_way_guard() { under_way.fetch_add(1); }
  ~under_way_guard() { under_way.fetch_sub(1); }
  under_way_guard(const under_way_guard&) = delete;
  under_way_guard& operator=(const under_way_guard&) = delete;
};

// What the run's end (--duration, or a signal) leaves to requests under way
// before it drops them: a backend that never answers must not hold the
// summary back by the request timeout.
constexpr auto end_grace = 1s;

bool keep_going(steady::time_point end) {
  return !stopping.load(std::memory_order_relaxed) && steady::now() < end;
}

asio::awaitable<void> pooled_claimer(qorb::pool<http::connection>& pool, const options& o,
                                     results& r, steady::time_point end) {
  while (keep_going(end)) {
    const auto start = steady::now();
    // A claim waits no longer than the run lasts: with no backend online it
    // would otherwise hold the run's end back by the claim timeout.
    const auto left = std::min<qorb::duration>(end - start, claim_timeout);
    if (left <= qorb::duration::zero()) break;
    qorb::handle<http::connection> h;
    try {
      h = co_await pool.co_claim(left);
    } catch (const std::exception& e) {
      if (stopping.load()) break;  // the pool was terminated for the signal
      if (steady::now() >= end) {
        r.unserved(e.what());  // cut by the run's end, not a failure
        break;
      }
      r.error(e.what());
      continue;
    }
    try {
      const under_way_guard counted;
      auto res = co_await h->request(make_request(o));
      if (res.result_int() >= 500) {
        h.discard();  // a 5xx counts against the backend
        r.error("status " + std::to_string(res.result_int()));
        continue;
      }
      r.done(steady::now() - start);
    } catch (const std::exception& e) {
      if (stopping.load()) break;  // the pool was terminated for the signal
      r.error(e.what());
    }
  }
}

// The baseline: a new connection for every request, closed after it.
asio::awaitable<void> fresh_claimer(http::connector& connector, const options& o, results& r,
                                    steady::time_point end, std::size_t first) {
  for (std::size_t i = first; keep_going(end); ++i) {
    const auto start = steady::now();
    const auto& address = o.backends[i % o.backends.size()];
    try {
      const under_way_guard counted;
      // A named backend, not a braced temporary inside the co_await: GCC 12
      // frees such a temporary twice.
      const qorb::backend b{qorb::to_string(address), address};
      auto conn = co_await connector.connect(b);
      auto req = make_request(o);
      req.keep_alive(false);
      auto res = co_await conn.request(std::move(req));
      if (res.result_int() >= 500) {
        r.error("status " + std::to_string(res.result_int()));
        continue;
      }
      r.done(steady::now() - start);
    } catch (const std::exception& e) {
      r.error(e.what());
    }
  }
}

double percentile_ms(std::vector<std::uint32_t>& v, double p) {
  if (v.empty()) return 0;
  const auto at = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(at), v.end());
  return v[at] / 1000.0;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const options o = parse(argc, argv);
  // SIGINT and SIGTERM are taken by the main loop (sigtimedwait), so they
  // are blocked here, before any thread starts, for every thread.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  http::config cfg;
  if (o.tls) {
    cfg.tls.emplace();
    cfg.tls->ca_file = o.ca_file;
    cfg.tls->server_name = o.server_name;
  }
  cfg.request_timeout = 10s;
  std::optional<http::connector> connector;
  try {
    connector.emplace(cfg);
  } catch (const std::exception& e) {
    cannot_start(e.what());
  }

  qorb::policy policy;
  policy.max_slots = o.max_slots;
  policy.spares_wanted = std::min<std::size_t>(o.max_slots, 8);
  policy.claim_timeout = claim_timeout;
  policy.set_config.connect_timeout = 5s;
  policy.set_config.health_interval = 5s;

  asio::thread_pool threads(static_cast<std::size_t>(o.threads));
#ifdef QORB_HTTP_WORKLOAD_STATS
  std::optional<qorb::stats_server> stats;
  if (o.stats_addr && !o.fresh) {  // started first: a port in use stops us before any pool log
    qorb::stats_server_config stats_cfg;
    stats_cfg.listen = *o.stats_addr;
    try {
      stats.emplace(threads.get_executor(), stats_cfg);
      stats->start();
    } catch (const boost::system::system_error& e) {
      cannot_start("cannot serve stats on " + qorb::to_string(*o.stats_addr) + ": " +
                   e.code().message());
    } catch (const std::exception& e) {
      cannot_start(std::string("cannot serve stats: ") + e.what());
    }
  }
#else
  if (o.stats_addr) usage("this build has no stats server (the observability component)");
#endif
  std::optional<qorb::pool<http::connection>> pool;
  if (!o.fresh) {
    try {
      pool.emplace(threads.get_executor(), "http_workload", make_resolver(o), *connector, policy);
    } catch (const std::exception& e) {
      cannot_start(e.what());
    }
  }
#ifdef QORB_HTTP_WORKLOAD_STATS
  if (stats) {
    stats->attach(*pool);
    const auto at = qorb::to_string(stats->local_endpoint());
    std::printf("stats: http://%s/stats  http://%s/metrics  qtop ws://%s/qtop/stats\n", at.c_str(),
                at.c_str(), at.c_str());
  }
#endif
  std::printf("http_workload: %s%s %s, %d claimers, %d threads, %.1f s\n", o.tls ? "https" : "http",
              o.fresh ? " (fresh connection per request)" : " (pooled)", o.target.c_str(),
              o.claimers, o.threads, o.duration_s);

  results r;
  const auto start = steady::now();
  const auto end = start + std::chrono::duration_cast<steady::duration>(
                               std::chrono::duration<double>(o.duration_s));
  std::atomic<int> running{o.claimers};
  for (int i = 0; i < o.claimers; ++i) {
    auto work = pool ? pooled_claimer(*pool, o, r, end)
                     : fresh_claimer(*connector, o, r, end, static_cast<std::size_t>(i));
    asio::co_spawn(asio::make_strand(threads), std::move(work),
                   [&running](std::exception_ptr) { running.fetch_sub(1); });
  }

  // The live view: one line a second, and the pool's backends.
  std::uint64_t last_ok = 0;
  auto last = start;
  std::optional<steady::time_point> give_up;  // after a signal or the run's end
  while (running.load() > 0) {
    // Waits 20 ms for a signal: the tick of this loop.
    timespec tick{0, 20'000'000};
    if (sigtimedwait(&signals, nullptr, &tick) > 0 && !stopping.load()) {
      stopping.store(true);
      if (pool) pool->terminate();  // waiting claims fail at once
      // Requests under way get a second (what is left of it after --duration).
      if (!give_up) give_up = steady::now() + end_grace;
    }
    // The same second at the end of --duration (claims end there by
    // themselves: their deadline is the run's end).
    if (!give_up && steady::now() >= end) give_up = end + end_grace;
    if (give_up && steady::now() >= *give_up) {
      threads.stop();  // what is still under way is dropped
      break;
    }
    const auto now = steady::now();
    if (now - last < 1s) continue;
    const auto ok = r.ok.load();
    std::printf(
        "[%5.1fs] %9.0f req/s  errors %llu\n", std::chrono::duration<double>(now - start).count(),
        static_cast<double>(ok - last_ok) / std::chrono::duration<double>(now - last).count(),
        static_cast<unsigned long long>(r.failed.load()));
    if (pool) {
      for (const auto& [name, b] : pool->stats().backends) {
        std::printf(
            "    %-24s %s claimed %zu idle %zu connecting %zu  failures: connect %llu "
            "check %llu\n",
            name.c_str(), b.online ? "online " : "OFFLINE", b.claimed, b.unclaimed, b.connecting,
            static_cast<unsigned long long>(b.connect_failures),
            static_cast<unsigned long long>(b.check_failures));
      }
    }
    last_ok = ok;
    last = now;
  }
  // Signals stay blocked to the end: a second copy of the first (`timeout`
  // sends it to the process and to its group) must not cut the summary.
  const double elapsed = std::chrono::duration<double>(steady::now() - start).count();
  if (pool) pool->terminate();
#ifdef QORB_HTTP_WORKLOAD_STATS
  if (stats) stats->stop();
#endif
  threads.join();
  // No thread runs now: what the grace second left is still counted.
  const int dropped = under_way.load();

  std::printf("\n%llu requests in %.1f s: %.0f req/s, %llu errors\n",
              static_cast<unsigned long long>(r.ok.load()), elapsed,
              static_cast<double>(r.ok.load()) / elapsed,
              static_cast<unsigned long long>(r.failed.load()));
  const double p50 = percentile_ms(r.latency_us, 0.50);
  const double p99 = percentile_ms(r.latency_us, 0.99);
  const double max = percentile_ms(r.latency_us, 1.0);
  std::printf("latency (ms, claim included): p50 %.3f  p99 %.3f  max %.3f\n", p50, p99, max);
  for (const auto& [what, count] : r.errors) {
    std::printf("  error x%llu: %s\n", static_cast<unsigned long long>(count), what.c_str());
  }
  for (const auto& [why, count] : r.unserved_claims) {
    std::printf("  claims still waiting at the end x%llu: %s\n",
                static_cast<unsigned long long>(count), why.c_str());
  }
  if (dropped > 0) {
    std::printf("  requests still under way at the end x%d: dropped after one second\n", dropped);
  }
  return r.ok.load() > 0 ? 0 : 1;
}
