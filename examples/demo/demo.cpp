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
#include <qorb/backend.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>

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
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/command_line.hpp"
#include "common/echo_workload.hpp"
#include "common/workload_view.hpp"
#include "processes.hpp"
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

// Prints a line at once (the output may be a pipe read by a test).
template <class... Args>
void say(fmt::format_string<Args...> format, Args&&... args) {
  std::fputs(fmt::format(format, std::forward<Args>(args)...).c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

// A directory of the demo's own, removed at the end.
class scratch_dir {
 public:
  scratch_dir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "qorb-demo-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~scratch_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct echo_process {
  std::string host;  // echo001, ...
  unsigned short port = 0;
  std::unique_ptr<demo::child> process;
};

// The etcd story: the servers' key prefix and lease TTL.
constexpr const char* etcd_prefix = "/services/echo/";
constexpr int etcd_ttl_s = 3;

// With `register_at` (an etcd client URL) the server registers itself under
// etcd_prefix; `listening` is when it said it listens (its registration
// starts then), and the call returns once it said `registered`.
echo_process start_echo_server(const std::string& host, const std::string& register_at = "",
                               steady_clock::time_point* listening = nullptr,
                               steady_clock::time_point* registered = nullptr) {
  std::vector<std::string> argv{QORB_DEMO_ECHO_SERVER, "127.0.0.1:0"};
  if (!register_at.empty()) {
    argv = {QORB_DEMO_ECHO_SERVER,      "--register", register_at + etcd_prefix, "--ttl",
            std::to_string(etcd_ttl_s), "127.0.0.1:0"};
  }
  echo_process e{host, 0, std::make_unique<demo::child>(argv, true)};
  const auto line = e.process->read_line(5s);
  const std::string prefix = "listening on ";
  const auto at = line && line->starts_with(prefix)
                      ? qorb::parse_endpoint(line->substr(prefix.size()))
                      : std::nullopt;
  if (!at)
    throw std::runtime_error("tcp_echo_server did not start (" + line.value_or("no output") + ")");
  e.port = at->port();
  if (listening) *listening = steady_clock::now();
  if (!register_at.empty()) {
    const auto reg = e.process->read_line(10s);
    if (!reg || !reg->starts_with("registered "))
      throw std::runtime_error("tcp_echo_server did not register (" + reg.value_or("no output") +
                               ")");
    if (registered) *registered = steady_clock::now();
  }
  return e;
}

// Knot DNS on 127.0.0.1, serving test.com from the demo's directory, edited
// live with knotc.
class knot_dns {
 public:
  /// Serves an SRV record (and an A record) for each (host, port).
  knot_dns(const std::string& dir,
           const std::vector<std::pair<std::string, unsigned short>>& served)
      : dir_(dir) {
    std::filesystem::create_directories(dir_ + "/db");
    {
      std::ofstream zone(dir_ + "/test.com.zone");
      zone << "$ORIGIN test.com.\n"
           << "@ 3600 IN SOA ns1 admin 1 3600 600 86400 5\n"
           << "@ 3600 IN NS ns1\n"
           << "ns1 3600 IN A 127.0.0.1\n";
      for (const auto& [host, port] : served) {
        zone << host << " 5 IN A 127.0.0.1\n"
             << "_echo._tcp 5 IN SRV 0 0 " << port << " " << host << "\n";
      }
    }
    // A free port can be taken by someone else before knotd binds it: retry.
    for (int attempt = 0; attempt < 5 && !process_; ++attempt) {
      port_ = free_udp_port();
      std::ofstream(dir_ + "/knot.conf")
          << "server:\n    rundir: \"" << dir_ << "\"\n"
          << "    listen: 127.0.0.1@" << port_ << "\n"
          << "log:\n  - target: stderr\n    any: warning\n"
          << "database:\n    storage: \"" << dir_ << "/db\"\n"
          << "control:\n    listen: \"" << dir_ << "/knot.sock\"\n"
          << "zone:\n  - domain: test.com\n    storage: \"" << dir_ << "\"\n"
          << "    file: \"test.com.zone\"\n    zonefile-sync: -1\n"
          << "    zonefile-load: difference-no-serial\n    journal-content: all\n";
      process_ = std::make_unique<demo::child>(
          std::vector<std::string>{"knotd", "-c", dir_ + "/knot.conf"}, false, dir_ + "/knot.log");
      if (!answers()) process_.reset();  // stopped by its destructor
    }
    if (!process_) {
      throw std::runtime_error("knotd did not start; its log:\n" + read_file(dir_ + "/knot.log"));
    }
  }

  unsigned short port() const { return port_; }
  pid_t pid() const { return process_->pid(); }
  void stop() { process_->stop(); }

  /// One atomic change of the zone; throws with knotc's words on failure.
  void add(const std::vector<std::string>& records) {
    knotc({"zone-begin", "test.com"});
    try {
      for (const auto& r : records) {
        std::vector<std::string> args{"zone-set", "test.com"};
        std::istringstream words(r);
        for (std::string w; words >> w;) args.push_back(w);
        knotc(args);
      }
      knotc({"zone-commit", "test.com"});
    } catch (...) {
      std::string ignored;
      demo::run({"knotc", "-s", dir_ + "/knot.sock", "zone-abort", "test.com"}, ignored);
      throw;
    }
  }

 private:
  static unsigned short free_udp_port() {
    asio::io_context io;
    asio::ip::udp::socket s(io, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return s.local_endpoint().port();
  }

  static std::string read_file(const std::string& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  // Whether knotd answers for the zone, within 5 s.
  bool answers() {
    const auto deadline = steady_clock::now() + 5s;
    while (steady_clock::now() < deadline && process_->running()) {
      std::string out;
      if (demo::run({"kdig", "@127.0.0.1", "-p", std::to_string(port_), "+short", "+timeout=1",
                     "+retry=0", "SOA", "test.com."},
                    out, 3s) == 0 &&
          out.find("test.com") != std::string::npos) {
        return true;
      }
      ::usleep(50'000);  // knotd loads the zone in a few ms; ask again shortly
    }
    return false;
  }

  void knotc(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"knotc", "-s", dir_ + "/knot.sock"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string out;
    if (demo::run(argv, out) != 0) throw std::runtime_error("knotc " + args.front() + ": " + out);
  }

  std::string dir_;
  unsigned short port_ = 0;
  std::unique_ptr<demo::child> process_;
};

double seconds(steady_clock::time_point from, steady_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

long long millis(steady_clock::time_point from, steady_clock::time_point to) {
  return std::chrono::duration_cast<ms>(to - from).count();
}

// The backend the workload knows under `host`, if it saw it.
const qorb::examples::backend_record* find_backend(const examples::workload_snapshot& s,
                                                   const echo_process& e, std::string* name) {
  if (e.port == 0) return nullptr;  // not started
  const auto address = "127.0.0.1:" + std::to_string(e.port);
  const auto suffix = "@" + address;
  for (const auto& [n, b] : s.backends) {
    // DNS names it after its host (echo001.test.com@...), etcd after its key.
    if ((n.starts_with(e.host + ".") || n.starts_with(address + "@")) && n.ends_with(suffix)) {
      *name = n;
      return &b;
    }
  }
  return nullptr;
}

struct story {
  steady_clock::time_point start;
  std::optional<steady_clock::time_point> killed, dns_changed;
  bool dns_attempted = false;
  bool etcd = false;  // dns_changed is then when echo004 started registering
  std::optional<steady_clock::time_point> stopped_clean;  // etcd: echo003's SIGTERM
  std::optional<steady_clock::time_point> registered;     // etcd: echo004 said `registered`
  std::string failure;                                    // why a step could not be done
};

// Prints the table and the figures; returns the reasons the story did not
// happen (empty: it did).
std::vector<std::string> summarize(const examples::workload_snapshot& s,
                                   const std::vector<echo_process>& echo, const story& st,
                                   std::vector<std::string>& headlines) {
  // A figure's line, and its details one per line under it: every line fits
  // 100 columns.
  const auto figure = [&](std::string_view label, long millis_value, const std::string& details) {
    std::string line = fmt::format("{:<48} {:>6} ms", label, millis_value);
    say("{}", line);
    headlines.push_back(std::move(line));
    std::string_view rest = details;
    while (!rest.empty()) {
      const auto end = rest.find("; ");
      say("      {}", rest.substr(0, end));
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 2);
    }
  };
  const auto t = [&](steady_clock::time_point at) {
    return fmt::format("{:.2f}", seconds(st.start, at));
  };
  say("");
  say("=== Summary: {:.1f} s, {} backends seen, {} claims served, {} failed on a broken "
      "connection,",
      seconds(st.start, s.taken), s.backends.size(), s.ok, s.server_failures);
  say("    {} claims failed", s.claim_failures);
  // Times are seconds since the start; CLAIMS is the first and last claim.
  say("{:<34} {:>6} {:>6} {:>6} {:>7} {:>12}  {}", "BACKEND", "SERVED", "FAILED", "ADDED",
      "REMOVED", "CLAIMS", "WHAT (t in s)");
  std::vector<std::string> problems;
  if (s.ok == 0) problems.push_back("no claim was served");
  for (std::size_t i = 0; i < echo.size(); ++i) {
    std::string name;
    const auto* b = find_backend(s, echo[i], &name);
    if (b == nullptr) {
      say("{:<34} {:>6} {:>6} {:>6} {:>7} {:>12}  {}",
          echo[i].host + " (127.0.0.1:" + std::to_string(echo[i].port) + ")", 0, 0, "-", "-", "-",
          i == 3 ? "never seen by the pool" : "never seen by the pool (!)");
      if (i == 3 && st.dns_changed)
        problems.push_back(st.etcd ? "the pool never found the backend that registered"
                                   : "the pool never found the backend added to DNS");
      if (i < 3) problems.push_back(echo[i].host + " was never seen by the pool");
      continue;
    }
    const std::string added = b->listed_at ? t(*b->listed_at) : "-";
    std::optional<steady_clock::time_point> removed;
    if (!b->listed)
      removed = b->unlisted_at;
    else if (!b->pool.online)
      removed = b->offline_at;
    std::string what;
    if (i == 1) {
      what = st.killed ? "killed t=" + t(*st.killed) : "to be killed (not reached)";
    } else if (i == 3) {
      const std::string how = st.etcd ? "registered" : "added to DNS";
      what = st.dns_changed ? how + " t=" + t(*st.dns_changed) : "to be " + how + " (not reached)";
    } else if (i == 2 && st.etcd) {
      what = st.stopped_clean ? "stopped t=" + t(*st.stopped_clean) : "to be stopped (not reached)";
    } else {
      what = "in service throughout";
    }
    std::string claims = "-";
    if (b->first_ok) {
      claims = t(*b->first_ok);
      claims += '-';
      claims += b->last_claim ? t(*b->last_claim) : std::string("?");
    }
    // The story needs the servers in DNS from the start to serve: the one
    // to be killed before its kill (else routing around it proves nothing).
    if (i < 3 && !b->first_ok) {
      problems.push_back(echo[i].host + " never served a claim");
    } else if (i == 1 && st.killed && *b->first_ok >= *st.killed) {
      problems.push_back("echo002 served no claim before it was killed");
    }
    say("{:<34.34} {:>6} {:>6} {:>6} {:>7} {:>12}  {}", name, b->ok, b->server_failures, added,
        removed ? t(*removed) : "-", claims, what);
  }
  say("");

  // Figure 1: from the kill until no claim went to the dead backend.
  if (st.killed) {
    std::string name;
    const auto* dead = find_backend(s, echo[1], &name);
    const auto kill = *st.killed;
    const bool after = dead != nullptr && dead->last_claim && *dead->last_claim > kill;
    const auto last = after ? millis(kill, *dead->last_claim) : 0;
    std::string detail = after ? fmt::format("its last claim at t={}", t(*dead->last_claim))
                               : "no claim went to it after the kill";
    if (dead != nullptr) {
      detail += fmt::format("; {} claims met its closed connections", dead->server_failures);
      if (dead->offline_at && *dead->offline_at > kill) {
        detail += fmt::format("; the pool marked it offline after {} ms",
                              millis(kill, *dead->offline_at));
      }
    }
    figure("kill -> no more claims to the dead backend:", last, detail);
    const auto deadline = st.dns_changed ? *st.dns_changed : s.taken;
    if (after && *dead->last_claim >= deadline) {
      problems.push_back(
          "the dead backend kept getting claims (the last at t=" + t(*dead->last_claim) + ")");
    }
    if (st.etcd && dead != nullptr) {
      if (!dead->listed && dead->unlisted_at) {
        say("kill -> the dead backend left the set:        {:>6} ms   (its lease expired; TTL {} "
            "s)",
            millis(kill, *dead->unlisted_at), etcd_ttl_s);
      } else {
        say("kill -> the dead backend left the set:         never");
        problems.push_back("the killed backend stayed registered");
      }
    }
  }
  // Figure 2: from the DNS change until the new backend served a claim.
  if (st.dns_changed) {
    std::string name;
    const auto* fresh = find_backend(s, echo[3], &name);
    const char* label = st.etcd ? "registration -> the new backend served a claim:"
                                : "DNS change -> the new backend served a claim:";
    if (fresh != nullptr && fresh->first_ok) {
      std::string detail = "the resolver asks DNS every second; the pool listed it after ";
      if (st.etcd) {
        // Appended: GCC 12 -O3 misjudges "literal" + a temporary string.
        detail = "from the start of its registration (lease grant and put, done after ";
        detail.append(st.registered ? std::to_string(millis(*st.dns_changed, *st.registered))
                                    : std::string("?"));
        detail.append(" ms); etcd's watch pushed it; the pool listed it after ");
      }
      detail += fresh->listed_at
                    ? std::to_string(millis(*st.dns_changed, *fresh->listed_at)) + " ms"
                    : std::string("?");
      figure(label, millis(*st.dns_changed, *fresh->first_ok), detail);
    } else {
      say("{}  never", label);
      if (fresh != nullptr) problems.push_back("the new backend never served a claim");
    }
  }
  // etcd, figure 3: from the clean stop until the pool's set lost it.
  if (st.etcd && st.stopped_clean) {
    std::string name;
    const auto* gone = find_backend(s, echo[2], &name);
    if (gone != nullptr && !gone->listed && gone->unlisted_at) {
      say("clean stop -> the backend left the set:       {:>6} ms   (its lease revoked at once)",
          millis(*st.stopped_clean, *gone->unlisted_at));
    } else {
      say("clean stop -> the backend left the set:        never");
      problems.push_back("the cleanly stopped backend stayed registered");
    }
  }
  return problems;
}

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
