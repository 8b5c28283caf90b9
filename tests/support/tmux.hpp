// SPDX-License-Identifier: BSL-1.0
// A tmux server of a test's own (its own socket), to run a terminal program
// as a person would and read its screen back; killed by that socket at the
// end, also when the test fails.
#pragma once

#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include "support/wait.hpp"

namespace qorb::test {

class tmux_server {
 public:
  /// `session`: the one session the test runs, named in `screen`.
  explicit tmux_server(std::string session) : session_(std::move(session)) {
    static std::atomic<int> counter{0};
    socket_ =
        "qorb-" + session_ + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  }
  ~tmux_server() { run(std::vector<std::string>{"kill-server"}); }
  tmux_server(const tmux_server&) = delete;
  tmux_server& operator=(const tmux_server&) = delete;

  int run(std::vector<std::string> args, std::string* out = nullptr) {
    std::vector<std::string> argv{"tmux", "-L", socket_, "-f", "/dev/null"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string ignored;
    return run_command(argv, out ? out : &ignored, 10s);
  }

  /// What the session's pane shows now (empty if it cannot be read).
  std::string screen() {
    std::string out;
    if (run({"capture-pane", "-p", "-t", session_}, &out) != 0) return {};
    return out;
  }

 private:
  std::string session_;
  std::string socket_;
};

inline bool tmux_installed() {
  std::string out;
  return run_command({"tmux", "-V"}, &out, 10s) == 0;
}

}  // namespace qorb::test
