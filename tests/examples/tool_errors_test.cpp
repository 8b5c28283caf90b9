// SPDX-License-Identifier: BSL-1.0
// Every tool run as a process, as a careless user would: --help prints the
// usage and the exit statuses and exits 0; a bad argument is one line and
// status 2; a port in use is one line and status 1 (never a Boost source
// path or an uncaught exception); SIGINT/SIGTERM end a run at once.
#include "support/wait.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace qorb::test {
namespace {

struct tool {
  std::string name;
  std::string path;
};

std::vector<tool> tools() {
  std::vector<tool> out{{"tcp_echo_server", TCP_ECHO_SERVER_PATH}};
#ifdef QORB_WORKLOAD_PATH
  out.push_back({"tcp_echo_workload", QORB_WORKLOAD_PATH});
#endif
#ifdef QORB_DEMO_PATH
  out.push_back({"qorb_demo", QORB_DEMO_PATH});
#endif
#ifdef QORB_PG_WORKLOAD_PATH
  out.push_back({"pg_workload", QORB_PG_WORKLOAD_PATH});
#endif
#ifdef QORB_HTTP_WORKLOAD_PATH
  out.push_back({"http_workload", QORB_HTTP_WORKLOAD_PATH});
#endif
#ifdef QORB_QTOP_PATH
  out.push_back({"qtop", QORB_QTOP_PATH});
#endif
#ifdef QORB_RESOLVE_PATH
  out.push_back({"qorb-resolve", QORB_RESOLVE_PATH});
#endif
  return out;
}

std::size_t lines_in(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

// What no message for a user may contain.
void expect_no_internals(const std::string& out) {
  EXPECT_EQ(out.find(".hpp"), std::string::npos) << out;
  EXPECT_EQ(out.find("/usr/include"), std::string::npos) << out;
  EXPECT_EQ(out.find("terminate called"), std::string::npos) << out;
  EXPECT_EQ(out.find("what()"), std::string::npos) << out;
}

// A TCP port on loopback held (bound and listening) for the object's life.
class held_port {
 public:
  held_port() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd_ < 0 || ::fcntl(fd_, F_SETFL, O_NONBLOCK) != 0 ||
        ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd_, 4) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
  }
  ~held_port() {
    for (int c : clients_) ::close(c);
    if (fd_ >= 0) ::close(fd_);
  }
  held_port(const held_port&) = delete;
  held_port& operator=(const held_port&) = delete;
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  unsigned short port() const { return port_; }
  /// Whether a client has connected (takes it off the backlog; it stays
  /// open, never answered, until the object dies).
  bool client_connected() {
    const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0) return false;
    clients_.push_back(c);
    return true;
  }

 private:
  int fd_ = -1;
  unsigned short port_ = 0;
  std::vector<int> clients_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(ToolErrors, EveryToolsHelpPrintsUsageAndExitStatusesAndExitsZero) {
  for (const auto& t : tools()) {
    for (const char* flag : {"--help", "-h"}) {
      std::string out;
      EXPECT_EQ(run_command({t.path, flag}, &out, 30s), 0) << t.name << " " << flag << ": " << out;
      EXPECT_NE(out.find("usage: " + t.name), std::string::npos) << t.name << ": " << out;
      EXPECT_NE(out.find("xit status"), std::string::npos) << t.name << " documents none: " << out;
      EXPECT_EQ(out.find("unknown"), std::string::npos) << t.name << ": " << out;
    }
  }
}

TEST(ToolErrors, AnUnknownOptionIsOneClearLineThenTheUsageAndStatusTwo) {
  for (const auto& t : tools()) {
    std::string out;
    EXPECT_EQ(run_command({t.path, "--no-such-option"}, &out, 30s), 2) << t.name << ": " << out;
    EXPECT_EQ(out.rfind(t.name + ": ", 0), 0u) << t.name << ": " << out;
    EXPECT_NE(out.find("--no-such-option"), std::string::npos) << t.name << ": " << out;
    expect_no_internals(out);
  }
}

#ifdef QORB_PG_WORKLOAD_PATH
TEST(ToolErrors, PgWorkloadMaxSlotsZeroIsOneClearLineAndStatusTwo) {
  std::string out;
  EXPECT_EQ(run_command({QORB_PG_WORKLOAD_PATH, "--backend", "127.0.0.1:1", "--max-slots", "0"},
                        &out, 30s),
            2)
      << out;
  EXPECT_EQ(out.rfind("pg_workload: --max-slots must be a number from 1 to 100000, not '0'\n", 0),
            0u)
      << out;
  expect_no_internals(out);
}
#endif

