// SPDX-License-Identifier: BSL-1.0
// The servers the demo starts on loopback: TCP echo servers (which can
// register themselves in etcd) and Knot DNS serving their SRV records, all
// in a scratch directory of the demo's own.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "processes.hpp"

namespace qorb::demo {

// A directory of the demo's own, removed at the end.
class scratch_dir {
 public:
  scratch_dir();
  ~scratch_dir();
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct echo_process {
  std::string host;  // echo001, ...
  unsigned short port = 0;
  std::unique_ptr<child> process;
};

// The etcd story: the servers' key prefix and lease TTL.
constexpr const char* etcd_prefix = "/services/echo/";
constexpr int etcd_ttl_s = 3;

// With `register_at` (an etcd client URL) the server registers itself under
// etcd_prefix; `listening` is when it said it listens (its registration
// starts then), and the call returns once it said `registered`.
echo_process start_echo_server(const std::string& host, const std::string& register_at = "",
                               std::chrono::steady_clock::time_point* listening = nullptr,
                               std::chrono::steady_clock::time_point* registered = nullptr);

// Knot DNS on 127.0.0.1, serving test.com from the demo's directory, edited
// live with knotc.
class knot_dns {
 public:
  /// Serves an SRV record (and an A record) for each (host, port).
  knot_dns(const std::string& dir,
           const std::vector<std::pair<std::string, unsigned short>>& served);

  unsigned short port() const { return port_; }
  pid_t pid() const { return process_->pid(); }
  void stop() { process_->stop(); }

  /// One atomic change of the zone; throws with knotc's words on failure.
  void add(const std::vector<std::string>& records);

 private:
  // Whether knotd answers for the zone, within 5 s.
  bool answers();
  void knotc(const std::vector<std::string>& args);

  std::string dir_;
  unsigned short port_ = 0;
  std::unique_ptr<child> process_;
};

}  // namespace qorb::demo
