// SPDX-License-Identifier: BSL-1.0
// qorb-resolve: prints the backends qorb's DNS resolver finds for a name,
// once or (--watch) at every change. Like cueball's cbresolve.
#include <qorb/resolvers/dns.hpp>

#if QORB_HAS_ETCD
#include "qorb_resolve_etcd.hpp"
#endif

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <charconv>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

constexpr const char* usage =
    "usage: qorb-resolve [--server IP:PORT]... [--family v4|v6|both] [--json] [--watch]\n"
    "                    [--timeout S] [--interval S] NAME\n"
    "       qorb-resolve --etcd URL[,URL...] [--json] [--watch] [--timeout S] PREFIX\n"
    "\n"
    "Looks up the SRV records of NAME (e.g. _http._tcp.example.com), then the\n"
    "addresses of each target, and prints one backend per line:\n"
    "  name address port ttl_remaining_s\n"
    "\n"
    "  --server IP:PORT  a DNS server to ask (repeatable; port 53 by default;\n"
    "                    default: the servers of /etc/resolv.conf)\n"
    "  --family F        v4 (A), v6 (AAAA) or both (default)\n"
    "  --json            print a JSON array of {name, address, port, ttl_remaining_s}\n"
    "  --watch           keep resolving and print the whole set at every change,\n"
    "                    until interrupted\n"
    "  --timeout S       how long one DNS query may take, in seconds (default 5)\n"
    "  --interval S      seconds between lookups when watching (default 60)\n"
    "  --etcd URLS       etcd instead of DNS (when built with the etcd component):\n"
    "                    the cluster's client URLs (http://127.0.0.1:2379,...);\n"
    "                    prints `name address port` for each key under PREFIX\n"
    "                    (e.g. /services/echo/); --json: [{name, address, port}];\n"
    "                    --timeout: per request to a member (default 5)\n"
    "\n"
    "Exit status: 0 when backends were found; 1 when a server answered but none\n"
    "were found; 2 on bad arguments; 3 when no DNS server answered (unreachable,\n"
    "timed out or failing); 130 or 143 when interrupted (SIGINT, SIGTERM) before\n"
    "the lookup ended. With --etcd: 1 also when no member answered in time.\n"
    "Failures print one line to stderr. With --watch, SIGINT or SIGTERM is the\n"
    "normal end: 0 if backends were known then, else 1.\n"
    "Set QORB_LOG=debug to see every query (and the resolver's own log).\n";

// Exit statuses (documented in `usage` and docs/dns.md).
constexpr int exit_found = 0;
constexpr int exit_none = 1;
constexpr int exit_unanswered = 3;

struct options {
  qorb::dns_resolver_config config;
  bool json = false;
  bool watch = false;
};

std::optional<std::chrono::milliseconds> parse_seconds(const std::string& text) {
  double seconds = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  if (ec != std::errc{} || end != text.data() + text.size() || !std::isfinite(seconds) ||
      seconds <= 0 || seconds > 86400) {
    return std::nullopt;
  }
  return std::chrono::milliseconds(std::max<long long>(1, std::llround(seconds * 1000)));
}

// Returns the options, or the reason they are wrong.
std::variant<options, std::string> parse(int argc, char** argv) {
  options o;
  o.config.query_timeout = 5s;
  std::optional<std::string> name;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= argc) return std::nullopt;
      return std::string(argv[++i]);
    };
    if (arg == "--json") {
      o.json = true;
    } else if (arg == "--watch") {
      o.watch = true;
    } else if (arg == "--server") {
      const auto v = value();
      if (!v) return "--server needs IP:PORT";
      const auto server = qorb::parse_dns_server(*v);
      if (!server) return "--server: '" + *v + "' is not an IP address with an optional :PORT";
      o.config.servers.push_back(*server);
    } else if (arg == "--family") {
      const auto v = value();
      if (v == "v4") {
        o.config.family = qorb::address_family::v4;
      } else if (v == "v6") {
        o.config.family = qorb::address_family::v6;
      } else if (v == "both") {
        o.config.family = qorb::address_family::both;
      } else {
        return "--family must be v4, v6 or both";
      }
    } else if (arg == "--timeout" || arg == "--interval") {
      const auto v = value();
      const auto seconds = v ? parse_seconds(*v) : std::nullopt;
      if (!seconds) return arg + " needs a positive number of seconds";
      (arg == "--timeout" ? o.config.query_timeout : o.config.query_interval) = *seconds;
    } else if (!arg.empty() && arg[0] == '-') {
      return "unknown option " + arg;
    } else if (name) {
      return "only one NAME, please (got '" + *name + "' and '" + arg + "')";
    } else {
      name = arg;
    }
  }
  if (!name) return "missing NAME";
  o.config.service = *name;
  // When watching, look again soon after an empty answer.
  o.config.query_retry_if_no_records_found = std::min(o.config.query_interval, 10000ms);
  return o;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string render(const std::vector<qorb::dns_backend_info>& backends, bool json) {
  const auto now = std::chrono::steady_clock::now();
  std::string out = json ? "[" : "";
  bool first = true;
  for (const auto& b : backends) {
    const auto remaining = std::max<long long>(
        0, std::chrono::duration_cast<std::chrono::seconds>(b.expires - now).count());
    const auto address = b.backend.address.address().to_string();
    const auto port = std::to_string(b.backend.address.port());
    if (json) {
      // Appended piece by piece: `const char* + std::string&&` (an insert at
      // the front) trips GCC 12's -Wrestrict at -O3, and this copies less.
      if (!first) out += ',';
      out += "{\"name\":";
      out += json_string(b.backend.name);
      out += ",\"address\":";
      out += json_string(address);
      out += ",\"port\":";
      out += port;
      out += ",\"ttl_remaining_s\":";
      out += std::to_string(remaining);
      out += '}';
    } else {
      out += b.backend.name + " " + address + " " + port + " " + std::to_string(remaining) + "\n";
    }
    first = false;
  }
  if (json) out += "]\n";
  return out;
}

