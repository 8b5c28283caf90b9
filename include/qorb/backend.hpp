// qorb: backends, the processes a service runs on.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include <functional>
#include <map>
#include <string>

namespace qorb {

namespace asio = boost::asio;

/// One process serving the service. `name` is its unique, stable key
/// (a fixed resolver uses "ip:port"; the DNS resolver a readable name built
/// from the SRV target, address and port); `address` is where to connect.
struct backend {
  std::string name;
  asio::ip::tcp::endpoint address;

  friend bool operator==(const backend&, const backend&) = default;
};

/// The whole set of backends a resolver currently knows, keyed by name.
using backend_map = std::map<std::string, backend, std::less<>>;

/// "127.0.0.1:80" for IPv4, "[::1]:80" for IPv6: the fixed resolver's
/// backend names, and the way qorb prints addresses.
std::string to_string(const asio::ip::tcp::endpoint& endpoint);

}  // namespace qorb