// A numeric option with a value it cannot take, each run as a process.
struct numeric_option {
  std::string tool;
  std::vector<std::string> argv;  // the tool and what it needs besides the option
  std::string option;
  std::vector<std::string> bad;  // besides every option's nan, inf, -1 and overflows
  std::string value_prefix;      // what goes before the value (e.g. "127.0.0.1:")
  std::string value_suffix;      // and after it (e.g. ",1,1" for --mix)
};

std::vector<numeric_option> numeric_options() {
  std::vector<numeric_option> out;
  const auto add = [&](std::string tool, std::vector<std::string> argv, std::string option,
                       std::vector<std::string> bad, std::string prefix = "",
                       std::string suffix = "") {
    out.push_back({std::move(tool), std::move(argv), std::move(option), std::move(bad),
                   std::move(prefix), std::move(suffix)});
  };
  add("tcp_echo_server", {TCP_ECHO_SERVER_PATH, "--register", "http://127.0.0.1:1/p/"}, "--ttl",
      {"0"});
  // The port of ADDR:PORT, the one positional number.
  add("tcp_echo_server", {TCP_ECHO_SERVER_PATH}, "", {"65536"}, "127.0.0.1:");
#ifdef QORB_WORKLOAD_PATH
  for (const char* o : {"--claimers", "--hold", "--pause", "--dns-interval"}) {
    add("tcp_echo_workload", {QORB_WORKLOAD_PATH, "--plain"}, o, {});
  }
  add("tcp_echo_workload", {QORB_WORKLOAD_PATH, "--plain"}, "--duration", {"0"});
#endif
#ifdef QORB_DEMO_PATH
  for (const char* o : {"--claimers", "--hold"}) {
    add("qorb_demo", {QORB_DEMO_PATH, "--plain", "--no-plot"}, o, {});
  }
  add("qorb_demo", {QORB_DEMO_PATH, "--plain", "--no-plot"}, "--duration", {"0"});
#endif
#ifdef QORB_HTTP_WORKLOAD_PATH
  for (const char* o : {"--claimers", "--threads", "--max-slots", "--duration"}) {
    add("http_workload", {QORB_HTTP_WORKLOAD_PATH, "--backend", "127.0.0.1:1"}, o, {"0", "1e9"});
  }
#endif
#ifdef QORB_PG_WORKLOAD_PATH
  for (const char* o :
       {"--duration", "--concurrency", "--threads", "--max-slots", "--rows", "--spares"}) {
    add("pg_workload", {QORB_PG_WORKLOAD_PATH, "--backend", "127.0.0.1:1"}, o,
        {"1e9", "2147483648"});
  }
  // Each of --mix's three weights: the first and the last.
  add("pg_workload", {QORB_PG_WORKLOAD_PATH, "--backend", "127.0.0.1:1"}, "--mix", {"1e9"}, "",
      ",1,1");
  add("pg_workload", {QORB_PG_WORKLOAD_PATH, "--backend", "127.0.0.1:1"}, "--mix", {"1e9"}, "1,1,",
      "");
#endif
#ifdef QORB_RESOLVE_PATH
  for (const char* o : {"--timeout", "--interval"}) {
    add("qorb-resolve", {QORB_RESOLVE_PATH, "_echo._tcp.test.com"}, o, {"0"});
  }
  add("qorb-resolve", {QORB_RESOLVE_PATH, "--etcd", "http://127.0.0.1:1", "/p/"}, "--timeout",
      {"0"});
#endif
#ifdef QORB_QTOP_PATH
  add("qtop", {QORB_QTOP_PATH, "--once", "http://127.0.0.1:1"}, "--interval", {"0"});
#endif
  return out;
}

