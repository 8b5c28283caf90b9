// SPDX-License-Identifier: BSL-1.0
// qorb-resolve, the command-line tool, run as a process against Knot.
#include "knot_server.hpp"
#include "resolver_harness.hpp"
#include "tcp_dns_server.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <regex>

namespace qorb::test {
namespace {

const std::string tool = QORB_RESOLVE_PATH;

int resolve(std::vector<std::string> args, std::string& output) {
  args.insert(args.begin(), tool);
  return run_command(args, &output, 30s);
}

TEST(QorbResolve, PrintsTheBackendsAndExitsZero) {
  knot_server knot("test.com",
                   "_echo._tcp 60 IN SRV 0 0 8080 b1\nb1 60 IN A 127.0.0.2\nb1 60 IN AAAA ::1\n");
  std::string out;
  ASSERT_EQ(resolve({"--server", knot.address(), "_echo._tcp.test.com"}, out), 0) << out;
  EXPECT_NE(out.find("b1.test.com@127.0.0.2:8080 127.0.0.2 8080 "), std::string::npos) << out;
  EXPECT_NE(out.find("b1.test.com@[::1]:8080 ::1 8080 "), std::string::npos) << out;

  ASSERT_EQ(resolve({"--server", "[::1]:" + std::to_string(knot.port()), "--family", "v4", "--json",
                     "_echo._tcp.test.com"},
                    out),
            0)
      << out;
  const std::regex json(
      R"(\[\{"name":"b1\.test\.com@127\.0\.0\.2:8080","address":"127\.0\.0\.2","port":8080,)"
      R"("ttl_remaining_s":(\d+)\}\]\n)");
  std::smatch m;
  ASSERT_TRUE(std::regex_match(out, m, json)) << out;
  EXPECT_LE(std::stoi(m[1]), 60);
  EXPECT_GE(std::stoi(m[1]), 55);
}

TEST(QorbResolve, ExitsOneWhenNothingIsFound) {
  knot_server knot("test.com", "b1 60 IN A 127.0.0.2\n");
  std::string out;
  EXPECT_EQ(resolve({"--server", knot.address(), "--json", "_none._tcp.test.com"}, out), 1);
  EXPECT_NE(out.find("[]"), std::string::npos) << out;
  EXPECT_NE(out.find("no backends found for _none._tcp.test.com"), std::string::npos) << out;
}

std::vector<std::string> lines_of(const std::string& out) {
  std::vector<std::string> lines;
  for (std::size_t start = 0, end; (end = out.find('\n', start)) != std::string::npos;
       start = end + 1) {
    if (end > start) lines.push_back(out.substr(start, end - start));
  }
  return lines;
}

// A UDP port on 127.0.0.1 that nobody listens on (bound, then closed).
unsigned short closed_udp_port() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), len);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST(QorbResolve, ExplainsAServerThatDoesNotAnswerInOneLineAndExitsThree) {
  silent_udp_server silent;
  std::string out;
  const std::string server =
      std::string("127.0.0.1:").append(std::to_string(silent.endpoint().port()));
  EXPECT_EQ(resolve({"--server", server, "--timeout", "0.3", "_echo._tcp.test.com"}, out), 3);
  const auto lines = lines_of(out);
  ASSERT_EQ(lines.size(), 1u) << out;
  EXPECT_NE(lines[0].find("qorb-resolve: no backends found for _echo._tcp.test.com: no DNS "
                          "server answered ("),
            std::string::npos)
      << out;
  EXPECT_NE(lines[0].find(server), std::string::npos) << out;
  EXPECT_NE(lines[0].find("Timeout"), std::string::npos) << out;
}

TEST(QorbResolve, AnUnreachableServerGetsOneClearLineNotTheLibrarysRetryWarning) {
  std::string out;
  const std::string server = std::string("127.0.0.1:").append(std::to_string(closed_udp_port()));
  EXPECT_EQ(resolve({"--server", server, "--timeout", "2", "_echo._tcp.test.com"}, out), 3);
  EXPECT_EQ(out.find("keeping the last known backends"), std::string::npos) << out;
  EXPECT_EQ(out.find("next try in"), std::string::npos) << out;
  const auto lines = lines_of(out);
  ASSERT_EQ(lines.size(), 1u) << out;
  EXPECT_NE(lines[0].find("no DNS server answered (" + server + ": "), std::string::npos) << out;
}

