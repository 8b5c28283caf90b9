// pg_workload run as a process, as a careless user would: a policy value
// out of range is one clear line and exit status 2 (it was an uncaught
// invalid_policy: abort, status 134), and --help works.
#include "support/wait.hpp"

#include <gtest/gtest.h>

namespace qorb::test {
namespace {

const std::string pg_workload = QORB_PG_WORKLOAD_PATH;

TEST(PgWorkloadErrors, MaxSlotsZeroIsOneClearLineAndStatusTwo) {
  std::string out;
  EXPECT_EQ(run_command({pg_workload, "--backend", "127.0.0.1:1", "--max-slots", "0"}, &out, 30s),
            2)
      << out;
  EXPECT_EQ(out.rfind("pg_workload: --max-slots: qorb: invalid policy: max_slots must be at least 1\n",
                      0),
            0u)
      << out;
  EXPECT_EQ(out.find("terminate called"), std::string::npos) << out;
}

TEST(PgWorkloadErrors, HelpPrintsUsageAndExitStatusesAndExitsZero) {
  for (const char* flag : {"--help", "-h"}) {
    std::string out;
    EXPECT_EQ(run_command({pg_workload, flag}, &out, 30s), 0) << out;
    EXPECT_EQ(out.rfind("usage: pg_workload", 0), 0u) << out;
    EXPECT_NE(out.find("Exit status: 0 when the run completed, 2 on bad arguments"),
              std::string::npos)
        << out;
    EXPECT_EQ(out.find("unknown option"), std::string::npos) << out;
  }
}

}  // namespace
}  // namespace qorb::test
