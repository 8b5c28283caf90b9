// SPDX-License-Identifier: BSL-1.0
// qorb-resolve --etcd against a real etcd, run as a process.
#include "support/etcd_server.hpp"
#include "support/require_tool.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <regex>
#include <sstream>

namespace {

using namespace qorb::test;

const std::string prefix = "/services/echo/";

#define REQUIRE_ETCD()                                                             \
  do {                                                                             \
    std::string why_;                                                              \
    if (!etcd_cluster::available(why_)) QORB_MISSING_TOOL("etcd") << ": " << why_; \
  } while (false)

TEST(EtcdTool, OneShotPrintsTheBackendsAsTextOrJson) {
  REQUIRE_ETCD();
  etcd_cluster etcd;
  etcd.put(prefix + "a", "127.0.0.1:6001");
  etcd.put(prefix + "b", "[::1]:6002");
  etcd.put(prefix + "bad", "nonsense");
  std::string out;
  ASSERT_EQ(run_command({QORB_RESOLVE_PATH, "--etcd", etcd.urls(), prefix}, &out), 0) << out;
  EXPECT_NE(out.find("a@127.0.0.1:6001 127.0.0.1 6001\n"), std::string::npos) << out;
  EXPECT_NE(out.find("b@[::1]:6002 ::1 6002\n"), std::string::npos) << out;
  // A one-shot run prints the backends alone; the resolver's warnings come
  // with QORB_LOG.
  EXPECT_EQ(out.find("skipping key"), std::string::npos) << out;
  ASSERT_EQ(
      run_command({"env", "QORB_LOG=warn", QORB_RESOLVE_PATH, "--etcd", etcd.urls(), prefix}, &out),
      0)
      << out;
  EXPECT_NE(out.find("skipping key " + prefix + "bad"), std::string::npos) << out;

  ASSERT_EQ(run_command({QORB_RESOLVE_PATH, "--etcd", etcd.urls() + prefix, "--json"}, &out), 0);
  EXPECT_NE(out.find(R"([{"name":"a@127.0.0.1:6001","address":"127.0.0.1","port":6001},)"
                     R"({"name":"b@[::1]:6002","address":"::1","port":6002}])"),
            std::string::npos)
      << out;
}

TEST(EtcdTool, NoBackendsOrNoMemberExitsOne) {
  REQUIRE_ETCD();
  etcd_cluster etcd;
  std::string out;
  EXPECT_EQ(run_command({QORB_RESOLVE_PATH, "--etcd", etcd.urls(), prefix}, &out), 1);
  EXPECT_NE(out.find("no backends under " + prefix), std::string::npos) << out;
  const auto nobody = "http://127.0.0.1:" + std::to_string(free_port());
  EXPECT_EQ(run_command({QORB_RESOLVE_PATH, "--etcd", nobody, "--timeout", "0.5", prefix}, &out),
            1);
  EXPECT_NE(out.find("no etcd member answered"), std::string::npos) << out;
  EXPECT_NE(out.find("connect"), std::string::npos) << out;
}

// A loopback TCP port that takes connections and never answers: an etcd
// member that hangs every request.
class silent_member {
 public:
  silent_member() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd_ < 0 || ::fcntl(fd_, F_SETFL, O_NONBLOCK) != 0 ||
        ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd_, 4) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
  }
  ~silent_member() {
    for (int c : clients_) ::close(c);
    if (fd_ >= 0) ::close(fd_);
  }
  silent_member(const silent_member&) = delete;
  silent_member& operator=(const silent_member&) = delete;
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  unsigned short port() const { return port_; }
  /// Whether a client has connected (kept open, never answered).
  bool client_connected() {
    const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0) return false;
    clients_.push_back(c);
    return true;
  }

 private:
  int fd_ = -1;
  unsigned short port_ = 0;
  std::vector<int> clients_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct interrupted_run {
  int status = -1;  // the wait status; -1 when the read never started
  std::chrono::milliseconds took{};
  std::string output;  // stdout and stderr
};

// Runs a one-shot `qorb-resolve --etcd` against a member that never answers
// (a 60 s request timeout: the run alone would last 121 s), sends `signal`
// `copies` times once its request is under way (its signal handler is in
// place before it connects), and times the exit.
interrupted_run interrupt_one_shot(int signal, int copies) {
  silent_member member;
  interrupted_run r;
  if (member.port() == 0) return r;
  temp_dir dir("qorb-etcd-tool");
  const auto log = dir.path() + "/out";
  child_process p({"sh", "-c", "exec \"$@\" >\"$0\" 2>&1", log, QORB_RESOLVE_PATH, "--etcd",
                   member.url(), "--timeout", "60", prefix});
  if (!wait_until([&] { return member.client_connected(); }, 20s)) {
    r.output = read_file(log);
    return r;
  }
  const auto start = std::chrono::steady_clock::now();
  // As coreutils' `timeout` does: a copy to the process, one to its group.
  for (int i = 1; i < copies; ++i) ::kill(p.pid(), signal);
  r.status = p.stop(signal, 10s);
  r.took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start);
  r.output = read_file(log);
  return r;
}

