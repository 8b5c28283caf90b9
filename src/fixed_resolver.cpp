// SPDX-License-Identifier: BSL-1.0
#include <qorb/resolvers/fixed.hpp>

#include <netdb.h>
#include <sys/socket.h>

#include <cstring>
#include <stdexcept>

namespace qorb {
namespace {

backend_map to_backends(const std::vector<asio::ip::tcp::endpoint>& endpoints) {
  backend_map out;
  for (const auto& ep : endpoints) {
    auto name = to_string(ep);
    out.emplace(name, backend{name, ep});
  }
  return out;
}

}  // namespace

fixed_resolver::fixed_resolver(std::vector<asio::ip::tcp::endpoint> endpoints)
    : backends_(to_backends(endpoints)) {}

namespace {

// Every address `host` has, with `port`; throws std::invalid_argument
// naming `entry` when it has none.
void resolve_into(const std::string& entry, const std::string& host, const std::string& port,
                  std::vector<asio::ip::tcp::endpoint>& out) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
  addrinfo* found = nullptr;
  int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
  if (rc == EAI_NONAME || rc == EAI_ADDRFAMILY) {
    // AI_ADDRCONFIG hides loopback-only names on a host with no other
    // address (a container, a test's network namespace): ask again without.
    hints.ai_flags = AI_NUMERICSERV;
    rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
  }
  if (rc != 0) {
    throw std::invalid_argument("fixed_resolver::from_names: \"" + entry +
                                "\" does not resolve: " + ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(found, &::freeaddrinfo);
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    asio::ip::tcp::endpoint ep;
    if (a->ai_addrlen > ep.capacity()) continue;
    std::memcpy(ep.data(), a->ai_addr, a->ai_addrlen);
    ep.resize(a->ai_addrlen);
    out.push_back(ep);
  }
}

}  // namespace

std::shared_ptr<fixed_resolver> fixed_resolver::from_names(
    const std::vector<std::string>& host_ports) {
  if (host_ports.empty()) {
    throw std::invalid_argument("fixed_resolver::from_names: the list of host:port is empty");
  }
  std::vector<asio::ip::tcp::endpoint> endpoints;
  for (const auto& entry : host_ports) {
    if (const auto address = parse_endpoint(entry)) {
      endpoints.push_back(*address);
      continue;
    }
    // "host:port" or "[host]:port": the port after the last ':'.
    const auto colon = entry.rfind(':');
    std::string host = colon == std::string::npos ? std::string() : entry.substr(0, colon);
    const std::string port = colon == std::string::npos ? std::string() : entry.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    const bool port_ok = !port.empty() && port.size() <= 5 &&
                         port.find_first_not_of("0123456789") == std::string::npos &&
                         std::stoul(port) <= 65535;
    if (host.empty() || !port_ok) {
      throw std::invalid_argument(
          "fixed_resolver::from_names: \"" + entry +
          "\" is not host:port (a port from 0 to 65535 after the last ':')");
    }
    resolve_into(entry, host, port, endpoints);
  }
  return std::make_shared<fixed_resolver>(std::move(endpoints));
}

void fixed_resolver::start(asio::any_io_executor, listener on_change) {
  {
    std::lock_guard lock(mu_);
    listener_ = std::move(on_change);
    stopped_ = false;
  }
  publish();
}

void fixed_resolver::stop() {
  std::lock_guard lock(mu_);
  stopped_ = true;
  listener_ = nullptr;
}

void fixed_resolver::set_endpoints(std::vector<asio::ip::tcp::endpoint> endpoints) {
  auto next = to_backends(endpoints);
  {
    std::lock_guard lock(mu_);
    if (next == backends_) return;
    backends_ = std::move(next);
  }
  publish();
}

// Publications are serialised, and each sends the set current when it runs,
// so concurrent calls cannot leave the listener with an older set than the
// last one. The listener runs without mu_, so it may call backends() or
// stop().
void fixed_resolver::publish() {
  std::lock_guard order(publish_mu_);
  backend_map snapshot;
  listener notify;
  {
    std::lock_guard lock(mu_);
    if (stopped_ || !listener_) return;
    snapshot = backends_;
    notify = listener_;
  }
  notify(snapshot);
}

backend_map fixed_resolver::backends() const {
  std::lock_guard lock(mu_);
  return backends_;
}

}  // namespace qorb