TEST(QorbResolve, SigtermEndsAOneShotLookupAtOnce) {
  silent_udp_server silent;  // the lookup alone would take its 60 s timeout
  std::string out;
  const auto start = std::chrono::steady_clock::now();
  const int status =
      run_command({"timeout", "--preserve-status", "-s", "TERM", "1", tool, "--server",
                   std::string("127.0.0.1:").append(std::to_string(silent.endpoint().port())),
                   "--timeout", "60", "_echo._tcp.test.com"},
                  &out, 50s);
  EXPECT_EQ(status, 128 + 15) << out;
  // Its own line, so the tool (not the default action) handled the signal.
  EXPECT_NE(out.find("qorb-resolve: interrupted (SIGTERM) before the lookup of "
                     "_echo._tcp.test.com ended"),
            std::string::npos)
      << out;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 50s);  // not the 60 s query timeout
}

TEST(QorbResolve, TheNByNAnswerIsCappedAndPrintedPromptly) {
  dns::tcp_dns_server server([](const dns::query_info& q) {
    if (q.qtype == 33) return dns::n_by_n_answer(q, 800);
    dns::response_spec s;
    s.id = q.id;
    s.qname = q.qname;
    s.qtype = q.qtype;
    return dns::build_response(s);
  });
  std::string out;
  // Generous bound: with the cost quadratic in the pairs this ran for minutes.
  ASSERT_EQ(resolve({"--server", server.address(), "--family", "v4", "_echo._tcp.test.com"}, out),
            0);
  const auto lines = lines_of(out);
  std::size_t backends = 0;
  for (const auto& line : lines) {
    if (line.rfind("t.test.com@127.1.", 0) == 0) ++backends;
  }
  EXPECT_EQ(backends, 4096u) << lines.size();
}

TEST(QorbResolve, WatchPrintsEveryChangeUntilInterrupted) {
  // z0's address has TTL 0: it comes and goes at every lookup.
  knot_server knot("test.com",
                   "_echo._tcp 60 IN SRV 0 0 8080 b1\n_echo._tcp 60 IN SRV 0 0 8080 z0\n"
                   "b1 60 IN A 127.0.0.2\nz0 0 IN A 127.0.0.3\n");
  std::string out;
  const int status =
      run_command({"timeout", "--preserve-status", "-s", "INT", "1.5", tool, "--watch", "--json",
                   "--interval", "0.2", "--server", knot.address(), "_echo._tcp.test.com"},
                  &out, 30s);
  EXPECT_EQ(status, 0) << out;  // b1 was there when interrupted
  std::vector<std::string> lines;
  for (std::size_t start = 0, end; (end = out.find('\n', start)) != std::string::npos;
       start = end + 1) {
    lines.push_back(out.substr(start, end - start));
  }
  ASSERT_GE(lines.size(), 3u) << out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const bool with_z0 = lines[i].find("z0.test.com@127.0.0.3:8080") != std::string::npos;
    EXPECT_EQ(with_z0, i % 2 == 0) << out;
    EXPECT_NE(lines[i].find("b1.test.com@127.0.0.2:8080"), std::string::npos) << out;
  }
}

TEST(QorbResolve, BadArgumentsExitTwoWithAReason) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{}, "missing NAME"},
      {{"--family", "v5", "x"}, "--family must be v4, v6 or both"},
      {{"--server", "dns.example.com", "x"}, "is not an IP address"},
      {{"--server"}, "--server needs IP:PORT"},
      {{"--timeout", "-1", "x"}, "--timeout needs a positive number"},
      {{"--bogus", "x"}, "unknown option --bogus"},
      {{"a", "b"}, "only one NAME"},
  };
  for (const auto& [args, reason] : cases) {
    std::string out;
    EXPECT_EQ(resolve(args, out), 2) << out;
    EXPECT_NE(out.find(reason), std::string::npos) << out;
    EXPECT_NE(out.find("usage: qorb-resolve"), std::string::npos) << out;
  }
  std::string out;
  EXPECT_EQ(resolve({"--help"}, out), 0);
  EXPECT_NE(out.find("usage: qorb-resolve"), std::string::npos);
  EXPECT_NE(out.find("Exit status: 0 when backends were found; 1 when"), std::string::npos);
  EXPECT_NE(out.find("3 when no DNS server answered"), std::string::npos);
}

}  // namespace
}  // namespace qorb::test
