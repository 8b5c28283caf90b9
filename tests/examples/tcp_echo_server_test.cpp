// SPDX-License-Identifier: BSL-1.0
// The tcp_echo_server example, run as a process the way a user or a script
// runs it: its stdout read through a pipe to learn the port, many clients at
// once, stopped by a signal.
#include "support/wait.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <cerrno>
#include <memory>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

extern char** environ;

namespace qorb::test {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

const std::string server_path = TCP_ECHO_SERVER_PATH;

// A child process whose stdout is a pipe this test reads (stderr is
// inherited). Killed and reaped on destruction, also when a test fails.
class piped_child {
 public:
  explicit piped_child(const std::vector<std::string>& argv) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category());
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);  // dup2 clears O_CLOEXEC
    const int rc = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);  // the child holds the only write end: EOF when it exits
    read_fd_ = fds[0];
    if (rc != 0) {
      ::close(read_fd_);
      throw std::system_error(rc, std::generic_category(), "posix_spawn " + argv[0]);
    }
  }
  piped_child(const piped_child&) = delete;
  piped_child& operator=(const piped_child&) = delete;
  ~piped_child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    ::close(read_fd_);
  }

  /// The next line of stdout (without '\n'), or nullopt at EOF or timeout.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      if (!fill(deadline)) return std::nullopt;
    }
  }

  /// Everything stdout still says until EOF (bounded by `timeout`).
  std::string read_to_end(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (fill(deadline)) {
    }
    return std::exchange(buffer_, {});
  }

  /// Sends `signal` and waits up to `timeout` for the exit; returns the wait
  /// status, or nullopt if the process is still running.
  std::optional<int> signal_and_wait(int signal, std::chrono::milliseconds timeout) {
    ::kill(pid_, signal);
    std::optional<int> result;
    wait_until(
        [&] {
          int status = 0;
          if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
          result = status;
          pid_ = -1;
          return true;
        },
        timeout);
    return result;
  }

 private:
  // Reads what is there; false at EOF, on error or at the deadline.
  bool fill(std::chrono::steady_clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{read_fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) return true;
    if (r <= 0) return false;
    char buf[1024];
    const ssize_t n = ::read(read_fd_, buf, sizeof buf);
    if (n <= 0) return false;
    buffer_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  int read_fd_ = -1;
  std::string buffer_;
};

// Starts the server with `args` and reads its first line, which must be
// `listening on <address>:PORT` with a real port; returns the port.
unsigned short start_and_read_port(piped_child& child, const std::string& address_pattern) {
  const auto line = child.read_line(10s);
  if (!line) {
    ADD_FAILURE() << "no 'listening on' line within 10 s";
    return 0;
  }
  const std::regex expected("listening on " + address_pattern + ":([0-9]+)");
  std::smatch m;
  if (!std::regex_match(*line, m, expected)) {
    ADD_FAILURE() << "first line: '" << *line << "'";
    return 0;
  }
  const int port = std::stoi(m[1]);
  EXPECT_GT(port, 0);
  EXPECT_LT(port, 65536);
  return static_cast<unsigned short>(port);
}

// Whether a line of `out` starts with "listening on" (the usage mentions it
// mid-line).
bool says_listening(const std::string& out) {
  return out.rfind("listening on", 0) == 0 || out.find("\nlistening on") != std::string::npos;
}

