// SPDX-License-Identifier: BSL-1.0
// tcp_echo_workload: a qorb pool over the TCP echo servers that the DNS
// names `_echo._tcp.test.com.`, and claimers that claim a connection, write
// "hello", hold the claim, read the echo back and count successes, server
// failures and claim failures. The pool's TCP connector health-checks a
// connection by writing a byte and reading its echo.
//
// With a terminal it shows a live view (Tab adds a claimer, Shift-Tab
// removes one, Up/Down select, Left/Right change the hold time, q quits);
// without one, or with --plain, it prints a table every second.
//
//   tcp_echo_workload                                # DNS at [::1]:1234
//   tcp_echo_workload --bootstrap=127.0.0.1:5353 --stats-addr 127.0.0.1:42069
#include "common/command_line.hpp"
#include "common/echo_workload.hpp"
#include "common/workload_view.hpp"

#include <qorb/backend.hpp>
#include <qorb/resolvers/dns.hpp>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>

#include <signal.h>
#include <atomic>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

namespace {

using namespace std::chrono_literals;
namespace examples = qorb::examples;

constexpr const char* usage_text =
    "usage: tcp_echo_workload [--bootstrap=IP:PORT]... [--service NAME] [--claimers N]\n"
    "                         [--hold MS] [--pause MS] [--dns-interval S] [--duration S]\n"
    "                         [--stats-addr IP:PORT] [--plain] [--log FILE]\n"
    "\n"
    "  --bootstrap=IP:PORT   a DNS server to ask (repeatable; default [::1]:1234)\n"
    "  --service NAME        the SRV name (default _echo._tcp.test.com.)\n"
    "  --claimers N          claimers at the start (default 4; Tab adds more)\n"
    "  --hold MS             how long each claim is held (default 100)\n"
    "  --pause MS            pause between a claimer's claims (default 100)\n"
    "  --dns-interval S      how often DNS is asked again, whole seconds (default 5)\n"
    "  --duration S          stop after S seconds (0.1 to 1000000; default: run\n"
    "                        until q or Ctrl-C)\n"
    "  --stats-addr IP:PORT  serve /stats, /metrics and qtop's ws://IP:PORT/qtop/stats\n"
    "  --plain               print text lines, no interactive view (the default\n"
    "                        without a terminal)\n"
    "  --log FILE            write the pool's and resolver's log to FILE\n"
    "\n"
    "exit status: 0 after --duration, q or a signal; 1 when it cannot start (e.g.\n"
    "the --stats-addr port is in use, or the --log file cannot be opened), with a\n"
    "one-line message on stderr; 2 for a bad command line\n";

struct options {
  examples::workload_config workload;
  std::optional<double> duration_s;
  bool plain = false;
  std::string log_file;
};

options parse(int argc, char** argv) {
  options o;
  examples::command_line args(argc, argv, "tcp_echo_workload", usage_text);
  while (args.next()) {
    const auto arg = args.name();
    if (arg == "--bootstrap") {
      const auto server = qorb::parse_dns_server(args.value());
      if (!server) args.fail("bad --bootstrap address (IP:PORT, [IPv6]:PORT)");
      o.workload.dns_servers.push_back(*server);
    } else if (arg == "--service") {
      o.workload.service = args.value();
    } else if (arg == "--claimers") {
      o.workload.claimers = args.number<std::size_t>(0, 10'000);
    } else if (arg == "--hold") {
      o.workload.hold = std::chrono::milliseconds(args.number<int>(0, 60'000));
    } else if (arg == "--pause") {
      o.workload.pause = std::chrono::milliseconds(args.number<int>(0, 60'000));
    } else if (arg == "--dns-interval") {
      o.workload.dns_interval = std::chrono::milliseconds(args.number<int>(1, 86'400) * 1000);
    } else if (arg == "--duration") {
      o.duration_s = args.number<double>(0.1, 1e6);
    } else if (arg == "--stats-addr") {
      const auto text = args.value();
      o.workload.stats_addr = qorb::parse_endpoint(text);
      if (!o.workload.stats_addr) args.fail("--stats-addr: " + qorb::endpoint_error(text));
    } else if (arg == "--plain") {
      o.plain = true;
    } else if (arg == "--log") {
      o.log_file = args.value();
    } else {
      args.unknown();
    }
  }
  if (o.workload.dns_servers.empty()) {
    o.workload.dns_servers.push_back(*qorb::parse_dns_server("[::1]:1234"));
  }
  return o;
}

std::atomic<bool> interrupted{false};

extern "C" void on_signal(int) { interrupted = true; }

}  // namespace

int main(int argc, char** argv) {
  auto o = parse(argc, argv);
  if (!o.log_file.empty()) {
    try {
      o.workload.logger = spdlog::basic_logger_mt("tcp_echo_workload", o.log_file);
      o.workload.logger->set_level(spdlog::level::info);
      o.workload.logger->flush_on(spdlog::level::info);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "tcp_echo_workload: cannot log to %s: %s\n", o.log_file.c_str(),
                   e.what());
      return 1;
    }
  }
  // The first signal stops the workload in order; a second one at once.
  struct sigaction action {};
  action.sa_handler = on_signal;
  action.sa_flags = SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  for (const int signal : {SIGINT, SIGTERM, SIGHUP}) sigaction(signal, &action, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::string servers;
  for (const auto& s : o.workload.dns_servers) {
    servers += (servers.empty() ? "" : ", ") +
               qorb::to_string(qorb::asio::ip::tcp::endpoint(s.address(), s.port()));
  }
  std::optional<examples::echo_workload> workload;
  try {
    workload.emplace(o.workload);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tcp_echo_workload: %s\n", e.what());
    return 1;
  }
  std::string title = "tcp_echo_workload: " + o.workload.service + " via DNS " + servers;
  if (const auto at = workload->stats_endpoint()) {
    const auto where = qorb::to_string(*at);
    title += "   qtop ws://" + where + "/qtop/stats";
    if (o.plain || !examples::have_terminal()) {
      std::printf("stats: http://%s/stats  http://%s/metrics  qtop ws://%s/qtop/stats\n",
                  where.c_str(), where.c_str(), where.c_str());
    }
  }
  {
    examples::workload_view view(*workload, {title, !o.plain && examples::have_terminal()});
    const auto end = o.duration_s
                         ? workload->started() +
                               std::chrono::milliseconds(static_cast<long>(*o.duration_s * 1000))
                         : examples::steady_clock::time_point::max();
    while (!interrupted && examples::steady_clock::now() < end && view.step()) {
    }
  }
  workload->stop();
  const auto s = workload->snapshot();
  std::printf("claims: %llu ok, %llu server failures, %llu claim failures\n",
              static_cast<unsigned long long>(s.ok),
              static_cast<unsigned long long>(s.server_failures),
              static_cast<unsigned long long>(s.claim_failures));
  return 0;
}