// The one-shot read ignored SIGINT and SIGTERM: it ended after its whole
// backstop (2 x --timeout + 1 s).
TEST(EtcdTool, SigintEndsAOneShotReadAtOnce) {
  const auto r = interrupt_one_shot(SIGINT, 1);
  ASSERT_NE(r.status, -1) << "never connected: " << r.output;
  ASSERT_TRUE(WIFEXITED(r.status)) << "status " << r.status << ": " << r.output;
  EXPECT_EQ(WEXITSTATUS(r.status), 130) << r.output;
  EXPECT_LT(r.took, 3s) << r.output;
  // Its own line and nothing else: the tool, not the default action, ended it.
  EXPECT_EQ(r.output,
            "qorb-resolve: interrupted (SIGINT) before the read of " + prefix + " ended\n");
}

TEST(EtcdTool, SigtermEndsAOneShotReadAtOnceAlsoWhenItComesTwice) {
  const auto r = interrupt_one_shot(SIGTERM, 2);
  ASSERT_NE(r.status, -1) << "never connected: " << r.output;
  ASSERT_TRUE(WIFEXITED(r.status)) << "status " << r.status << ": " << r.output;
  EXPECT_EQ(WEXITSTATUS(r.status), 143) << r.output;
  EXPECT_LT(r.took, 3s) << r.output;
  EXPECT_EQ(r.output,
            "qorb-resolve: interrupted (SIGTERM) before the read of " + prefix + " ended\n");
}

// The one-shot printed the resolver's timestamped warnings (each failed
// try) before its one-line error.
TEST(EtcdTool, AOneShotFailureIsItsOneLineAlone) {
  const auto port = std::to_string(free_port());  // nobody listens there
  std::string out;
  EXPECT_EQ(run_command({QORB_RESOLVE_PATH, "--etcd", "http://127.0.0.1:" + port, "--timeout",
                         "0.3", prefix},
                        &out),
            1);
  const std::regex one_line("qorb-resolve: no etcd member answered for " + prefix +
                            " \\(last tried 127\\.0\\.0\\.1:" + port +
                            ": [^\n]*connect[^\n]*\\)\n");
  EXPECT_TRUE(std::regex_match(out, one_line)) << out;
  // With QORB_LOG the resolver's own log is there too.
  EXPECT_EQ(run_command({"env", "QORB_LOG=warn", QORB_RESOLVE_PATH, "--etcd",
                         "http://127.0.0.1:" + port, "--timeout", "0.3", prefix},
                        &out),
            1);
  EXPECT_GT(std::count(out.begin(), out.end(), '\n'), 1) << out;
}

TEST(EtcdTool, BadArgumentsExitTwo) {
  std::string out;
  EXPECT_EQ(run_command({QORB_RESOLVE_PATH, "--etcd", "http://127.0.0.1:2379"}, &out), 2);
  EXPECT_NE(out.find("needs a PREFIX"), std::string::npos) << out;
  EXPECT_EQ(run_command({QORB_RESOLVE_PATH, "--etcd", "etcd:2379", "/p/"}, &out), 2);
  EXPECT_NE(out.find("is not an http:// URL"), std::string::npos) << out;
  EXPECT_EQ(run_command(
                {QORB_RESOLVE_PATH, "--etcd", "http://127.0.0.1:1", "--family", "v4", "/p/"}, &out),
            2);
  EXPECT_NE(out.find("--family does not apply"), std::string::npos) << out;
}

TEST(EtcdTool, WatchPrintsEveryChange) {
  REQUIRE_ETCD();
  etcd_cluster etcd;
  temp_dir dir("qorb-etcd-tool");
  const auto log = dir.path() + "/out";
  etcd.put(prefix + "a", "127.0.0.1:6001");
  child_process watch({"sh", "-c", "exec \"$@\" >\"$0\" 2>&1", log, QORB_RESOLVE_PATH, "--etcd",
                       etcd.urls(), "--watch", prefix});
  const auto output = [&] {
    std::ifstream in(log);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  ASSERT_TRUE(wait_until([&] { return output().find("a@127.0.0.1:6001") != std::string::npos; }))
      << output();
  etcd.put(prefix + "b", "127.0.0.1:6002");
  ASSERT_TRUE(wait_until([&] { return output().find("b@127.0.0.1:6002") != std::string::npos; }))
      << output();
  etcd.del(prefix + "a");
  // The third set, b alone: four lines in all (a; a, b; b).
  ASSERT_TRUE(wait_until([&] {
    const auto o = output();
    return std::count(o.begin(), o.end(), '\n') == 4 &&
           o.ends_with("\nb@127.0.0.1:6002 127.0.0.1 6002\n");
  })) << output();
  const int status = watch.stop(SIGINT);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

}  // namespace