bool exited_zero(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

// Clients that stay connected all at the same time, each echoing its own
// messages; run on one io thread, every step bounded by the caller's
// run_for.
struct clients {
  static constexpr int count = 50;
  static constexpr int messages = 5;

  asio::io_context io;
  asio::steady_timer all_connected{io, asio::steady_timer::time_point::max()};
  std::vector<std::unique_ptr<tcp::socket>> sockets;
  int connected = 0;
  int finished = 0;  // clients whose every message came back intact
  std::vector<std::string> failures;

  asio::awaitable<void> client(int id, tcp::endpoint server) {
    auto& socket = *sockets.emplace_back(std::make_unique<tcp::socket>(io));
    auto [cerr] = co_await socket.async_connect(server, asio::as_tuple(asio::use_awaitable));
    if (cerr) {
      failures.push_back("client " + std::to_string(id) + " connect: " + cerr.message());
      co_return;
    }
    // Nobody echoes before all are connected: the server holds 50
    // connections at once.
    if (++connected == count) {
      all_connected.cancel();
    } else {
      co_await all_connected.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    for (int m = 0; m < messages; ++m) {
      // Different lengths, up to a few KiB so some take more than one read.
      const std::string message = "client " + std::to_string(id) + " message " + std::to_string(m) +
                                  " " +
                                  std::string(static_cast<std::size_t>(id * 97 + m * 31), 'x');
      std::string back(message.size(), '\0');
      auto [werr, wn] = co_await asio::async_write(socket, asio::buffer(message),
                                                   asio::as_tuple(asio::use_awaitable));
      auto [rerr, rn] = co_await asio::async_read(socket, asio::buffer(back),
                                                  asio::as_tuple(asio::use_awaitable));
      if (werr || rerr || back != message) {
        failures.push_back("client " + std::to_string(id) + " message " + std::to_string(m) + ": " +
                           (werr   ? werr.message()
                            : rerr ? rerr.message()
                                   : "wrong echo"));
        co_return;
      }
    }
    ++finished;
  }

  void run(tcp::endpoint server, std::chrono::seconds timeout) {
    sockets.reserve(count);
    for (int id = 0; id < count; ++id) asio::co_spawn(io, client(id, server), asio::detached);
    io.run_for(timeout);
  }
};

TEST(TcpEchoServerExample, EchoesFiftyClientsAtOnceAndStopsCleanlyOnSigterm) {
  piped_child server({server_path, "127.0.0.1:0"});
  const auto port = start_and_read_port(server, R"(127\.0\.0\.1)");
  ASSERT_NE(port, 0);
  const tcp::endpoint endpoint(asio::ip::make_address_v4("127.0.0.1"), port);

  clients c;
  c.run(endpoint, 30s);
  EXPECT_EQ(c.connected, clients::count);
  EXPECT_EQ(c.finished, clients::count);
  for (const auto& f : c.failures) ADD_FAILURE() << f;

  // SIGTERM with all 50 clients still connected: the server closes them,
  // says so and exits 0, promptly.
  const auto status = server.signal_and_wait(SIGTERM, 5s);
  ASSERT_TRUE(status.has_value()) << "still running 5 s after SIGTERM";
  EXPECT_TRUE(exited_zero(*status)) << "wait status " << *status;
  EXPECT_EQ(server.read_to_end(5s), "stopped\n");

  // Every connection was closed: each client reads EOF (or a reset).
  for (auto& s : c.sockets) {
    if (!s->is_open()) continue;  // its connect failed: reported above
    char byte = 0;
    boost::system::error_code ec;
    s->read_some(asio::buffer(&byte, 1), ec);  // closed: returns at once
    EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
  }

  // Nothing listens on the port any more.
  asio::io_context io;
  tcp::socket probe(io);
  boost::system::error_code ec;
  probe.connect(endpoint, ec);
  EXPECT_EQ(ec, asio::error::connection_refused) << ec.message();
}

TEST(TcpEchoServerExample, WithoutArgumentsListensOnIpv6LoopbackAndStopsOnSigint) {
  piped_child server({server_path});
  const auto port = start_and_read_port(server, R"(\[::1\])");
  ASSERT_NE(port, 0);

  asio::io_context io;
  tcp::socket socket(io);
  socket.connect({asio::ip::address_v6::loopback(), port});
  const std::string message = "over IPv6";
  asio::write(socket, asio::buffer(message));
  std::string back(message.size(), '\0');
  asio::read(socket, asio::buffer(back));
  EXPECT_EQ(back, message);

  const auto status = server.signal_and_wait(SIGINT, 5s);
  ASSERT_TRUE(status.has_value()) << "still running 5 s after SIGINT";
  EXPECT_TRUE(exited_zero(*status)) << "wait status " << *status;
  EXPECT_EQ(server.read_to_end(5s), "stopped\n");
}

TEST(TcpEchoServerExample, ExitsOneNamingTheAddressWhenThePortIsInUse) {
  asio::io_context io;
  tcp::acceptor taken(io, tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0));
  const auto where = "127.0.0.1:" + std::to_string(taken.local_endpoint().port());

  std::string out;
  EXPECT_EQ(run_command({server_path, where}, &out, 10s), 1) << out;
  EXPECT_NE(out.find("cannot listen on " + where), std::string::npos) << out;
  EXPECT_NE(out.find("in use"), std::string::npos) << out;
  EXPECT_FALSE(says_listening(out)) << out;
}

TEST(TcpEchoServerExample, BadArgumentsExitTwoWithAReasonAndTheUsage) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"127.0.0.1"}, "has no :PORT"},
      {{"localhost:6001"}, "'localhost' is not an IP address"},
      {{"::1:6001"}, "put an IPv6 address in brackets"},
      {{"[::1]:65536"}, "'65536' is not a port"},
      {{"127.0.0.1:http"}, "'http' is not a port"},
      {{"--port", "6001"}, "unknown option --port"},
      {{"127.0.0.1:0", "[::1]:0"}, "only one ADDR:PORT"},
  };
  for (const auto& [args, reason] : cases) {
    std::vector<std::string> argv{server_path};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string out;
    EXPECT_EQ(run_command(argv, &out, 10s), 2) << args[0] << ": " << out;
    EXPECT_NE(out.find(reason), std::string::npos) << out;
    EXPECT_NE(out.find("usage: tcp_echo_server"), std::string::npos) << out;
    EXPECT_FALSE(says_listening(out)) << out;
  }
  std::string out;
  EXPECT_EQ(run_command({server_path, "--help"}, &out, 10s), 0) << out;
  EXPECT_EQ(out.rfind("usage: tcp_echo_server", 0), 0u) << out;
}

}  // namespace
}  // namespace qorb::test
