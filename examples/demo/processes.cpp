// SPDX-License-Identifier: BSL-1.0
#include "processes.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <system_error>
#include <utility>

namespace qorb::demo {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

std::string find_program(const std::string& program) {
  if (program.find('/') != std::string::npos) {
    return ::access(program.c_str(), X_OK) == 0 ? program : "";
  }
  const char* path = std::getenv("PATH");
  std::istringstream dirs(std::string(path != nullptr ? path : "") + ":/usr/sbin:/sbin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty()) continue;
    const auto candidate = dir + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

child::child(const std::vector<std::string>& argv, bool capture, const std::string& output_file) {
  const auto program = find_program(argv.at(0));
  if (program.empty()) {
    throw std::system_error(ENOENT, std::generic_category(), argv[0] + ": not found");
  }
  int fds[2] = {-1, -1};
  if (capture && ::pipe2(fds, O_CLOEXEC) != 0) {
    throw std::system_error(errno, std::generic_category(), "pipe");
  }
  const pid_t parent = ::getpid();
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int error = errno;
    if (capture) {
      ::close(fds[0]);
      ::close(fds[1]);
    }
    throw std::system_error(error, std::generic_category(), "fork");
  }
  if (pid == 0) {
    // The child: only async-signal-safe calls until exec.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the demo died already
    const int out = capture ? fds[1]
                            : ::open(output_file.empty() ? "/dev/null" : output_file.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out >= 0) {
      ::dup2(out, 1);
      ::dup2(out, 2);
    }
    ::execv(program.c_str(), args.data());
    ::_exit(127);
  }
  pid_ = pid;
  if (capture) {
    ::close(fds[1]);
    out_ = fds[0];
  }
}

child::~child() {
  stop();
  if (out_ >= 0) ::close(out_);
}

bool child::running() {
  if (status_ || pid_ < 0) return false;
  int status = 0;
  pid_t r = -1;
  do {
    r = ::waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    status_ = status;
    return false;
  }
  if (r < 0) {  // not our child any more (reaped elsewhere): never signal it again
    status_ = -1;
    return false;
  }
  return true;
}

std::optional<std::string> child::read_line(std::chrono::milliseconds timeout) {
  const auto deadline = steady::now() + timeout;
  while (out_ >= 0) {
    if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
      auto line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{out_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char chunk[512];
    const auto n = ::read(out_, chunk, sizeof chunk);
    if (n <= 0) {  // end of output: the last line may have no newline
      if (buffer_.empty()) return std::nullopt;
      return std::exchange(buffer_, std::string());
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
  return std::nullopt;
}

void child::signal(int signal) {
  if (running()) ::kill(pid_, signal);
}

int child::stop(std::chrono::milliseconds grace) {
  if (pid_ < 0) return -1;
  if (running()) {
    ::kill(pid_, SIGTERM);
    const auto deadline = steady::now() + grace;
    while (running() && steady::now() < deadline) ::usleep(5000);  // waitpid has no timeout
    if (running()) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      status_ = status;
    }
  }
  return status_.value_or(-1);
}

int run(const std::vector<std::string>& argv, std::string& output,
        std::chrono::milliseconds timeout) {
  output.clear();
  child c(argv, true);
  const auto deadline = steady::now() + timeout;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
    if (left.count() <= 0) break;
    auto line = c.read_line(left);
    if (!line) break;
    output += *line + "\n";
  }
  // Output closed (or time is up): it has exited, or it is stopped now.
  const auto deadline_exit = std::max(deadline, steady::now() + 1s);
  while (c.running() && steady::now() < deadline_exit) ::usleep(2000);
  const int status = c.stop();
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace qorb::demo
