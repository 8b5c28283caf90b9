// SPDX-License-Identifier: BSL-1.0
// tcp_echo_server: a TCP echo server as a process of its own, to put real
// backends behind a pool (e.g. the ones a DNS zone names, see examples/dns).
// It serves many clients at once, echoing back whatever each one sends.
//
//   tcp_echo_server [ADDR:PORT]     e.g. 127.0.0.1:6001, [::1]:6001, [::1]:0
//   tcp_echo_server --register http://127.0.0.1:2379/services/echo/ 127.0.0.1:0
//
// Once listening it prints one line, `listening on ADDR:PORT` (the real port
// when 0 asked for a free one), and flushes it, so a program reading its
// stdout through a pipe learns where it listens. SIGINT or SIGTERM closes the
// listener and every connection, prints `stopped` and exits 0.
#include <qorb/backend.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/system/system_error.hpp>

#include <charconv>
#include <chrono>
#include <csignal>
#include <exception>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "common/echo_server.hpp"

#if QORB_HAS_ETCD
#include <qorb/resolvers/etcd.hpp>
#include <qorb/resolvers/etcd_registration.hpp>
#endif

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

constexpr const char* usage =
    "usage: tcp_echo_server [--register URL[,URL...] [--ttl S]] [ADDR:PORT]\n"
    "\n"
    "Listens on ADDR:PORT (an IP address, IPv6 in brackets: 127.0.0.1:6001,\n"
    "[::1]:6001; port 0 picks a free port; default [::1]:0) and echoes back\n"
    "whatever each client sends, to many clients at once.\n"
    "\n"
    "Prints `listening on ADDR:PORT` once listening and `stopped` after SIGINT\n"
    "or SIGTERM closed the listener and every connection.\n"
    "\n"
    "  --register URL  register in etcd (the etcd component): URL is the\n"
    "                  cluster's client URLs and the service's key prefix, e.g.\n"
    "                  http://127.0.0.1:2379/services/echo/; the key is the\n"
    "                  prefix + ADDR:PORT, its value ADDR:PORT, under a lease\n"
    "                  kept alive; printed: `registered KEY` (again after a lost\n"
    "                  lease), `unregistered` when SIGINT/SIGTERM revoked it\n"
    "  --ttl S         the lease's TTL in seconds (1 to 86400, default 10);\n"
    "                  only with --register\n"
    "\n"
    "Exit status: 0 after SIGINT/SIGTERM, 1 when it cannot listen (e.g. the\n"
    "port is in use), 2 on bad arguments.\n";

// "127.0.0.1:6001" or "[::1]:6001"; returns the endpoint or why it is wrong.
std::variant<tcp::endpoint, std::string> parse_endpoint(const std::string& text) {
  std::string host;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return "'" + text + "' is not [IPV6]:PORT";
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) return "'" + text + "' has no :PORT";
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string::npos) {
      return "'" + text + "': put an IPv6 address in brackets, e.g. [::1]:6001";
    }
  }
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec || host.empty()) return "'" + host + "' is not an IP address";
  if (text.front() == '[' && !address.is_v6()) return "'" + host + "' is not an IPv6 address";
  unsigned value = 0;
  const auto [end, perr] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || perr != std::errc{} || end != port.data() + port.size() || value > 65535) {
    return "'" + port + "' is not a port (0 to 65535)";
  }
  return tcp::endpoint(address, static_cast<unsigned short>(value));
}

int bad_arguments(const std::string& reason) {
  std::cerr << "tcp_echo_server: " << reason << "\n\n" << usage;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<std::string> where;
  std::optional<std::string> register_url;
  unsigned ttl_seconds = 10;
  bool ttl_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::cout << usage;
      return 0;
    }
    if (arg == "--register" || arg == "--ttl") {
      if (i + 1 >= argc) return bad_arguments(arg + " needs a value");
      const std::string value = argv[++i];
      if (arg == "--register") {
        register_url = value;
        continue;
      }
      const auto [end, ec] =
          std::from_chars(value.data(), value.data() + value.size(), ttl_seconds);
      if (ec != std::errc{} || end != value.data() + value.size() || ttl_seconds < 1 ||
          ttl_seconds > 86400) {
        return bad_arguments("--ttl: '" + value + "' is not a number of seconds (1 to 86400)");
      }
      ttl_given = true;
      continue;
    }
    if (arg.size() > 1 && arg.front() == '-') return bad_arguments("unknown option " + arg);
    if (where) return bad_arguments("only one ADDR:PORT, please");
    where = arg;
  }
  // A TTL only means something for a lease: alone it was silently ignored.
  if (ttl_given && !register_url)
    return bad_arguments("--ttl needs --register (it is the lease's TTL)");
  const auto parsed = parse_endpoint(where.value_or("[::1]:0"));
  if (const auto* reason = std::get_if<std::string>(&parsed)) return bad_arguments(*reason);
  const auto& endpoint = std::get<tcp::endpoint>(parsed);

  // A reader that goes away must not kill the server while it prints.
  std::signal(SIGPIPE, SIG_IGN);

  // The signals are caught from here on: one that arrives while the server
  // starts is handled as soon as `io` runs.
  asio::io_context io;
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([](const boost::system::error_code&, int) {});

  std::optional<qorb::examples::echo_server> server;
  try {
    server.emplace(endpoint.address(), endpoint.port());
  } catch (const boost::system::system_error& e) {
    std::cerr << "tcp_echo_server: cannot listen on " << qorb::to_string(endpoint) << ": "
              << e.code().message() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "tcp_echo_server: cannot listen on " << qorb::to_string(endpoint) << ": "
              << e.what() << "\n";
    return 1;
  }
  std::cout << "listening on " << qorb::to_string(server->endpoint()) << std::endl;

  if (register_url) {
#if QORB_HAS_ETCD
    std::string error;
    const auto location = qorb::parse_etcd_url(*register_url, error);
    if (!location) return bad_arguments("--register: " + error);
    qorb::etcd_registration_config config;
    config.endpoints = location->endpoints;
    config.value = qorb::to_string(server->endpoint());
    config.key = location->prefix.empty() ? "/" : location->prefix;
    config.key += config.value;
    config.ttl = std::chrono::seconds(ttl_seconds);
    config.on_change = [key = config.key](bool registered) {
      if (registered) {
        std::cout << "registered " << key << std::endl;
      } else {
        std::cout << "lease lost" << std::endl;
      }
    };
    auto registration = std::make_shared<qorb::etcd_registration>(std::move(config));
    registration->start(io.get_executor());
    // The signal revokes the lease first; `io` then runs out of work.
    signals.cancel();
    signals.async_wait([registration](const boost::system::error_code& ec, int) {
      if (ec) return;
      registration->stop([](bool revoked) {
        std::cout << (revoked ? "unregistered" : "unregistered (lease not revoked)") << std::endl;
      });
    });
#else
    return bad_arguments("--register needs qorb built with the etcd component");
#endif
  }

  io.run();  // until SIGINT or SIGTERM (and the lease is revoked)

  server.reset();  // closes the listener and every connection, joins its thread
  std::cout << "stopped" << std::endl;
  return 0;
}
