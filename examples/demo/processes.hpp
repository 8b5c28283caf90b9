// SPDX-License-Identifier: BSL-1.0
// The processes the demo starts: each in its own process group (Ctrl-C
// reaches the demo only, which then stops them in order), killed by the
// kernel if the demo itself dies, and stopped by PID.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace qorb::demo {

class child {
 public:
  /// Starts `argv` (argv[0] searched in PATH, then /usr/sbin and /sbin,
  /// where Debian puts knotd and knotc). Its stdout comes to the demo through
  /// a pipe (read it with `read_line`) when `capture` is set, else goes to
  /// `output_file` (or /dev/null when empty); stderr goes there too. Throws
  /// std::system_error when it cannot start.
  child(const std::vector<std::string>& argv, bool capture, const std::string& output_file = "");
  child(const child&) = delete;
  child& operator=(const child&) = delete;
  /// Stops it (see `stop`).
  ~child();

  pid_t pid() const noexcept { return pid_; }
  bool running();
  /// The next line of its stdout, waiting at most `timeout`; nothing on
  /// timeout or end of output.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  /// Sends `signal` (without waiting).
  void signal(int signal);
  /// SIGTERM, then SIGKILL after `grace`; waits and returns the wait status
  /// (-1 if it was already reaped).
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(3));

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string buffer_;
  std::optional<int> status_;
};

/// The full path of `program` (PATH, then /usr/sbin and /sbin), or empty.
std::string find_program(const std::string& program);

/// The whole of the file at `path` (a child's log), empty if unreadable.
std::string read_file(const std::string& path);

/// Runs `argv` to completion, at most `timeout` (then killed); returns the
/// exit status (-1 when it did not exit by itself) and its output.
int run(const std::vector<std::string>& argv, std::string& output,
        std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace qorb::demo
