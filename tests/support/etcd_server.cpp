// SPDX-License-Identifier: BSL-1.0
#include "support/etcd_server.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace qorb::test {

namespace asio = boost::asio;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string peer_url(unsigned short port) {
  return std::string("http://127.0.0.1:").append(std::to_string(port));
}

}  // namespace

bool etcd_cluster::available(std::string& why) {
  for (const char* tool : {"/usr/bin/etcd", "/usr/bin/etcdctl"}) {
    if (::access(tool, X_OK) != 0) {
      why = std::string(tool) + " is not installed (Debian: etcd-server, etcd-client)";
      return false;
    }
  }
  return true;
}

etcd_cluster::etcd_cluster(std::size_t members, bool start_now) : dir_("qorb-etcd") {
  members_.resize(members);
  for (std::size_t i = 0; i < members; ++i) {
    members_[i].name = std::string("m").append(std::to_string(i + 1));
    members_[i].client_port = free_port();
    members_[i].peer_port = free_port();
  }
  if (start_now) start();
}

etcd_cluster::~etcd_cluster() {
  for (auto& m : members_) m.process.stop(9);
}

asio::ip::tcp::endpoint etcd_cluster::client(std::size_t member) const {
  return {asio::ip::make_address_v4("127.0.0.1"), members_.at(member).client_port};
}

std::vector<asio::ip::tcp::endpoint> etcd_cluster::clients() const {
  std::vector<asio::ip::tcp::endpoint> out;
  for (std::size_t i = 0; i < members_.size(); ++i) out.push_back(client(i));
  return out;
}

std::string etcd_cluster::urls() const {
  std::string out;
  for (const auto& m : members_) out.append(out.empty() ? "" : ",").append(peer_url(m.client_port));
  return out;
}

void etcd_cluster::spawn(process_slot& m) {
  std::string cluster;
  for (const auto& other : members_) {
    cluster.append(cluster.empty() ? "" : ",")
        .append(other.name)
        .append("=")
        .append(peer_url(other.peer_port));
  }
  const auto data = dir_.path() + "/" + m.name;
  const auto log = dir_.path() + "/" + m.name + ".log";
  m.process = child_process({"sh",
                             "-c",
                             "exec \"$@\" >>\"$0\" 2>&1",
                             log,
                             "/usr/bin/etcd",
                             "--name",
                             m.name,
                             "--data-dir",
                             data,
                             "--listen-client-urls",
                             peer_url(m.client_port),
                             "--advertise-client-urls",
                             peer_url(m.client_port),
                             "--listen-peer-urls",
                             peer_url(m.peer_port),
                             "--initial-advertise-peer-urls",
                             peer_url(m.peer_port),
                             "--initial-cluster",
                             cluster,
                             "--initial-cluster-state",
                             started_once_ ? "existing" : "new",
                             "--initial-cluster-token",
                             "qorb-test",
                             "--heartbeat-interval",
                             "100",
                             "--election-timeout",
                             "1000"});
}

void etcd_cluster::start() {
  // A member restarted later joins the cluster it was part of (its data
  // directory says so); the first start makes a new one.
  for (auto& m : members_) {
    if (!m.process.running()) spawn(m);
  }
  started_once_ = true;
  const bool ok = wait_until(
      [&] {
        for (std::size_t i = 0; i < members_.size(); ++i) {
          if (!members_[i].process.running() || !healthy(i)) return false;
        }
        return true;
      },
      30s);
  if (!ok)
    throw std::runtime_error(
        std::string("etcd did not become healthy within 30 s; logs:\n").append(logs()));
}

void etcd_cluster::kill(std::size_t member, int signal) {
  members_.at(member).process.stop(signal);
}

bool etcd_cluster::running(std::size_t member) { return members_.at(member).process.running(); }

bool etcd_cluster::healthy(std::size_t member) const {
  try {
    asio::io_context io;
    asio::ip::tcp::socket socket(io);
    socket.connect(client(member));
    const std::string request = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    asio::write(socket, asio::buffer(request));
    timeval tv{2, 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string reply;
    boost::system::error_code ec;
    asio::read(socket, asio::dynamic_buffer(reply), ec);
    return reply.find("\"health\":\"true\"") != std::string::npos;
  } catch (const std::exception&) {
    return false;
  }
}

std::string etcd_cluster::ctl(const std::vector<std::string>& args) {
  std::string endpoints;
  for (std::size_t i = 0; i < members_.size(); ++i) {
    if (!running(i)) continue;
    endpoints.append(endpoints.empty() ? "" : ",").append(peer_url(members_[i].client_port));
  }
  std::vector<std::string> argv{"/usr/bin/etcdctl", "--endpoints=" + endpoints, "--dial-timeout=5s",
                                "--command-timeout=10s"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string output;
  const int rc = run_command(argv, &output, 30s);
  if (rc != 0) {
    std::string command;
    for (const auto& a : args) command.append(" ").append(a);
    throw std::runtime_error("etcdctl" + command + " failed (" + std::to_string(rc) +
                             "): " + output);
  }
  return output;
}

void etcd_cluster::put(const std::string& key, const std::string& value) {
  ctl({"put", "--", key, value});
}

void etcd_cluster::del(const std::string& key) { ctl({"del", "--", key}); }

std::int64_t etcd_cluster::revision() {
  // A read's header carries the revision: `"Revision" : N` in fields output.
  const auto out = ctl({"get", "--write-out=fields", "--limit=1", "--", "/"});
  const auto at = out.find("\"Revision\" : ");
  if (at == std::string::npos) throw std::runtime_error("no revision in: " + out);
  return std::stoll(out.substr(at + 13));
}

void etcd_cluster::compact(std::int64_t revision) {
  ctl({"compact", "--physical", std::to_string(revision)});
}

std::string etcd_cluster::logs() const {
  std::string out;
  for (const auto& m : members_) {
    out.append("--- ").append(m.name).append(":\n").append(
        read_file(dir_.path() + "/" + m.name + ".log"));
  }
  return out;
}

}  // namespace qorb::test
