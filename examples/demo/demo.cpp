// SPDX-License-Identifier: BSL-1.0
// The demo: a qorb pool doing its job against real servers on loopback, and
// what happens when a backend dies and another one appears in DNS.
//
// It starts four TCP echo servers (tcp_echo_server processes) and a Knot DNS
// server whose zone names three of them under `_echo._tcp.test.com.`, then
// runs the echo workload (a pool over the DNS resolver, with claimers) with
// its live view. After a third of the run it kills one echo server
// (SIGKILL); after two thirds it adds the fourth to the zone (knotc). At the
// end it prints, per backend, the claims served and failed and when it left
// or joined the service, and the two figures that matter: how long claims
// still went to the dead backend after the kill, and how long the new
// backend took to serve a claim after the DNS change.
//
// Exit status: 0 when the story happened (claims were served, the dead
// backend stopped getting claims before the DNS change, the new backend
// served claims), 1 when it did not or the demo was quit early, 2 on bad
// arguments, 128+N after signal N (every process it started is stopped in
// every case).
//
// With --discovery etcd the same story runs on etcd: one etcd member instead
// of Knot, the echo servers register themselves (tcp_echo_server --register,
// lease TTL 3 s), the fourth starts (and registers) at two thirds, and at five
// sixths the third is stopped cleanly (SIGTERM: its lease is revoked). The
// summary adds when the pool's set lost the killed and the stopped backend.
//
//   qorb_demo [--duration S] [--claimers N] [--hold MS] [--plain] [--stats-addr IP:PORT]
//             [--discovery dns|etcd]
//
// This file is the story (its options, its steps in run(), the lines it
// prints on the way); the servers it starts are in servers.hpp, the summary
// at the end in summary.hpp, the picture in timeline.hpp, the child
// processes in processes.hpp.
#include <qorb/backend.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common/command_line.hpp"
#include "common/echo_workload.hpp"
#include "common/workload_view.hpp"
#include "processes.hpp"
#include "say.hpp"
#include "servers.hpp"
#include "summary.hpp"
#include "timeline.hpp"

#if QORB_DEMO_ETCD
#include <qorb/resolvers/etcd.hpp>

#include "etcd_store.hpp"
#endif

