// SPDX-License-Identifier: BSL-1.0
// The servers the demo starts (see servers.hpp).
#include "servers.hpp"

#include <qorb/backend.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace qorb::demo {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using steady_clock = std::chrono::steady_clock;

unsigned short free_udp_port() {
  asio::io_context io;
  asio::ip::udp::socket s(io, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return s.local_endpoint().port();
}

}  // namespace

scratch_dir::scratch_dir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "qorb-demo-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

scratch_dir::~scratch_dir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

echo_process start_echo_server(const std::string& host, const std::string& register_at,
                               steady_clock::time_point* listening,
                               steady_clock::time_point* registered) {
  std::vector<std::string> argv{QORB_DEMO_ECHO_SERVER, "127.0.0.1:0"};
  if (!register_at.empty()) {
    argv = {QORB_DEMO_ECHO_SERVER,      "--register", register_at + etcd_prefix, "--ttl",
            std::to_string(etcd_ttl_s), "127.0.0.1:0"};
  }
  echo_process e{host, 0, std::make_unique<child>(argv, true)};
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

knot_dns::knot_dns(const std::string& dir,
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
    process_ = std::make_unique<child>(std::vector<std::string>{"knotd", "-c", dir_ + "/knot.conf"},
                                       false, dir_ + "/knot.log");
    if (!answers()) process_.reset();  // stopped by its destructor
  }
  if (!process_) {
    throw std::runtime_error("knotd did not start; its log:\n" + read_file(dir_ + "/knot.log"));
  }
}

void knot_dns::add(const std::vector<std::string>& records) {
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
    run({"knotc", "-s", dir_ + "/knot.sock", "zone-abort", "test.com"}, ignored);
    throw;
  }
}

// Whether knotd answers for the zone, within 5 s.
bool knot_dns::answers() {
  const auto deadline = steady_clock::now() + 5s;
  while (steady_clock::now() < deadline && process_->running()) {
    std::string out;
    if (run({"kdig", "@127.0.0.1", "-p", std::to_string(port_), "+short", "+timeout=1", "+retry=0",
             "SOA", "test.com."},
            out, 3s) == 0 &&
        out.find("test.com") != std::string::npos) {
      return true;
    }
    ::usleep(50'000);  // knotd loads the zone in a few ms; ask again shortly
  }
  return false;
}

void knot_dns::knotc(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"knotc", "-s", dir_ + "/knot.sock"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out;
  if (run(argv, out) != 0) throw std::runtime_error("knotc " + args.front() + ": " + out);
}

}  // namespace qorb::demo
