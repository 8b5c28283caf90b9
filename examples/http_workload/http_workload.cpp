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

#include "common/workload_support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace http = qorb::connectors::http;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
namespace ex = qorb::examples;

namespace {

struct options : ex::workload_options {
  std::string target = "/";
  bool tls = false;
  std::string ca_file;
  std::string server_name;
  bool fresh = false;
  int claimers = 8;
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

const ex::workload_tool tool{"http_workload", std::string(usage_text) + help_text, usage_text};

options parse(int argc, char** argv) {
  options o;
  ex::workload_args args(argc, argv, tool);
  args.read(o, [&](std::string_view arg) {
    if (arg == "--target") {
      o.target = args.value();
      if (o.target.empty() || o.target.front() != '/') args.fail("--target must start with '/'");
    } else if (arg == "--tls") {
      o.tls = true;
    } else if (arg == "--ca-file") {
      o.ca_file = args.value();
    } else if (arg == "--server-name") {
      o.server_name = args.value();
    } else if (arg == "--fresh") {
      o.fresh = true;
    } else if (arg == "--claimers") {
      o.claimers = args.number<int>(1, 10'000);
    } else {
      return false;
    }
    return true;
  });
  if (o.fresh && o.backends.empty()) args.fail("--fresh needs --backend");
  return o;
}

struct results : ex::workload_tally {
  std::vector<std::uint32_t> latency_us;
  std::atomic<std::uint64_t> ok{0};

  void done(steady::duration took) {
    ok.fetch_add(1);
    std::lock_guard lock(mu);
    latency_us.push_back(ex::micros(took));
  }
};

http::request make_request(const options& o) { return {http::verb::get, o.target, 11}; }

constexpr qorb::duration claim_timeout = 10s;

// Pooled: claim, request, return.
asio::awaitable<void> pooled_claimer(qorb::pool<http::connection>& pool, const options& o,
                                     results& r, const ex::workload_run& run) {
  const auto end = run.end();
  while (run.keep_going()) {
    const auto start = steady::now();
    // A claim waits no longer than the run lasts: with no backend online it
    // would otherwise hold the run's end back by the claim timeout.
    const auto left = std::min<qorb::duration>(end - start, claim_timeout);
    if (left <= qorb::duration::zero()) break;
    qorb::handle<http::connection> h;
    try {
      h = co_await pool.co_claim(left);
    } catch (const std::exception& e) {
      if (run.stopping()) break;  // the pool was terminated for the signal
      if (steady::now() >= end) {
        r.unserved(e);  // cut by the run's end, not a failure
        break;
      }
      r.error(e);
      continue;
    }
    try {
      const ex::under_way_guard counted;
      auto res = co_await h->request(make_request(o));
      if (res.result_int() >= 500) {
        h.discard();  // a 5xx counts against the backend
        r.error("status " + std::to_string(res.result_int()));
        continue;
      }
      r.done(steady::now() - start);
    } catch (const std::exception& e) {
      if (run.stopping()) break;  // the pool was terminated for the signal
      r.error(e);
    }
  }
}

// The baseline: a new connection for every request, closed after it.
asio::awaitable<void> fresh_claimer(http::connector& connector, const options& o, results& r,
                                    const ex::workload_run& run, std::size_t first) {
  for (std::size_t i = first; run.keep_going(); ++i) {
    const auto start = steady::now();
    const auto& address = o.backends[i % o.backends.size()];
    try {
      const ex::under_way_guard counted;
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
      r.error(e);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const options o = parse(argc, argv);
  // SIGINT and SIGTERM end the run (taken by the main loop): blocked here,
  // before any thread starts, for every thread.
  ex::workload_run run(ex::workload_run::signals::end_the_run);

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
    ex::cannot_start(tool, e.what());
  }

  qorb::policy policy;
  policy.max_slots = o.max_slots;
  policy.spares_wanted = std::min<std::size_t>(o.max_slots, 8);
  policy.claim_timeout = claim_timeout;
  policy.set_config.connect_timeout = 5s;
  policy.set_config.health_interval = 5s;

  asio::thread_pool threads(static_cast<std::size_t>(o.threads));
  // Started first: a port in use stops us before any pool log. No pool to
  // show with --fresh.
  ex::workload_stats stats(tool, threads.get_executor(), o.fresh ? std::nullopt : o.stats_addr);
  std::optional<qorb::pool<http::connection>> pool;
  if (!o.fresh) {
    try {
      pool.emplace(threads.get_executor(), "http_workload", ex::make_resolver(tool, o), *connector,
                   policy);
    } catch (const std::exception& e) {
      ex::cannot_start(tool, e.what());
    }
    stats.attach(*pool);
  }
  std::printf("http_workload: %s%s %s, %d claimers, %d threads, %.1f s\n", o.tls ? "https" : "http",
              o.fresh ? " (fresh connection per request)" : " (pooled)", o.target.c_str(),
              o.claimers, o.threads, o.duration_s);

  results r;
  run.begin(o.duration_s);
  const auto start = run.start();
  std::atomic<int> running{o.claimers};
  for (int i = 0; i < o.claimers; ++i) {
    auto work = pool ? pooled_claimer(*pool, o, r, run)
                     : fresh_claimer(*connector, o, r, run, static_cast<std::size_t>(i));
    asio::co_spawn(asio::make_strand(threads), std::move(work),
                   [&running](std::exception_ptr) { running.fetch_sub(1); });
  }

  // The live view: one line a second, and the pool's backends.
  std::uint64_t last_ok = 0;
  auto last = start;
  while (running.load() > 0) {
    const auto step = run.tick();
    if (step == ex::workload_run::step::signalled && pool) {
      pool->terminate();  // waiting claims fail at once
    }
    if (step == ex::workload_run::step::drop) {
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
  const double elapsed = std::chrono::duration<double>(steady::now() - start).count();
  if (pool) pool->terminate();
  stats.stop();
  threads.join();
  // No thread runs now: what the grace second left is still counted.
  const int dropped = ex::under_way().load();

  std::printf("\n%llu requests in %.1f s: %.0f req/s, %llu errors\n",
              static_cast<unsigned long long>(r.ok.load()), elapsed,
              static_cast<double>(r.ok.load()) / elapsed,
              static_cast<unsigned long long>(r.failed.load()));
  const double p50 = ex::percentile_ms(r.latency_us, 0.50);
  const double p99 = ex::percentile_ms(r.latency_us, 0.99);
  const double max = ex::percentile_ms(r.latency_us, 1.0);
  std::printf("latency (ms, claim included): p50 %.3f  p99 %.3f  max %.3f\n", p50, p99, max);
  r.print_failures("requests", dropped);
  return r.ok.load() > 0 ? 0 : 1;
}