// `http_workload --duration nan` was accepted (and ran for as long as NaN
// made its end); pg_workload's bad numbers did not say which option.
TEST(ToolErrors, EveryNumericOptionRejectsNanInfNegativeAndOverflowInOneLineNamingIt) {
  for (const auto& n : numeric_options()) {
    auto values = n.bad;
    for (const char* v : {"nan", "inf", "-inf", "-1", "1e400", "99999999999999999999999"}) {
      values.push_back(v);
    }
    for (const auto& v : values) {
      auto argv = n.argv;
      if (!n.option.empty()) argv.push_back(n.option);
      argv.push_back(n.value_prefix + v + n.value_suffix);
      const auto what = n.tool + " " + n.option + " " + argv.back();
      std::string out;
      // Bounded: a value taken by mistake must not run the tool for long.
      EXPECT_EQ(run_command(argv, &out, 10s), 2) << what << ": " << out;
      const auto first_line = out.substr(0, out.find('\n'));
      EXPECT_EQ(first_line.rfind(n.tool + ": ", 0), 0u) << what << ": " << out;
      EXPECT_NE(first_line.find(n.option.empty() ? std::string("port") : n.option),
                std::string::npos)
          << what << ": " << out;
      expect_no_internals(out);
    }
  }
}

// `tcp_echo_server --ttl 5` without --register ran, the TTL silently unused.
TEST(ToolErrors, TcpEchoServerTtlWithoutRegisterIsOneLineNamingBothAndStatusTwo) {
  std::string out;
  EXPECT_EQ(run_command({TCP_ECHO_SERVER_PATH, "--ttl", "5", "127.0.0.1:0"}, &out, 10s), 2) << out;
  const auto first_line = out.substr(0, out.find('\n'));
  EXPECT_EQ(first_line.rfind("tcp_echo_server: ", 0), 0u) << out;
  EXPECT_NE(first_line.find("--ttl"), std::string::npos) << out;
  EXPECT_NE(first_line.find("--register"), std::string::npos) << out;
  EXPECT_EQ(out.find("listening on 127.0.0.1:"), std::string::npos) << "it ran: " << out;
}

// Runs `argv` to its end and returns its exit code, output and wall time.
struct timed_run {
  int status = -1;
  std::chrono::milliseconds took{};
  std::string output;
};

[[maybe_unused]] timed_run run_timed(const std::vector<std::string>& argv,
                                     std::chrono::milliseconds limit) {
  timed_run r;
  const auto start = std::chrono::steady_clock::now();
  r.status = run_command(argv, &r.output, limit);
  r.took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start);
  return r;
}

// The run's end as a number of seconds from its summary ("... in 1.0 s").
[[maybe_unused]] double summary_seconds(const std::string& out, const std::string& unit) {
  const auto at = out.find(unit + " in ");
  if (at == std::string::npos) return -1;
  return std::strtod(out.c_str() + at + unit.size() + 4, nullptr);
}

#ifdef QORB_HTTP_WORKLOAD_PATH
// A host name where an address belongs is named as one, with what to use
// instead (it said only "is IP:PORT or [IPv6]:PORT").
TEST(ToolErrors, HttpWorkloadNamesAHostNameGivenAsABackend) {
  std::string out;
  EXPECT_EQ(run_command({QORB_HTTP_WORKLOAD_PATH, "--backend", "localhost:8080"}, &out, 30s), 2)
      << out;
  EXPECT_NE(out.find("--backend: \"localhost:8080\" is a host name; the fixed resolver takes "
                     "addresses: use qorb::dns_resolver or resolve it first"),
            std::string::npos)
      << out;
}

