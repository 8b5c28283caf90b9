// SPDX-License-Identifier: BSL-1.0
// qorb-resolve --etcd: prints the backends qorb's etcd resolver finds under
// a key prefix, once or (--watch) at every change.
#include "qorb_resolve_etcd.hpp"

#include <qorb/resolvers/etcd.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <charconv>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

struct etcd_options {
  qorb::etcd_resolver_config config;
  bool json = false;
  bool watch = false;
};

// Returns "" and fills `o`, or the reason the arguments are wrong.
std::string parse(int argc, char** argv, etcd_options& o) {
  std::optional<std::string> urls;
  std::optional<std::string> prefix;
  o.config.request_timeout = 5s;
  o.config.retry_min = 100ms;
  o.config.retry_max = 2s;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--json") {
      o.json = true;
    } else if (arg == "--watch") {
      o.watch = true;
    } else if (arg == "--etcd") {
      if (i + 1 >= argc) return "--etcd needs URL[,URL...]";
      urls = argv[++i];
    } else if (arg == "--timeout") {
      double seconds = 0;
      const std::string v = i + 1 < argc ? argv[++i] : "";
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), seconds);
      if (v.empty() || ec != std::errc{} || end != v.data() + v.size() || !std::isfinite(seconds) ||
          seconds <= 0 || seconds > 3600) {
        return "--timeout needs a number of seconds (more than 0, at most 3600)";
      }
      o.config.request_timeout =
          std::chrono::milliseconds(std::max<long long>(1, std::llround(seconds * 1000)));
    } else if (!arg.empty() && arg[0] == '-') {
      return "--etcd: option " + arg + " does not apply (only --json, --watch, --timeout)";
    } else if (prefix) {
      return "only one PREFIX, please (got '" + *prefix + "' and '" + arg + "')";
    } else {
      prefix = arg;
    }
  }
  std::string error;
  const auto location = qorb::parse_etcd_url(*urls, error);
  if (!location) return "--etcd: " + error;
  o.config.endpoints = location->endpoints;
  if (!prefix && !location->prefix.empty()) prefix = location->prefix;
  if (!prefix || prefix->empty()) return "--etcd needs a PREFIX, e.g. /services/echo/";
  o.config.prefix = *prefix;
  return "";
}

std::string render(const qorb::backend_map& backends, bool json) {
  std::string out;
  boost::json::array array;
  for (const auto& [name, b] : backends) {
    const auto address = b.address.address().to_string();
    if (json) {
      array.push_back(
          boost::json::object{{"name", name}, {"address", address}, {"port", b.address.port()}});
    } else {
      out.append(name)
          .append(" ")
          .append(address)
          .append(" ")
          .append(std::to_string(b.address.port()))
          .append("\n");
    }
  }
  if (json) out = boost::json::serialize(array).append("\n");
  return out;
}

}  // namespace

bool qorb_resolve_wants_etcd(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--etcd") return true;
  }
  return false;
}

int qorb_resolve_etcd(int argc, char** argv, const char* usage) {
  etcd_options o;
  if (const auto error = parse(argc, argv, o); !error.empty()) {
    std::cerr << "qorb-resolve: " << error << "\n\n" << usage;
    return 2;
  }
  asio::io_context io;
  qorb::backend_map last;
  bool answered = false;
  int interrupted_by = 0;
  const auto timeout = o.config.request_timeout;
  auto config = o.config;
  // One-shot: the tool explains a failure in one line of its own; the
  // resolver's log (each member's failure, the next try) is for --watch, or
  // QORB_LOG.
  if (!o.watch && !std::getenv("QORB_LOG")) config.logger = nullptr;
  // Taken before the resolver starts: once it has connected anywhere, a
  // signal is ours, also in the middle of a one-shot read.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int signal) {
    if (ec) return;
    interrupted_by = signal;
    io.stop();
  });
  auto resolver = std::make_shared<qorb::etcd_resolver>(config);
  resolver->start(io.get_executor(), [&](const qorb::backend_map& backends) {
    last = backends;
    answered = true;
    if (o.watch) {
      std::cout << render(backends, o.json) << std::flush;
    } else {
      io.stop();
    }
  });
  // One-shot: the first read answers; without one in time, say why.
  asio::steady_timer backstop(io, 2 * timeout + 1s);
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
  if (!o.watch && interrupted_by != 0 && !answered) {
    std::cerr << "qorb-resolve: interrupted (" << (interrupted_by == SIGINT ? "SIGINT" : "SIGTERM")
              << ") before the read of " << o.config.prefix << " ended\n";
    return 128 + interrupted_by;
  }
  if (!o.watch && answered) std::cout << render(last, o.json) << std::flush;
  if (!answered) {
    const auto s = resolver->stats();
    std::cerr << "qorb-resolve: no etcd member answered for " << o.config.prefix << " (last tried "
              << qorb::to_string(s.member) << ": "
              << (s.last_error.empty() ? std::string("no answer yet") : s.last_error) << ")\n";
    return 1;
  }
  if (last.empty()) {
    if (!o.watch) std::cerr << "qorb-resolve: no backends under " << o.config.prefix << "\n";
    return 1;
  }
  return 0;
}
