// qorb-resolve --etcd against a real etcd, run as a process.
#include "support/etcd_server.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <sstream>

namespace {

using namespace qorb::test;

const std::string prefix = "/services/echo/";

#define REQUIRE_ETCD()                                           \
  do {                                                           \
    std::string why_;                                            \
    if (!etcd_cluster::available(why_)) GTEST_SKIP() << why_;    \
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
  EXPECT_NE(out.find("skipping key " + prefix + "bad"), std::string::npos) << out;  // warned

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

TEST(EtcdTool, BadArgumentsExitTwo) {
  std::string out;
  EXPECT_EQ(run_command({QORB_RESOLVE_PATH, "--etcd", "http://127.0.0.1:2379"}, &out), 2);
  EXPECT_NE(out.find("needs a PREFIX"), std::string::npos) << out;
  EXPECT_EQ(run_command({QORB_RESOLVE_PATH, "--etcd", "etcd:2379", "/p/"}, &out), 2);
  EXPECT_NE(out.find("is not an http:// URL"), std::string::npos) << out;
  EXPECT_EQ(run_command({QORB_RESOLVE_PATH, "--etcd", "http://127.0.0.1:1", "--family", "v4",
                         "/p/"},
                        &out),
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
