// SPDX-License-Identifier: BSL-1.0
// Real etcd members for tests: on 127.0.0.1, free ports, a temporary data
// directory each, run as direct children of the test and stopped by PID.
#pragma once

#include "support/wait.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace qorb::test {

/// A cluster of `members` etcd processes (1 or 3 in the tests), started by
/// the constructor (unless `start_now` is false) and waited for until each
/// reports healthy; every member is stopped by its PID in the destructor,
/// also when a test fails. Raft runs with etcd's default timings (heartbeat
/// 100 ms, election 1 s): shorter ones make elections flap on a loaded
/// machine.
///
/// The test's own writes go through `etcdctl` (etcd's own client), never
/// through the code under test.
class etcd_cluster {
 public:
  explicit etcd_cluster(std::size_t members = 1, bool start_now = true);
  etcd_cluster(const etcd_cluster&) = delete;
  etcd_cluster& operator=(const etcd_cluster&) = delete;
  ~etcd_cluster();

  /// Whether /usr/bin/etcd and etcdctl are installed (tests skip without).
  static bool available(std::string& why);

  std::size_t size() const noexcept { return members_.size(); }
  boost::asio::ip::tcp::endpoint client(std::size_t member) const;
  std::vector<boost::asio::ip::tcp::endpoint> clients() const;
  /// "http://127.0.0.1:C1,http://127.0.0.1:C2,..." (every member).
  std::string urls() const;

  /// Starts every member not running and waits until each is healthy;
  /// throws (with the logs) when they are not within 30 s.
  void start();
  /// Stops member `i` with `signal` (SIGKILL by default) and reaps it.
  void kill(std::size_t member, int signal = 9);
  bool running(std::size_t member);
  /// GET /health on member `i` says true.
  bool healthy(std::size_t member) const;

  /// etcdctl on the running members; throws with its output on failure,
  /// returns its output.
  std::string ctl(const std::vector<std::string>& args);
  void put(const std::string& key, const std::string& value);
  void del(const std::string& key);
  /// The store's current revision.
  std::int64_t revision();
  /// Compacts the history up to `revision`, physically (--physical).
  void compact(std::int64_t revision);

  /// Every member's log, for failure messages.
  std::string logs() const;

 private:
  struct process_slot {
    std::string name;
    unsigned short client_port = 0;
    unsigned short peer_port = 0;
    child_process process;
  };
  void spawn(process_slot& m);

  temp_dir dir_;
  std::vector<process_slot> members_;
  bool started_once_ = false;
};

}  // namespace qorb::test
