// SPDX-License-Identifier: BSL-1.0
// tcp_echo_workload as its users run it: through a real Knot DNS server to
// real echo servers, in plain mode and in its interactive view under tmux.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "knot_server.hpp"
#include "support/echo_server.hpp"
#include "support/require_tool.hpp"
#include "support/tmux.hpp"
#include "support/wait.hpp"

namespace qorb::test {
namespace {

using ::testing::HasSubstr;

const std::string workload = QORB_WORKLOAD_PATH;

class Workload : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string records;
    for (int i = 1; i <= 2; ++i) {
      servers.push_back(std::make_unique<echo_server>());
      const auto host = "echo00" + std::to_string(i);
      records += "_echo._tcp 5 IN SRV 0 0 " + std::to_string(servers.back()->endpoint().port()) +
                 " " + host + "\n" + host + " 5 IN A 127.0.0.1\n";
    }
    knot = std::make_unique<knot_server>("test.com", records);
  }

  std::string bootstrap() const { return "--bootstrap=" + knot->address(); }
  std::string name(int i) const {
    return "echo00" + std::to_string(i + 1) + ".test.com@127.0.0.1:" +
           std::to_string(servers[static_cast<std::size_t>(i)]->endpoint().port());
  }

  std::vector<std::unique_ptr<echo_server>> servers;
  std::unique_ptr<knot_server> knot;
};

TEST_F(Workload, PlainModeClaimsThroughDnsFromEveryBackend) {
  std::string out;
  const int rc = run_command({workload, bootstrap(), "--claimers", "3", "--hold", "20", "--pause",
                              "0", "--duration", "3", "--stats-addr", "127.0.0.1:0"},
                             &out, 60s);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("stats: http://127.0.0.1:"));
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(std::regex_search(
        out, std::regex(std::regex_replace(name(i), std::regex(R"([.])"), R"(\.)") +
                        R"( +online +\d+ +\d+ +\d+ +\d+ +[1-9])")))
        << name(i) << " served no claim\n"
        << out;
    EXPECT_GT(servers[static_cast<std::size_t>(i)]->accepted(), 0u);
  }
  std::smatch totals;
  ASSERT_TRUE(
      std::regex_search(out, totals, std::regex(R"(claims: (\d+) ok, (\d+) server failures)")))
      << out;
  EXPECT_GT(std::stoull(totals[1]), 0u) << out;
  EXPECT_EQ(totals[2], "0") << out;
}

// A claimer row of the view: id, hold (ms), successes, selected.
struct claimer_row {
  int id = -1;
  int hold = -1;
  unsigned long long ok = 0;
  bool selected = false;
};

std::vector<claimer_row> claimers_on(const std::string& screen) {
  std::vector<claimer_row> rows;
  std::istringstream lines(screen);
  bool in_table = false;
  for (std::string line; std::getline(lines, line);) {
    if (line.find("CLAIMER") != std::string::npos) {
      in_table = true;
      continue;
    }
    if (!in_table) continue;
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string word; words >> word;) w.push_back(word);
    if (w.empty()) break;  // the blank line after the table
    claimer_row r;
    if (w.front() == ">>") {
      r.selected = true;
      w.erase(w.begin());
    }
    // ID [yes] HOLD SUCCESSES SERVER-FAILURES CLAIM-FAILURES
    if (w.size() < 5) continue;
    try {
      r.id = std::stoi(w.front());
      r.hold = std::stoi(w[w.size() - 4]);
      r.ok = std::stoull(w[w.size() - 3]);
    } catch (const std::exception&) {
      continue;
    }
    rows.push_back(r);
  }
  return rows;
}

TEST_F(Workload, KeysAddAndRemoveClaimersSelectThemAndChangeTheirHold) {
  if (!tmux_installed()) QORB_MISSING_TOOL("tmux");
  temp_dir dir("qorb-workload");
  const std::string status_file = dir.path() + "/status";
  tmux_server tmux("workload");
  const std::string command =
      workload + " " + bootstrap() + " --claimers 2 --hold 100; echo $? > " + status_file;
  ASSERT_EQ(tmux.run({"new-session", "-d", "-s", "workload", "-x", "140", "-y", "40", command}), 0);
  std::vector<claimer_row> rows;
  std::string screen;
  const auto shows = [&](auto predicate) {
    return wait_until([&] {
      screen = tmux.screen();
      rows = claimers_on(screen);
      return predicate();
    });
  };

  ASSERT_TRUE(shows([&] { return rows.size() == 2 && rows[0].ok > 0 && rows[1].ok > 0; }))
      << "two claimers, both claiming through DNS\n"
      << screen;
  ASSERT_EQ(tmux.run({"send-keys", "-t", "workload", "Tab"}), 0);
  ASSERT_TRUE(shows([&] { return rows.size() == 3; })) << "Tab adds a claimer\n" << screen;

  ASSERT_EQ(tmux.run({"send-keys", "-t", "workload", "Down", "Down"}), 0);
  ASSERT_TRUE(shows([&] { return rows.size() == 3 && rows[2].selected && !rows[0].selected; }))
      << "Down selects the next claimer\n"
      << screen;
  ASSERT_EQ(tmux.run({"send-keys", "-t", "workload", "Right", "Right"}), 0);
  ASSERT_TRUE(shows([&] { return rows.size() == 3 && rows[2].hold == 300 && rows[0].hold == 100; }))
      << "Right adds 100 ms to the selected claimer's hold\n"
      << screen;
  ASSERT_EQ(tmux.run({"send-keys", "-t", "workload", "Left"}), 0);
  ASSERT_TRUE(shows([&] { return rows.size() == 3 && rows[2].hold == 200; }))
      << "Left takes 100 ms off\n"
      << screen;
  ASSERT_EQ(tmux.run({"send-keys", "-t", "workload", "Up"}), 0);
  ASSERT_TRUE(shows([&] { return rows.size() == 3 && rows[1].selected; })) << screen;

  ASSERT_EQ(tmux.run({"send-keys", "-t", "workload", "BTab"}), 0);
  ASSERT_TRUE(shows([&] { return rows.size() == 2; })) << "Shift-Tab removes one\n" << screen;

  ASSERT_EQ(tmux.run({"send-keys", "-t", "workload", "q"}), 0);
  std::string status;
  ASSERT_TRUE(wait_until([&] {
    std::ifstream f(status_file);
    return static_cast<bool>(std::getline(f, status));
  })) << "q quits\n"
      << tmux.screen();
  EXPECT_EQ(status, "0");
}

}  // namespace
}  // namespace qorb::test
