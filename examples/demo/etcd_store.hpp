// SPDX-License-Identifier: BSL-1.0
// The demo's etcd: one member on 127.0.0.1 (free client and peer ports, a
// data directory in the demo's scratch directory), stopped by PID.
#pragma once

#include "processes.hpp"

#include <memory>
#include <string>

namespace qorb::demo {

class etcd_store {
 public:
  /// Starts the member and waits until it is healthy; throws with its log
  /// when it is not within 15 s.
  explicit etcd_store(const std::string& dir);

  /// "http://127.0.0.1:PORT" (the client URL).
  const std::string& url() const { return url_; }
  pid_t pid() const { return process_->pid(); }
  void stop() { process_->stop(); }

 private:
  bool healthy();

  std::string dir_;
  std::string url_;
  std::unique_ptr<child> process_;
};

}  // namespace qorb::demo
