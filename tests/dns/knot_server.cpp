// SPDX-License-Identifier: BSL-1.0
#include "knot_server.hpp"

#include "dns_wire.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace qorb::test {

bool dns_answers(unsigned short port, const std::string& zone, std::chrono::milliseconds timeout) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return false;
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  dns::bytes q;
  dns::put16(q, 0x4242);
  dns::put16(q, 0x0000);
  dns::put16(q, 1);
  dns::put16(q, 0);
  dns::put16(q, 0);
  dns::put16(q, 0);
  const auto name = dns::encode_name(zone);
  q.insert(q.end(), name.begin(), name.end());
  dns::put16(q, 6);  // SOA
  dns::put16(q, 1);
  bool ok = false;
  if (::sendto(fd, q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr) ==
      static_cast<ssize_t>(q.size())) {
    std::uint8_t buf[1500];
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    ok = n >= 12 && buf[0] == 0x42 && buf[1] == 0x42 && (buf[3] & 0x0F) == 0 &&
         ((buf[6] << 8) | buf[7]) > 0;
  }
  ::close(fd);
  return ok;
}

knot_server::knot_server(std::map<std::string, std::string> zones) {
  const auto& d = dir_.path();
  std::filesystem::create_directories(d + "/db");
  for (const auto& [domain, records] : zones) {
    std::ofstream z(d + "/" + domain + ".zone");
    z << "$ORIGIN " << domain << ".\n"
      << "@ 3600 IN SOA ns1 admin 1 3600 600 86400 1\n"
      << "@ 3600 IN NS ns1\n"
      << "ns1 3600 IN A 127.0.0.1\n"
      << records << "\n";
  }
  // A free port can be taken by someone else before knotd binds it.
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = free_port(true);
    {
      std::ofstream c(d + "/knot.conf");
      c << "server:\n    rundir: \"" << d << "\"\n"
        << "    listen: [ 127.0.0.1@" << port_ << ", ::1@" << port_ << " ]\n"
        << "log:\n  - target: stderr\n    any: warning\n"
        << "database:\n    storage: \"" << d << "/db\"\n"
        << "control:\n    listen: \"" << d << "/knot.sock\"\n"
        << "zone:\n";
      for (const auto& [domain, records] : zones) {
        c << "  - domain: " << domain << "\n"
          << "    storage: \"" << d << "\"\n"
          << "    file: \"" << domain << ".zone\"\n"
          << "    zonefile-sync: -1\n"
          << "    zonefile-load: difference-no-serial\n"
          << "    journal-content: all\n";
      }
    }
    process_ = child_process({"knotd", "-c", d + "/knot.conf"});
    const std::string first_zone = zones.begin()->first;
    if (wait_until([&] { return !process_.running() || dns_answers(port_, first_zone, 50ms); },
                   10s) &&
        process_.running()) {
      return;
    }
    process_.stop();
  }
  throw std::runtime_error("knotd did not start");
}

knot_server::~knot_server() { stop(); }

void knot_server::stop() { process_.stop(); }

boost::asio::ip::udp::endpoint knot_server::endpoint(bool v6) const {
  return {v6 ? boost::asio::ip::address(boost::asio::ip::address_v6::loopback())
             : boost::asio::ip::address(boost::asio::ip::address_v4::loopback()),
          port_};
}

std::string knot_server::address() const { return "127.0.0.1:" + std::to_string(port_); }

void knot_server::knotc(std::vector<std::string> args) {
  args.insert(args.begin(), {"knotc", "-s", dir_.path() + "/knot.sock"});
  std::string output;
  if (run_command(args, &output, 10s) != 0) {
    std::ostringstream what;
    for (const auto& a : args) what << a << ' ';
    throw std::runtime_error("failed: " + what.str() + ": " + output);
  }
}

void knot_server::edit(const std::string& zone, const std::vector<std::string>& set,
                       const std::vector<std::string>& unset) {
  knotc({"zone-begin", zone});
  auto split = [](const std::string& line) {
    std::istringstream in(line);
    std::vector<std::string> words;
    for (std::string w; in >> w;) words.push_back(w);
    return words;
  };
  try {
    for (const auto& line : unset) {
      auto words = split(line);
      words.insert(words.begin(), {"zone-unset", zone});
      knotc(words);
    }
    for (const auto& line : set) {
      auto words = split(line);
      words.insert(words.begin(), {"zone-set", zone});
      knotc(words);
    }
  } catch (...) {
    knotc({"zone-abort", zone});
    throw;
  }
  knotc({"zone-commit", zone});
}

}  // namespace qorb::test

#include "resolver_harness.hpp"

namespace qorb::test {

silent_udp_server::silent_udp_server() {
  fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
  if (fd_ < 0) throw std::runtime_error("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd_);
    throw std::runtime_error("bind");
  }
  port_ = ntohs(addr.sin_port);
}

silent_udp_server::~silent_udp_server() { ::close(fd_); }

asio::ip::udp::endpoint silent_udp_server::endpoint() const {
  return {asio::ip::address_v4::loopback(), port_};
}

}  // namespace qorb::test