namespace {

namespace asio = boost::asio;
namespace examples = qorb::examples;
namespace demo = qorb::demo;
using namespace std::chrono_literals;
using examples::steady_clock;
using ms = std::chrono::milliseconds;
using demo::echo_process;
using demo::etcd_prefix;
using demo::etcd_ttl_s;
using demo::knot_dns;
using demo::millis;
using demo::say;
using demo::scratch_dir;
using demo::seconds;
using demo::start_echo_server;
using demo::story;
using demo::summarize;

constexpr const char* usage_text =
    "usage: qorb_demo [--duration S] [--claimers N] [--hold MS] [--plain]\n"
    "                 [--stats-addr IP:PORT] [--discovery dns|etcd]\n"
    "                 [--plot FILE.svg | --no-plot]\n"
    "\n"
    "  --duration S          length of the run, at least 6 (default 30): the kill\n"
    "                        comes after a third, the DNS change after two thirds\n"
    "  --claimers N          claimers (default 8)\n"
    "  --hold MS             how long each claim is held (default 20)\n"
    "  --plain               text lines, no interactive view (the default without a\n"
    "                        terminal)\n"
    "  --stats-addr IP:PORT  serve /stats, /metrics and qtop's WebSocket there\n"
    "  --discovery dns|etcd  how the pool finds the servers (default dns): Knot DNS,\n"
    "                        or etcd with the servers registering themselves (the\n"
    "                        fourth registers at two thirds; the third is stopped\n"
    "                        cleanly at five sixths)\n"
    "  --plot FILE.svg       at the end, draw claims/s per backend over time with the\n"
    "                        kill and the DNS change marked (gnuplot) into the scratch\n"
    "                        directory and copy it to FILE (default qorb-demo.svg)\n"
    "  --no-plot             no picture\n"
    "\n"
    "exit status: 0 when the story ran and the pool behaved; 1 when it failed or\n"
    "could not start (e.g. the --stats-addr port is in use), with a one-line\n"
    "message on stderr; 2 for a bad command line; 128+N after signal N\n";

struct options {
  double duration_s = 30;
  std::size_t claimers = 8;
  int hold_ms = 20;
  bool plain = false;
  std::optional<asio::ip::tcp::endpoint> stats_addr;
  bool etcd = false;                   // --discovery etcd
  std::string plot = "qorb-demo.svg";  // empty: --no-plot
};

options parse(int argc, char** argv) {
  options o;
  examples::command_line args(argc, argv, "qorb_demo", usage_text);
  while (args.next()) {
    const auto arg = args.name();
    if (arg == "--duration") {
      o.duration_s = args.number<double>(6, 86'400);
    } else if (arg == "--claimers") {
      o.claimers = args.number<std::size_t>(1, 10'000);
    } else if (arg == "--hold") {
      o.hold_ms = args.number<int>(0, 60'000);
    } else if (arg == "--discovery") {
      const auto v = args.value();
      if (v == "etcd") {
#if QORB_DEMO_ETCD
        o.etcd = true;
#else
        args.fail("--discovery etcd needs qorb built with the etcd component");
#endif
      } else if (v != "dns") {
        args.fail("--discovery must be dns or etcd");
      }
    } else if (arg == "--plot") {
      o.plot = args.value();
      if (o.plot.empty()) args.fail("--plot needs a file name (or --no-plot)");
    } else if (arg == "--no-plot") {
      o.plot.clear();
    } else if (arg == "--plain") {
      o.plain = true;
    } else if (arg == "--stats-addr") {
      const auto text = args.value();
      o.stats_addr = qorb::parse_endpoint(text);
      if (!o.stats_addr) args.fail("--stats-addr: " + qorb::endpoint_error(text));
    } else {
      args.unknown();
    }
  }
  return o;
}

std::atomic<int> interrupted{0};
extern "C" void on_signal(int signal) { interrupted = signal; }

// Lines to paste into another terminal while the demo runs, with its ports
// and the tools' paths in this build (tests/examples/demo_test.cpp runs them
// as printed).
void print_commands(std::optional<asio::ip::tcp::endpoint> stats, unsigned short dns_port,
                    const std::string& etcd_url) {
  say("  paste into another terminal while it runs:");
#ifdef QORB_DEMO_QORB_RESOLVE
  if (dns_port != 0) {
    say("    {} --server 127.0.0.1:{} _echo._tcp.test.com", QORB_DEMO_QORB_RESOLVE, dns_port);
  } else if (!etcd_url.empty()) {
    say("    {} --etcd {} {}", QORB_DEMO_QORB_RESOLVE, etcd_url, etcd_prefix);
  }
#else
  static_cast<void>(dns_port);
  static_cast<void>(etcd_url);
#endif
  if (stats) {
    const auto at = qorb::to_string(*stats);
#ifdef QORB_DEMO_QTOP
    say("    {} ws://{}/qtop/stats", QORB_DEMO_QTOP, at);
#endif
    say("    curl -s http://{}/stats", at);
  }
}

// Claims per backend so far, twice a second, for the timeline picture: only
// the backends in service (listed and online), so that the picture draws
// no line for a backend outside its service time.
void sample_timeline(demo::timeline& timeline, examples::echo_workload& workload,
                     steady_clock::time_point start, steady_clock::time_point now) {
  static thread_local steady_clock::time_point last{};
  if (now - last < 500ms) return;
  last = now;
  std::map<std::string, unsigned long long> claims;
  for (const auto& [name, b] : workload.snapshot().backends) {
    if (b.listed && b.pool.online) claims[name] = b.claims;
  }
  timeline.sample(seconds(start, now), claims);
}

// Draws the timeline into the scratch directory and copies it to `to`.
void plot_timeline(const demo::timeline& timeline, const story& st,
                   const std::vector<std::string>& headlines, const std::string& scratch,
                   const std::string& to, const std::string& title) {
  demo::timeline marked = timeline;
  for (const auto& line : headlines) marked.caption(line);
  if (st.killed) marked.mark(seconds(st.start, *st.killed), "kill echo002");
  if (st.dns_changed)
    marked.mark(seconds(st.start, *st.dns_changed),
                st.etcd ? "echo004 registers" : "DNS change: +echo004");
  if (st.stopped_clean) marked.mark(seconds(st.start, *st.stopped_clean), "stop echo003");
  const auto drawn = scratch + "/qorb-demo.svg";
  if (const auto why = marked.write_svg(scratch, drawn, title); !why.empty()) {
    say("no timeline picture: {}", why);
    return;
  }
  std::error_code ec;
  std::filesystem::copy_file(drawn, to, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) {
    say("no timeline picture: copying it to {}: {}", to, ec.message());
    return;
  }
  say("timeline picture (claims/s per backend, the kill and the DNS change marked): {}", to);
}

int run(const options& o, bool interactive) {
  scratch_dir dir;
  story st;
  st.etcd = o.etcd;
  std::vector<echo_process> echo;
  std::optional<knot_dns> dns;
#if QORB_DEMO_ETCD
  std::optional<demo::etcd_store> etcd;
  if (o.etcd) {
    say("qorb demo: 4 TCP echo servers and etcd on loopback; 3 register themselves at the start");
    etcd.emplace(dir.path());
    say("  started etcd (pid {}) on {}", etcd->pid(), etcd->url());
    for (const char* host : {"echo001", "echo002", "echo003"}) {
      echo.push_back(start_echo_server(host, etcd->url()));
      say("  started tcp_echo_server {} (pid {}) on 127.0.0.1:{}, registered under {} (lease TTL "
          "{} s)",
          host, echo.back().process->pid(), echo.back().port, etcd_prefix, etcd_ttl_s);
    }
    echo.push_back(echo_process{"echo004", 0, nullptr});  // starts at two thirds
  }
#endif
  if (!o.etcd) {
    say("qorb demo: 4 TCP echo servers and Knot DNS on loopback; a pool finds 3 of them in DNS");
    for (const char* host : {"echo001", "echo002", "echo003", "echo004"}) {
      echo.push_back(start_echo_server(host));
      say("  started tcp_echo_server {} (pid {}) on 127.0.0.1:{}", host, echo.back().process->pid(),
          echo.back().port);
    }
    dns.emplace(dir.path(),
                std::vector<std::pair<std::string, unsigned short>>{{echo[0].host, echo[0].port},
                                                                    {echo[1].host, echo[1].port},
                                                                    {echo[2].host, echo[2].port}});
    say("  started knotd (pid {}) on 127.0.0.1:{}: _echo._tcp.test.com. names echo001-echo003",
        dns->pid(), dns->port());
  }
  say("  scratch directory (removed at the end): {}", dir.path());

  const auto duration = ms(static_cast<long>(o.duration_s * 1000));
  examples::workload_config wc;
  if (dns) wc.dns_servers.emplace_back(asio::ip::make_address("127.0.0.1"), dns->port());
#if QORB_DEMO_ETCD
  if (etcd) {
    std::string error;
    qorb::etcd_resolver_config rc;
    rc.endpoints = qorb::parse_etcd_url(etcd->url(), error)->endpoints;
    rc.prefix = etcd_prefix;
    rc.logger = nullptr;
    auto resolver = std::make_shared<qorb::etcd_resolver>(rc);
    wc.resolver = resolver;
    // A weak pointer: the workload's copy of this function outlives the
    // io_context the resolver runs on, the resolver must not.
    wc.describe_resolver = [weak = std::weak_ptr<qorb::etcd_resolver>(resolver)]() -> std::string {
      const auto r = weak.lock();
      if (!r) return "etcd: stopped";
      const auto s = r->stats();
      return fmt::format("etcd: {} reads, {} events, revision {}, {}", s.reads, s.events,
                         s.revision, s.watching ? "watching" : "not watching: " + s.last_error);
    };
  }
#endif
  wc.dns_interval = 1s;
  wc.claimers = o.claimers;
  wc.hold = ms(o.hold_ms);
  wc.pause = 0ms;
  wc.stats_addr = o.stats_addr;
#if QORB_DEMO_STATS
  // Always served (a free port unless --stats-addr), so that the lines to
  // paste below can watch the demo.
  if (!wc.stats_addr)
    wc.stats_addr = asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0);
#endif
  wc.policy.set_config.health_interval = 1s;
  // The pool's log goes only to a sink that stamps its backends' online and
  // offline lines (the summary's "kill -> offline" figure); nothing printed.
  std::tie(wc.logger, st.pool_said) = examples::backend_state_log::make("echo");
  examples::echo_workload workload(wc);
  wc.resolver.reset();  // the workload holds it now, and drops it before its io_context
  st.start = workload.started();
  std::string title =
      o.etcd ? fmt::format(
                   "qorb demo: {} claimers over etcd {} ({:.0f} s: kill at {:.0f} s, registration "
                   "at {:.0f} s, clean stop at {:.0f} s)",
                   o.claimers, etcd_prefix, o.duration_s, o.duration_s / 3, o.duration_s * 2 / 3,
                   o.duration_s * 5 / 6)
             : fmt::format(
                   "qorb demo: {} claimers over _echo._tcp.test.com. ({:.0f} s: kill at {:.0f} s, "
                   "DNS change at {:.0f} s)",
                   o.claimers, o.duration_s, o.duration_s / 3, o.duration_s * 2 / 3);
  if (const auto at = workload.stats_endpoint()) {
    say("  stats: http://{0}/stats and /metrics", qorb::to_string(*at));
  }
  print_commands(workload.stats_endpoint(), dns ? dns->port() : 0,
#if QORB_DEMO_ETCD
                 etcd ? etcd->url() : std::string()
#else
                 std::string()
#endif
  );
  int status = 0;
  demo::timeline timeline;
  {
    examples::workload_view view(workload, {title, interactive});
    bool quit = false;
    for (;;) {
      const auto now = steady_clock::now();
      if (interrupted != 0 || now - st.start >= duration) break;
      sample_timeline(timeline, workload, st.start, now);
      if (!st.killed && now - st.start >= duration / 3) {
        st.killed = steady_clock::now();  // before the kill: the figure is an upper bound
        echo[1].process->signal(SIGKILL);
        workload.note(fmt::format("STORY: killed echo002 (pid {}, 127.0.0.1:{}) with SIGKILL",
                                  echo[1].process->pid(), echo[1].port));
      }
#if QORB_DEMO_ETCD
      if (etcd && st.killed && !st.dns_attempted && now - st.start >= duration * 2 / 3) {
        st.dns_attempted = true;
        try {
          steady_clock::time_point listening;
          steady_clock::time_point registered;
          echo[3] = start_echo_server("echo004", etcd->url(), &listening, &registered);
          st.dns_changed = listening;  // its registration starts as it listens
          st.registered = registered;
          workload.note(
              fmt::format("STORY: started echo004 (pid {}, 127.0.0.1:{}); it registered in etcd",
                          echo[3].process->pid(), echo[3].port));
        } catch (const std::exception& e) {
          st.failure = e.what();
          workload.note(std::string("STORY: starting echo004 failed: ") + e.what());
        }
      }
      if (etcd && st.dns_changed && !st.stopped_clean && now - st.start >= duration * 5 / 6) {
        st.stopped_clean = steady_clock::now();
        echo[2].process->signal(SIGTERM);
        workload.note(fmt::format("STORY: stopped echo003 (pid {}, 127.0.0.1:{}) with SIGTERM",
                                  echo[2].process->pid(), echo[2].port));
      }
#endif
      if (dns && st.killed && !st.dns_attempted && now - st.start >= duration * 2 / 3) {
        st.dns_attempted = true;
        try {
          // Stamped before the change: the resolver may see it before
          // knotc returns, and the figure must not be negative.
          const auto before = steady_clock::now();
          dns->add(
              {fmt::format("echo004.test.com. 5 A 127.0.0.1"),
               fmt::format("_echo._tcp.test.com. 5 SRV 0 0 {} echo004.test.com.", echo[3].port)});
          st.dns_changed = before;
          workload.note(fmt::format(
              "STORY: added echo004 (127.0.0.1:{}) to _echo._tcp.test.com. (knotc zone-commit)",
              echo[3].port));
        } catch (const std::exception& e) {
          st.failure = e.what();
          workload.note(std::string("STORY: the DNS change failed: ") + e.what());
        }
      }
      if (!view.step()) {
        quit = true;
        break;
      }
    }
    view.close();
    if (quit) status = 1;
  }
  workload.stop();
  const auto snapshot = workload.snapshot();

  // Print the story's events (the interactive view showed them on screen).
  if (interactive) {
    for (const auto& e : workload.events())
      say("{}{}", examples::time_label(workload, e.at), e.text);
  }
  std::vector<std::string> headlines;
  auto problems = summarize(snapshot, echo, st, headlines);
  if (!o.plot.empty()) plot_timeline(timeline, st, headlines, dir.path(), o.plot, title);
  if (!st.failure.empty()) problems.push_back("a step failed: " + st.failure);

  // Stop every process, by PID, and say so.
  std::string stopped;
  for (auto& e : echo) {
    if (!e.process) continue;
    e.process->stop();
    stopped += fmt::format(" {}", e.process->pid());
  }
  if (dns) {
    dns->stop();
    stopped += fmt::format(" {}", dns->pid());
  }
#if QORB_DEMO_ETCD
  if (etcd) {
    etcd->stop();
    stopped += fmt::format(" {}", etcd->pid());
  }
#endif
  say("");
  say("stopped processes:{}", stopped);

  if (interrupted != 0) {
    say("result: interrupted before the end");
    return 128 + interrupted;
  }
  if (status != 0 || !st.dns_attempted) {
    say("result: quit before the story ended");
    return 1;
  }
  if (!problems.empty()) {
    for (const auto& p : problems) say("result: FAILED: {}", p);
    return 1;
  }
  say("result: OK: the pool routed around the dead backend and picked up the new one{}",
      o.etcd ? "; etcd dropped the stopped one" : "");
  return 0;
}

}  // namespace

// Whether the --stats-addr port can be listened on, checked before any
// process starts, so that a port in use is the only line the demo prints
// (the stats server still reports it, should another process take the port
// meanwhile).
std::optional<std::string> stats_addr_problem(const asio::ip::tcp::endpoint& at) {
  asio::io_context io;
  asio::ip::tcp::acceptor probe(io);
  boost::system::error_code ec;
  probe.open(at.protocol(), ec);
  if (!ec) probe.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) probe.bind(at, ec);
  if (!ec) probe.listen(asio::socket_base::max_listen_connections, ec);
  if (!ec) return std::nullopt;
  return "cannot serve stats on " + qorb::to_string(at) + ": " + ec.message();
}

int main(int argc, char** argv) {
  const auto o = parse(argc, argv);
  if (o.stats_addr) {
    if (const auto problem = stats_addr_problem(*o.stats_addr)) {
      std::fprintf(stderr, "qorb_demo: %s\n", problem->c_str());
      return 1;
    }
  }
  // The first signal ends the demo in order (its children are stopped, the
  // summary printed); a second one ends it at once (the children still die:
  // they get SIGKILL when the demo dies).
  struct sigaction action {};
  action.sa_handler = on_signal;
  action.sa_flags = SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  for (const int signal : {SIGINT, SIGTERM, SIGHUP}) sigaction(signal, &action, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // `qorb_demo | head` must still clean up
  try {
    return run(o, !o.plain && examples::have_terminal());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qorb_demo: %s\n", e.what());
    return 1;
  }
}
