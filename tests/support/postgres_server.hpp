// SPDX-License-Identifier: BSL-1.0
// Real PostgreSQL servers for tests: on 127.0.0.1, a free port, run as
// direct children of the test and stopped by PID.
#pragma once

#include "support/wait.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <string>

namespace qorb::test {

/// One PostgreSQL server with its own data directory, a copy of a cluster
/// made by initdb once and cached (per build directory, under a file lock,
/// shared by every test process; without a cache directory, once per
/// process). Started by the constructor; stopped (fast shutdown, then
/// SIGKILL) by PID in the destructor, also when a test fails.
///
/// Superuser "postgres": `trust` on the Unix socket, SCRAM password
/// `password` over TCP, so bad credentials can be tested. Runs as the
/// `postgres` system user when the test runs as root (initdb refuses root).
/// If the thread that started the server dies (a crashed test), the server
/// gets SIGTERM (parent-death signal) and shuts down.
class postgres_server {
 public:
  static constexpr const char* user = "postgres";
  static constexpr const char* password = "qorb-test-pw-7d1c";

  postgres_server();
  postgres_server(const postgres_server&) = delete;
  postgres_server& operator=(const postgres_server&) = delete;
  ~postgres_server();

  unsigned short port() const noexcept { return port_; }
  boost::asio::ip::tcp::endpoint endpoint() const;

  /// Starts the server (on the same port and data as before) and waits until
  /// it accepts connections; throws if it does not within 30 s.
  void start();
  /// Fast shutdown (clients disconnected), waits for the process to exit.
  void stop();
  bool running() { return process_.running(); }

  /// Runs `sql` on a new blocking connection over TCP (the test's own
  /// administrative side, never the code under test) and returns the first
  /// value of the first row, or "" when there is none; throws on error.
  std::string query(const std::string& sql) const;

  /// The server's log file (stdout and stderr).
  std::string log_path() const { return dir_.path() + "/log"; }

 private:
  temp_dir dir_;
  unsigned short port_ = 0;
  child_process process_;
};

}  // namespace qorb::test
