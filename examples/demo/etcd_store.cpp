// SPDX-License-Identifier: BSL-1.0
#include "etcd_store.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <unistd.h>

#include <chrono>
#include <stdexcept>

namespace qorb::demo {

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

unsigned short free_tcp_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor a(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

}  // namespace

etcd_store::etcd_store(const std::string& dir) : dir_(dir) {
  if (find_program("etcd").empty()) {
    throw std::runtime_error("etcd is not installed (Debian: etcd-server etcd-client)");
  }
  // A free port can be taken by someone else before etcd binds it: retry.
  for (int attempt = 0; attempt < 3 && !process_; ++attempt) {
    const auto client = std::to_string(free_tcp_port());
    const auto peer = std::string("http://127.0.0.1:").append(std::to_string(free_tcp_port()));
    url_ = std::string("http://127.0.0.1:").append(client);
    process_ = std::make_unique<child>(
        std::vector<std::string>{
            "etcd", "--name", "demo", "--data-dir", dir_ + "/etcd-" + std::to_string(attempt),
            "--listen-client-urls", url_, "--advertise-client-urls", url_, "--listen-peer-urls",
            peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "demo=" + peer},
        false, dir_ + "/etcd.log");
    if (!healthy()) process_.reset();  // stopped by its destructor
  }
  if (!process_) {
    throw std::runtime_error(
        std::string("etcd did not start; its log:\n").append(read_file(dir_ + "/etcd.log")));
  }
}

// Whether the member says it is healthy, within 15 s.
bool etcd_store::healthy() {
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (std::chrono::steady_clock::now() < deadline && process_->running()) {
    std::string out;
    if (run({"etcdctl", "--endpoints=" + url_, "--dial-timeout=1s", "endpoint", "health"}, out,
            5s) == 0) {
      return true;
    }
    ::usleep(100'000);  // a member is ready in well under a second; ask again shortly
  }
  return false;
}

}  // namespace qorb::demo
