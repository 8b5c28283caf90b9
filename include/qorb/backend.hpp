// SPDX-License-Identifier: BSL-1.0
// qorb: backends, the processes a service runs on.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace qorb {

namespace asio = boost::asio;

/// One process serving the service. `name` is its unique, stable key
/// (a fixed resolver uses "ip:port"; the DNS resolver a readable name built
/// from the SRV target, address and port); `address` is where to connect.
struct backend {
  /// Unique, stable key of the backend within its pool (logs, stats and
  /// probes show it).
  std::string name;
  /// Where `connect` connects to.
  asio::ip::tcp::endpoint address;

  /// Same name and address.
  friend bool operator==(const backend&, const backend&) = default;
};

/// The whole set of backends a resolver currently knows, keyed by name.
using backend_map = std::map<std::string, backend, std::less<>>;

/// "127.0.0.1:80" for IPv4, "[::1]:80" for IPv6: the fixed resolver's
/// backend names, and the way qorb prints addresses.
std::string to_string(const asio::ip::tcp::endpoint& endpoint);

/// Parses what `to_string` prints: "127.0.0.1:80", "[::1]:80" (port 0
/// included). Without a port ("127.0.0.1", "[::1]", "::1") the result has
/// `default_port`, or is empty when there is none. Empty when `text` is not
/// such an address.
std::optional<asio::ip::tcp::endpoint> parse_endpoint(
    std::string_view text, std::optional<std::uint16_t> default_port = std::nullopt);

/// Why `parse_endpoint(text, default_port)` is empty, in one line for a
/// user ("" when it is not): a host name ("localhost:7101") gets `"localhost:7101"
/// is a host name; the fixed resolver takes addresses: use qorb::dns_resolver
/// or resolve it first (qorb::fixed_resolver::from_names)`, a bad port or a
/// missing one says so.
std::string endpoint_error(std::string_view text,
                           std::optional<std::uint16_t> default_port = std::nullopt);

}  // namespace qorb