// `--duration 1` against a backend that refuses every connection lasted the
// duration plus the 10 s claim timeout: the claims waiting at the end held it.
TEST(ToolErrors, HttpWorkloadEndsAtItsDurationWithNoBackendOnline) {
  const auto port = std::to_string(free_port());  // nobody listens there
  const auto r = run_timed(
      {QORB_HTTP_WORKLOAD_PATH, "--backend", "127.0.0.1:" + port, "--duration", "1"}, 30s);
  EXPECT_EQ(r.status, 1) << "no request succeeded: " << r.output;
  EXPECT_GE(r.took, 1s) << r.output;
  EXPECT_LT(r.took, 2500ms) << "not the claim timeout: " << r.output;
  const auto ran = summary_seconds(r.output, "requests");
  EXPECT_GE(ran, 1.0) << r.output;
  EXPECT_LT(ran, 1.5) << r.output;
  // Cut by the end, told apart from errors, with the pool's reason.
  EXPECT_NE(r.output.find(" 0 errors\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("claims still waiting at the end x8: "), std::string::npos) << r.output;
}

// The same with requests that hang on a backend that never answers: they
// had their 10 s request timeout past the end; now a second.
TEST(ToolErrors, HttpWorkloadEndsAtItsDurationWhileRequestsHang) {
  held_port silent;
  ASSERT_NE(silent.port(), 0);
  std::atomic<bool> done{false};
  // Takes the connections off the backlog while the run lasts (bounded).
  std::thread taker([&] {
    const auto until = std::chrono::steady_clock::now() + 30s;
    while (!done && std::chrono::steady_clock::now() < until) {
      if (!silent.client_connected()) std::this_thread::sleep_for(5ms);
    }
  });
  const auto r =
      run_timed({QORB_HTTP_WORKLOAD_PATH, "--backend", silent.address(), "--duration", "1"}, 30s);
  done = true;
  taker.join();
  EXPECT_EQ(r.status, 1) << "no request succeeded: " << r.output;
  EXPECT_GE(r.took, 1s) << r.output;
  // The duration, then one second for the requests under way.
  EXPECT_LT(r.took, 3500ms) << "not the request timeout: " << r.output;
  EXPECT_TRUE(std::regex_search(
      r.output,
      std::regex("\n  requests still under way at the end x[1-8]: dropped after one second\n")))
      << r.output;
}
#endif

#ifdef QORB_PG_WORKLOAD_PATH
// pg_workload the same: --duration 1 with no server lasted 11 s. A
// --max-slots below the default spares is taken (the spares follow it).
TEST(ToolErrors, PgWorkloadEndsAtItsDurationWithNoServerOnline) {
  const auto port = std::to_string(free_port());
  const auto r = run_timed({QORB_PG_WORKLOAD_PATH, "--backend", "127.0.0.1:" + port, "--duration",
                            "1", "--concurrency", "4", "--max-slots", "4"},
                           30s);
  EXPECT_EQ(r.status, 1) << "no operation succeeded: " << r.output;
  EXPECT_GE(r.took, 1s) << r.output;
  EXPECT_LT(r.took, 2500ms) << "not the claim timeout: " << r.output;
  const auto ran = summary_seconds(r.output, "operations");
  EXPECT_GE(ran, 1.0) << r.output;
  EXPECT_LT(ran, 1.5) << r.output;
  EXPECT_NE(r.output.find(" 0 errors\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("claims still waiting at the end x4: "), std::string::npos) << r.output;
}
#endif

// "Port in use" printed a Boost source path (or aborted, status 134).
TEST(ToolErrors, APortInUseIsOneLineNamingItAndStatusOne) {
  held_port busy;
  ASSERT_NE(busy.port(), 0);
  std::vector<std::pair<std::string, std::vector<std::string>>> runs{
      {"tcp_echo_server", {TCP_ECHO_SERVER_PATH, busy.address()}}};
#ifdef QORB_WORKLOAD_PATH
  runs.push_back(
      {"tcp_echo_workload",
       {QORB_WORKLOAD_PATH, "--plain", "--duration", "5", "--stats-addr", busy.address()}});
#endif
#ifdef QORB_DEMO_PATH
  runs.push_back({"qorb_demo",
                  {QORB_DEMO_PATH, "--plain", "--no-plot", "--duration", "6", "--stats-addr",
                   busy.address()}});
#endif
#if defined(QORB_PG_WORKLOAD_PATH) && defined(QORB_TOOLS_SERVE_STATS)
  runs.push_back({"pg_workload",
                  {QORB_PG_WORKLOAD_PATH, "--backend", "127.0.0.1:1", "--duration", "5",
                   "--stats-addr", busy.address()}});
#endif
#if defined(QORB_HTTP_WORKLOAD_PATH) && defined(QORB_TOOLS_SERVE_STATS)
  runs.push_back({"http_workload",
                  {QORB_HTTP_WORKLOAD_PATH, "--backend", "127.0.0.1:1", "--duration", "5",
                   "--stats-addr", busy.address()}});
#endif
  for (const auto& [name, argv] : runs) {
    std::string out;
    EXPECT_EQ(run_command(argv, &out, 60s), 1) << name << ": " << out;
    EXPECT_EQ(lines_in(out), 1u) << name << ": " << out;
    EXPECT_EQ(out.rfind(name + ": ", 0), 0u) << name << ": " << out;
    EXPECT_NE(out.find(busy.address()), std::string::npos) << name << " names the address: " << out;
    EXPECT_NE(out.find("in use"), std::string::npos) << name << ": " << out;
    expect_no_internals(out);
  }
}

// Runs `argv` with its output in a file, waits until `ready(output)` holds,
// sends `signal`, and returns the wait status and how long the exit took.
struct interrupted_run {
  int status = -1;
  std::chrono::milliseconds took{};
  std::string output;
};

[[maybe_unused]] interrupted_run interrupt(const std::vector<std::string>& argv,
                                           const std::function<bool(const std::string&)>& ready,
                                           int signal) {
  temp_dir dir("qorb-tool");
  const std::string log = dir.path() + "/out";
  std::string command = "exec";
  for (const auto& a : argv) command.append(" '").append(a).append("'");
  command.append(" >'").append(log).append("' 2>&1");
  child_process p({"sh", "-c", command});
  interrupted_run r;
  if (!wait_until([&] { return ready(read_file(log)); }, 20s)) {
    r.output = read_file(log);
    return r;
  }
  const auto start = std::chrono::steady_clock::now();
  r.status = p.stop(signal, 10s);
  r.took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start);
  r.output = read_file(log);
  return r;
}

#ifdef QORB_HTTP_WORKLOAD_PATH
// SIGTERM ends an http_workload run at once, with its summary, however long
// --duration was and although every claim waits on an unreachable backend.
TEST(ToolErrors, HttpWorkloadEndsAtOnceOnSigtermWithItsSummary) {
  const auto port = std::to_string(free_port());
  const auto r = interrupt(
      {QORB_HTTP_WORKLOAD_PATH, "--backend", "127.0.0.1:" + port, "--duration", "600"},
      [](const std::string& out) { return out.find(" req/s ") != std::string::npos; }, SIGTERM);
  ASSERT_TRUE(WIFEXITED(r.status)) << "status " << r.status << ": " << r.output;
  EXPECT_EQ(WEXITSTATUS(r.status), 1) << "no request succeeded: " << r.output;
  EXPECT_LT(r.took, 3s) << r.output;
  EXPECT_NE(r.output.find("0 requests in"), std::string::npos) << r.output;
}

// The same while requests are under way on a backend that takes the
// connections and never answers: they get one second, then the run ends.
TEST(ToolErrors, HttpWorkloadEndsOnSigtermWhileRequestsHang) {
  held_port silent;
  ASSERT_NE(silent.port(), 0);
  const auto r = interrupt(
      {QORB_HTTP_WORKLOAD_PATH, "--backend", silent.address(), "--duration", "600"},
      [&](const std::string& out) {
        silent.client_connected();
        // A live line with claimed connections (their requests hang).
        for (auto at = out.find("claimed "); at != std::string::npos;
             at = out.find("claimed ", at + 1)) {
          if (at + 8 < out.size() && out[at + 8] >= '1' && out[at + 8] <= '9') return true;
        }
        return false;
      },
      SIGTERM);
  ASSERT_TRUE(WIFEXITED(r.status)) << "status " << r.status << ": " << r.output;
  EXPECT_EQ(WEXITSTATUS(r.status), 1) << "no request succeeded: " << r.output;
  EXPECT_LT(r.took, 4s) << r.output;
  EXPECT_NE(r.output.find("0 requests in"), std::string::npos) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex("\n  requests still under way at the end "
                                                     "x[1-8]: dropped after one second\n")))
      << r.output;
}
#endif

#ifdef QORB_QTOP_PATH
// qtop --once waiting for updates ends at once on SIGINT, status 130.
TEST(ToolErrors, QtopOnceEndsAtOnceOnSigint) {
  held_port silent;  // takes the connection and never answers
  ASSERT_NE(silent.port(), 0);
  // Connected means its signal handler is in place (it is set first).
  const auto r = interrupt(
      {QORB_QTOP_PATH, "--once", "--interval", "30", "http://" + silent.address()},
      [&](const std::string&) { return silent.client_connected(); }, SIGINT);
  ASSERT_TRUE(WIFEXITED(r.status)) << "status " << r.status << ": " << r.output;
  EXPECT_EQ(WEXITSTATUS(r.status), 130) << r.output;
  EXPECT_LT(r.took, 3s) << r.output;
  EXPECT_NE(r.output.find("qtop: interrupted"), std::string::npos) << r.output;
}
#endif

}  // namespace
}  // namespace qorb::test
