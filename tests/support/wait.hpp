// SPDX-License-Identifier: BSL-1.0
// Bounded waiting for test events, and process control for real servers.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace qorb::test {

using namespace std::chrono_literals;

/// Polls `predicate` until it holds or `timeout` passes; returns whether it
/// held. Polling is how a test waits for an event in another thread or
/// process; the deadline bounds every wait.
bool wait_until(const std::function<bool()>& predicate, std::chrono::milliseconds timeout = 10s);

/// A free TCP or UDP port on loopback, by binding port 0 (a race with other
/// processes is possible; servers that fail to bind should retry).
unsigned short free_port(bool udp = false);

/// A child process started with posix_spawn, stopped by its PID (SIGTERM,
/// then SIGKILL after a grace period) and reaped with waitpid when the
/// object dies, also when a test fails.
class child_process {
 public:
  child_process() = default;
  /// Starts argv[0] (searched in PATH) with `argv`; throws on failure.
  explicit child_process(std::vector<std::string> argv);
  child_process(child_process&& other) noexcept;
  child_process& operator=(child_process&& other) noexcept;
  ~child_process();

  pid_t pid() const noexcept { return pid_; }
  bool running();
  /// Sends `signal`, waits up to `grace` for exit, then SIGKILL; returns the
  /// wait status (or -1 if there was no process).
  int stop(int signal = 15, std::chrono::milliseconds grace = 5s);

 private:
  pid_t pid_ = -1;
};

/// Runs a command to completion (bounded by `timeout`, then killed) and
/// returns its exit code; its stdout+stderr go to `output` when given.
int run_command(const std::vector<std::string>& argv, std::string* output = nullptr,
                std::chrono::milliseconds timeout = 60s);

/// A fresh temporary directory, removed with its contents on destruction.
class temp_dir {
 public:
  explicit temp_dir(const std::string& prefix = "qorb");
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir();
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

}  // namespace qorb::test
