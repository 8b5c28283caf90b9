// SPDX-License-Identifier: BSL-1.0
// The demo's story on etcd (--discovery etcd), run as a user without a
// terminal would, with a short duration: the servers register themselves,
// one is killed, one registers late, one is stopped cleanly; the summary
// prints the figures and the run exits 0 with every process stopped.
#include "support/etcd_server.hpp"
#include "support/require_tool.hpp"

#include <gtest/gtest.h>

#include <regex>

namespace {

using namespace qorb::test;

TEST(EtcdDemo, TellsTheStoryWithSelfRegisteringServers) {
  std::string why;
  if (!etcd_cluster::available(why)) QORB_MISSING_TOOL("etcd") << ": " << why;
  std::string out;
  const int rc = run_command(
      {QORB_DEMO_PATH, "--discovery", "etcd", "--duration", "6", "--plain", "--claimers", "4"},
      &out, 90s);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("started etcd (pid "), std::string::npos) << out;
  EXPECT_NE(out.find("STORY: started echo004"), std::string::npos) << out;
  for (const char* figure :
       {R"(kill -> no more claims to the dead backend: +\d+ ms)",
        R"(kill -> the dead backend left the set: +\d+ ms +\(its lease expired; TTL 3 s\))",
        R"(registration -> the new backend served a claim: +\d+ ms)",
        R"(clean stop -> the backend left the set: +\d+ ms)"}) {
    EXPECT_TRUE(std::regex_search(out, std::regex(figure))) << figure << "\n" << out;
  }
  EXPECT_NE(out.find("result: OK"), std::string::npos) << out;
}

TEST(EtcdDemo, RefusesAnUnknownDiscovery) {
  std::string out;
  EXPECT_EQ(run_command({QORB_DEMO_PATH, "--discovery", "zookeeper"}, &out, 30s), 2) << out;
  EXPECT_NE(out.find("--discovery must be dns or etcd"), std::string::npos) << out;
}

}  // namespace