std::string server_text(const asio::ip::udp::endpoint& e) {
  return qorb::to_string(asio::ip::tcp::endpoint(e.address(), e.port()));
}

// One line on stderr saying why nothing was found; returns the exit status.
int explain_failure(const qorb::dns_resolver& resolver, const std::string& name,
                    std::optional<qorb::dns_lookup_outcome> outcome) {
  std::string why;
  const auto servers = resolver.stats().servers;
  if (!outcome || *outcome == qorb::dns_lookup_outcome::failed) {
    why = outcome ? "no DNS server answered (" : "no answer in time (";
    bool first = true;
    for (const auto& s : servers) {
      if (!first) why += "; ";
      first = false;
      why += server_text(s.server);
      why += ": ";
      why += s.last_error.empty() ? std::string("no answer") : s.last_error;
    }
    if (servers.empty()) why += "no DNS servers";
    why += ')';
  } else {
    why = "no records (";
    bool first = true;
    for (const auto& s : servers) {
      if (s.no_records + s.records == 0) continue;
      if (!first) why += ", ";
      first = false;
      why += server_text(s.server);
    }
    why += " answered)";
  }
  std::cerr << "qorb-resolve: no backends found for " << name << ": " << why << "\n";
  return outcome && *outcome != qorb::dns_lookup_outcome::failed ? exit_none : exit_unanswered;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::cout << usage;
      return 0;
    }
  }
#if QORB_HAS_ETCD
  if (qorb_resolve_wants_etcd(argc, argv)) return qorb_resolve_etcd(argc, argv, usage);
#endif
  auto parsed = parse(argc, argv);
  if (auto* error = std::get_if<std::string>(&parsed)) {
    std::cerr << "qorb-resolve: " << *error << "\n\n" << usage;
    return 2;
  }
  auto& o = std::get<options>(parsed);

  asio::io_context io;
  bool done_once = false;
  std::optional<qorb::dns_lookup_outcome> first_outcome;
  int interrupted_by = 0;
  auto config = o.config;
  // One-shot: the tool explains a failure in one line of its own; the
  // resolver's log (retries, "keeping the last known backends") is for
  // long-running users, or QORB_LOG.
  if (!o.watch && !std::getenv("QORB_LOG")) config.logger = nullptr;
  std::shared_ptr<qorb::dns_resolver> resolver;
  config.on_lookup_done = [&](qorb::dns_lookup_outcome outcome) {
    if (done_once) return;
    done_once = true;
    first_outcome = outcome;
    if (!o.watch) {
      io.stop();
    } else if (resolver->backends().empty()) {
      std::cout << render({}, o.json) << std::flush;  // say so, once
    }
  };
  resolver = std::make_shared<qorb::dns_resolver>(config);
  resolver->start(io.get_executor(), [&](const qorb::backend_map&) {
    if (o.watch) std::cout << render(resolver->backends(), o.json) << std::flush;
  });

  // A lookup ends on its own (each query is bounded); this is a backstop.
  asio::steady_timer backstop(io, 4 * o.config.query_timeout + 1s);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  // Honoured at once, also in the middle of a one-shot lookup.
  signals.async_wait([&](boost::system::error_code ec, int signal) {
    if (ec) return;
    interrupted_by = signal;
    io.stop();
  });
  if (!o.watch) {
    backstop.async_wait([&](boost::system::error_code ec) {
      if (!ec) io.stop();
    });
  }
  io.run();
  resolver->stop();
  if (interrupted_by != 0) {
    // The end is decided. A second copy of the signal (`timeout` sends it
    // to the process and to its group) must not kill the exit with it.
    signals.clear();  // restores the default actions, so ignore after it
    std::signal(SIGINT, SIG_IGN);
    std::signal(SIGTERM, SIG_IGN);
  }

  if (!o.watch && interrupted_by != 0 && !done_once) {
    std::cerr << "qorb-resolve: interrupted (" << (interrupted_by == SIGINT ? "SIGINT" : "SIGTERM")
              << ") before the lookup of " << o.config.service << " ended\n";
    return 128 + interrupted_by;
  }
  const auto backends = resolver->backends();
  if (!o.watch) std::cout << render(backends, o.json) << std::flush;
  if (backends.empty()) {
    if (!o.watch) return explain_failure(*resolver, o.config.service, first_outcome);
    return exit_none;
  }
  return exit_found;
}
