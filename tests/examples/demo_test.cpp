// The Quick start demo, run as a user without a terminal would run it, with a
// short duration: it must tell the whole story (claims served, the killed
// backend routed around before the DNS change, the added backend serving),
// print its summary, and stop every process it started, also on Ctrl-C.
#include <signal.h>
#include <sys/wait.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "support/wait.hpp"

namespace qorb::test {
namespace {

using ::testing::HasSubstr;

// The PIDs the demo says it started ("... (pid N) ...").
std::vector<pid_t> started_pids(const std::string& out) {
  std::vector<pid_t> pids;
  const std::regex started(R"(started .*\(pid (\d+)\))");
  for (std::sregex_iterator it(out.begin(), out.end(), started), end; it != end; ++it) {
    pids.push_back(static_cast<pid_t>(std::stol((*it)[1])));
  }
  return pids;
}

bool gone(pid_t pid) { return ::kill(pid, 0) == -1 && errno == ESRCH; }

// A figure of the summary, in ms ("<label>:   12 ms"); nothing if absent.
std::optional<long> figure(const std::string& out, const std::string& label) {
  const std::regex line(label + R"(:\s+(\d+) ms)");
  std::smatch m;
  if (!std::regex_search(out, m, line)) return std::nullopt;
  return std::stol(m[1]);
}

// Claims served per backend host (echo001...), from the summary table.
std::map<std::string, long> served(const std::string& out) {
  std::map<std::string, long> result;
  const auto summary = out.find("=== Summary");
  if (summary == std::string::npos) return result;
  std::istringstream lines(out.substr(summary));
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("echo00")) continue;
    std::istringstream words(line);
    std::string name;
    long count = -1;
    words >> name >> count;
    result[name.substr(0, 7)] = count;
  }
  return result;
}

TEST(Demo, TellsTheStoryAndStopsEveryProcess) {
  std::string out;
  const int rc = run_command({QORB_DEMO_PATH, "--duration", "9", "--plain"}, &out, 120s);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("result: OK"));

  const auto claims = served(out);
  ASSERT_EQ(claims.size(), 4u) << out;
  for (const auto& [host, count] : claims) EXPECT_GT(count, 0) << host << "\n" << out;

  // The kill comes at 3 s and the DNS change at 6 s: the dead backend must
  // be out of rotation before the change, the new one serve before the end.
  const auto kill_figure = figure(out, "kill -> no more claims to the dead backend");
  ASSERT_TRUE(kill_figure) << out;
  EXPECT_LT(*kill_figure, 3000) << out;
  const auto dns_figure = figure(out, "DNS change -> the new backend served a claim");
  ASSERT_TRUE(dns_figure) << out;
  EXPECT_LT(*dns_figure, 3000) << out;

  const auto pids = started_pids(out);
  EXPECT_EQ(pids.size(), 5u) << "four echo servers and knotd\n" << out;
  for (const auto pid : pids) EXPECT_TRUE(gone(pid)) << "pid " << pid << " still runs";
}

TEST(Demo, CtrlCStopsEveryProcessAndFailsTheRun) {
  temp_dir dir("qorb-demo-test");
  const auto log = dir.path() + "/out";
  child_process demo(
      {"sh", "-c",
       std::string("exec ") + QORB_DEMO_PATH + " --duration 60 --plain > " + log + " 2>&1"});
  const auto output = [&] {
    std::ifstream f(log);
    std::stringstream text;
    text << f.rdbuf();
    return text.str();
  };
  // Wait until the workload reports (every process is up by then).
  ASSERT_TRUE(wait_until([&] { return output().find("claims/s") != std::string::npos; }, 30s))
      << output();
  const int status = demo.stop(SIGINT, 20s);
  const auto out = output();
  ASSERT_TRUE(WIFEXITED(status)) << "it exits by itself on SIGINT\n" << out;
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGINT) << out;
  EXPECT_THAT(out, HasSubstr("result: interrupted"));
  const auto pids = started_pids(out);
  EXPECT_EQ(pids.size(), 5u) << out;
  for (const auto pid : pids) EXPECT_TRUE(gone(pid)) << "pid " << pid << " still runs";
}

}  // namespace
}  // namespace qorb::test
