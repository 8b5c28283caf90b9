// SPDX-License-Identifier: BSL-1.0
// tcp_connector's user_timeout and keep-alive settings against a host that
// vanished without a FIN or an RST: in a network namespace of its own (a
// forked child that unshares its network; only its loopback exists), a
// connection is made to a local server and then every packet on loopback
// is dropped (`tc qdisc add dev lo root blackhole`). A claimed connection
// with data in flight errors within user_timeout, one without it does not
// within the same bound; an idle one errors after its keep-alive probes.
// Skipped only when no namespace can be made (not root).
#include <qorb/connectors/tcp.hpp>

#include "support/nginx_server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <string>

namespace qorb::test {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;

constexpr int cannot_unshare = 77;

// In the child, in its own network namespace: loopback up, a connection
// made with `config`, then all loopback traffic dropped; waits up to
// `bound` for the connection to report an error (after writing to it when
// `write` is set). What happened, as a line.
std::string scenario(const tcp_connector_config& config, bool write,
                     std::chrono::milliseconds bound) {
  const int control = ::socket(AF_INET, SOCK_DGRAM, 0);
  ifreq lo{};
  std::strcpy(lo.ifr_name, "lo");
  if (control < 0 || ::ioctl(control, SIOCGIFFLAGS, &lo) != 0) return "SIOCGIFFLAGS failed";
  lo.ifr_flags = static_cast<short>(lo.ifr_flags | IFF_UP);
  if (::ioctl(control, SIOCSIFFLAGS, &lo) != 0) return "cannot bring lo up";
  ::close(control);

  asio::io_context io;
  tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  tcp_connector connector(config);
  std::optional<tcp::socket> client;
  std::string failure;
  const auto target = backend_of(acceptor.local_endpoint());
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { client.emplace(co_await connector.connect(target)); },
      [&](std::exception_ptr e) {
        if (e) failure = "connect failed";
      });
  io.run();
  if (!client) return failure;
  tcp::socket server(io);
  acceptor.accept(server);
  // The host vanishes: nothing on loopback arrives any more.
  if (std::system("tc qdisc add dev lo root blackhole") != 0) return "tc failed (iproute2?)";
  const int fd = client->native_handle();
  const auto start = clock::now();
  if (write && ::send(fd, "request", 7, MSG_NOSIGNAL) != 7) return "send failed";
  pollfd p{fd, POLLIN, 0};
  const int ready = ::poll(&p, 1, static_cast<int>(bound.count()));
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start);
  if (ready == 0) return "no error within " + std::to_string(bound.count()) + " ms";
  char byte;
  const auto n = ::recv(fd, &byte, 1, MSG_DONTWAIT);
  std::string out = "error after " + std::to_string(waited.count()) + " ms: ";
  out += n < 0 ? std::strerror(errno) : "no error (data or end of file)";
  return out;
}

// Runs `scenario` in a forked child that unshares its network namespace;
// the child's line, or nullopt when it could not unshare (then the test is
// skipped).
std::optional<std::string> in_namespace(const tcp_connector_config& config, bool write,
                                        std::chrono::milliseconds bound) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return "pipe failed";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(out[0]);
    if (::unshare(CLONE_NEWNET) != 0) ::_exit(cannot_unshare);
    std::string line;
    try {
      line = scenario(config, write, bound);
    } catch (const std::exception& e) {
      line = std::string("threw: ") + e.what();
    }
    (void)!::write(out[1], line.data(), line.size());
    ::_exit(0);
  }
  ::close(out[1]);
  std::string line;
  pollfd p{out[0], POLLIN, 0};
  const auto deadline = clock::now() + bound + 20s;
  while (clock::now() < deadline) {  // until the child closes the pipe
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buffer[256];
    const auto n = ::read(out[0], buffer, sizeof buffer);
    if (n <= 0) break;
    line.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  ::kill(pid, SIGKILL);  // ended already unless it hung
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == cannot_unshare) return std::nullopt;
  return line;
}

#define QORB_IN_NAMESPACE(result, config, write, bound)                     \
  const auto result = in_namespace(config, write, bound);                   \
  if (!result)                                                              \
  GTEST_SKIP() << "cannot make a network namespace (unshare(CLONE_NEWNET) " \
                  "needs root or CAP_SYS_ADMIN)"

TEST(TcpUserTimeout, AClaimedConnectionToAVanishedHostErrorsWithinIt) {
  tcp_connector_config config;
  config.user_timeout = 500ms;
  QORB_IN_NAMESPACE(result, config, true, 3000ms);
  EXPECT_EQ(result->rfind("error after ", 0), 0u) << *result;
  EXPECT_NE(result->find(std::strerror(ETIMEDOUT)), std::string::npos) << *result;
  std::printf("user_timeout 500 ms: %s\n", result->c_str());
}

TEST(TcpUserTimeout, WithoutItTheSameConnectionHangsPastTheBound) {
  tcp_connector_config config;  // the default: no user_timeout
  QORB_IN_NAMESPACE(result, config, true, 3000ms);
  EXPECT_EQ(*result, "no error within 3000 ms");
}

TEST(TcpKeepalive, AnIdleConnectionToAVanishedHostErrorsAfterItsProbes) {
  tcp_connector_config config;
  config.keepalive_idle = 1s;
  config.keepalive_interval = 1s;
  config.keepalive_count = 2;
  QORB_IN_NAMESPACE(result, config, false, 6000ms);
  EXPECT_EQ(result->rfind("error after ", 0), 0u) << *result;
  EXPECT_NE(result->find(std::strerror(ETIMEDOUT)), std::string::npos) << *result;
  std::printf("keep-alive 1 s + 2 x 1 s: %s\n", result->c_str());
}

}  // namespace
}  // namespace qorb::test
