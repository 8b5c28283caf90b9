// SPDX-License-Identifier: BSL-1.0
// The Quick start demo, run as a user without a terminal would run it, with a
// short duration: it must tell the whole story (claims served, the killed
// backend routed around before the DNS change, the added backend serving),
// print its summary, and stop every process it started, also on Ctrl-C.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
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
std::vector<std::string> started_pids(const std::string& out) {
  std::vector<std::string> pids;
  const std::regex started(R"(started .*\(pid (\d+)\))");
  for (std::sregex_iterator it(out.begin(), out.end(), started), end; it != end; ++it) {
    pids.push_back((*it)[1]);
  }
  return pids;
}

// The demo's children die with it (PDEATHSIG), so "is that PID gone?" says
// nothing about whether the demo stopped them. As a subreaper, this test
// inherits any child the demo left behind: none may turn up.
class Demo : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0); }
  void TearDown() override { ::prctl(PR_SET_CHILD_SUBREAPER, 0); }

  // Orphans handed to this process within a short wait (reaped here).
  static std::vector<pid_t> abandoned() {
    std::vector<pid_t> found;
    wait_until(
        [&] {
          for (pid_t pid = ::waitpid(-1, nullptr, WNOHANG); pid > 0;
               pid = ::waitpid(-1, nullptr, WNOHANG)) {
            found.push_back(pid);
          }
          return false;  // keep collecting until the deadline
        },
        500ms);
    return found;
  }

  // Every process the demo started is in its "stopped processes:" line,
  // its scratch directory is gone, and it abandoned no child.
  static void expect_cleaned_up(const std::string& out) {
    const auto pids = started_pids(out);
    EXPECT_EQ(pids.size(), 5u) << "four echo servers and knotd\n" << out;
    std::smatch stopped;
    ASSERT_TRUE(std::regex_search(out, stopped, std::regex(R"(stopped processes:([ \d]+))")))
        << out;
    // Appended, not " " + ...: GCC 12 -O3 flags that as an overlapping copy.
    std::string stopped_list = " ";
    stopped_list += stopped[1].str();
    stopped_list += " ";
    for (const auto& pid : pids) {
      std::string needle = " ";
      needle += pid;
      needle += " ";
      EXPECT_NE(stopped_list.find(needle), std::string::npos)
          << "pid " << pid << " was not stopped\n"
          << out;
    }
    std::smatch scratch;
    ASSERT_TRUE(std::regex_search(out, scratch, std::regex(R"(scratch directory[^:]*: (\S+))")))
        << out;
    EXPECT_FALSE(std::filesystem::exists(scratch[1].str())) << scratch[1];
    EXPECT_THAT(abandoned(), ::testing::IsEmpty()) << "children the demo left behind";
  }
};

// A figure of the summary, in ms ("<label>:   12 ms"); nothing if absent.
std::optional<long> figure(const std::string& out, const std::string& label) {
  const std::regex line(label + R"(:\s+(\d+) ms)");
  std::smatch m;
  if (!std::regex_search(out, m, line)) return std::nullopt;
  return std::stol(m[1]);
}

// A figure of the summary with a decimal ("<label>:   1.2 ms"); nothing if
// absent (or "never").
std::optional<double> decimal_figure(const std::string& out, const std::string& label) {
  const std::regex line(label + R"(:\s+(\d+(\.\d+)?) ms)");
  std::smatch m;
  if (!std::regex_search(out, m, line)) return std::nullopt;
  return std::stod(m[1]);
}

// The summary's count of claims that met a dead connection, for its one
// kill ("dead-connection claims per kill:   0    (1 kill)").
std::optional<long> dead_connection_claims(const std::string& out) {
  const std::regex line(R"(dead-connection claims per kill:\s+(\d+)\s+\(1 kill\))");
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
// The picture --plot asked for: an SVG document (as gnuplot writes it) with
// a line per backend in its key, and the kill and the DNS change marked.
void expect_timeline_picture(const std::string& svg, const std::string& out) {
  EXPECT_THAT(out, HasSubstr("timeline picture (claims/s per backend, the kill and the DNS "
                             "change marked): " +
                             svg));
  std::ifstream f(svg);
  ASSERT_TRUE(f) << "no " << svg << "\n" << out;
  std::stringstream text;
  text << f.rdbuf();
  const auto doc = text.str();
  EXPECT_THAT(doc, HasSubstr("<svg"));
  EXPECT_THAT(doc, ::testing::ContainsRegex("</svg>\\s*$")) << "a whole document";
  EXPECT_THAT(doc, HasSubstr("claims/s"));
  for (const char* backend : {"echo001", "echo002", "echo003", "echo004"})
    EXPECT_THAT(doc, HasSubstr(std::string(">") + backend + "<")) << backend << " in the key";
  EXPECT_THAT(doc, HasSubstr("kill echo002"));
  EXPECT_THAT(doc, HasSubstr("DNS change: +echo004"));
  // One drawn line per backend at least (gnuplot draws each as a path).
  std::size_t paths = 0;
  for (auto at = doc.find("<path"); at != std::string::npos; at = doc.find("<path", at + 1))
    ++paths;
  EXPECT_GE(paths, 4u);
}

TEST_F(Demo, TellsTheStoryAndStopsEveryProcess) {
  // 12 s: the kill at 4 s, the DNS change at 8 s (room for slow sanitizer builds).
  temp_dir dir("qorb-demo-test");
  const auto svg = dir.path() + "/timeline.svg";
  std::string out;
  const int rc =
      run_command({QORB_DEMO_PATH, "--duration", "12", "--plain", "--plot", svg}, &out, 120s);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("result: OK"));

  const auto claims = served(out);
  ASSERT_EQ(claims.size(), 4u) << out;
  for (const auto& [host, count] : claims) EXPECT_GT(count, 0) << host << "\n" << out;
  // Exit 0 already means: the dead backend was out of rotation before the
  // DNS change, and the new one served before the end. Both figures shown.
  EXPECT_TRUE(figure(out, "kill -> no more claims to the dead backend")) << out;
  EXPECT_TRUE(figure(out, "DNS change -> the new backend served a claim")) << out;
  // Issue 20's figures for the kill: the idle connections to the killed
  // backend are watched, so no claim met one of them, and the pool said the
  // backend was offline (a time, not "never").
  EXPECT_EQ(dead_connection_claims(out), 0) << out;
  const auto offline = decimal_figure(out, "kill -> the pool said the dead backend is offline");
  EXPECT_GE(offline.value_or(-1.0), 0.0) << out;
  expect_cleaned_up(out);
  expect_timeline_picture(svg, out);
}

// Every line the demo prints fits 100 columns (its tables abbreviate, its
// figures put their details on lines of their own).
void expect_fits_100_columns(const std::string& out) {
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_LE(line.size(), 100u) << line;
  }
}

TEST_F(Demo, EveryLineFits100Columns) {
  std::string out;
  const int rc =
      run_command({QORB_DEMO_PATH, "--duration", "6", "--plain", "--no-plot"}, &out, 90s);
  ASSERT_EQ(rc, 0) << out;
  expect_fits_100_columns(out);
}

// The lines the demo prints to paste into another terminal work as printed
// while it runs: qorb-resolve finds the three servers in its DNS, curl gets
// its /stats, and qtop (given --once, as a terminal is needed otherwise)
// shows its backends.
TEST_F(Demo, TheCommandsItPrintsWorkAsPrinted) {
  temp_dir dir("qorb-demo-test");
  const auto log = dir.path() + "/out";
  child_process demo({"setsid", "sh", "-c",
                      std::string("exec ") + QORB_DEMO_PATH +
                          " --duration 30 --plain --no-plot > " + log + " 2>&1"});
  const auto output = [&] {
    std::ifstream f(log);
    std::stringstream text;
    text << f.rdbuf();
    return text.str();
  };
  // The pasted lines come before the workload's first report.
  ASSERT_TRUE(wait_until([&] { return output().find("claims/s") != std::string::npos; }, 30s))
      << output();
  std::vector<std::string> commands;
  {
    std::istringstream lines(output());
    bool in_block = false;
    for (std::string line; std::getline(lines, line);) {
      if (line.find("paste into another terminal") != std::string::npos) {
        in_block = true;
        continue;
      }
      if (!in_block) continue;
      if (!line.starts_with("    ")) break;
      commands.push_back(line.substr(4));
    }
  }
  ASSERT_EQ(commands.size(), 3u) << output();
  std::map<std::string, std::string> expected{
      {"qorb-resolve", "echo001"}, {"qtop", "echo002"}, {"curl", "\"name\""}};
  for (auto command : commands) {
    std::string tool = command.substr(0, command.find(' '));
    tool = tool.substr(tool.rfind('/') + 1);
    ASSERT_TRUE(expected.contains(tool)) << command;
    if (tool == "qtop") command.insert(command.find(' '), " --once");
    std::string out;
    EXPECT_EQ(run_command({"sh", "-c", command}, &out, 30s), 0) << command << "\n" << out;
    EXPECT_THAT(out, HasSubstr(expected[tool])) << command;
    expected.erase(tool);
  }
  EXPECT_TRUE(expected.empty());
  ASSERT_EQ(::kill(-demo.pid(), SIGINT), 0);
  demo.stop(0, 20s);
  expect_cleaned_up(output());
}

TEST_F(Demo, CtrlCStopsEveryProcessAndFailsTheRun) {
  temp_dir dir("qorb-demo-test");
  const auto log = dir.path() + "/out";
  // In a process group of its own, like a shell job: Ctrl-C signals the group.
  child_process demo({"setsid", "sh", "-c",
                      std::string("exec ") + QORB_DEMO_PATH +
                          " --duration 60 --plain --no-plot > " + log + " 2>&1"});
  const auto output = [&] {
    std::ifstream f(log);
    std::stringstream text;
    text << f.rdbuf();
    return text.str();
  };
  // Wait until the workload reports (every process is up by then).
  ASSERT_TRUE(wait_until([&] { return output().find("claims/s") != std::string::npos; }, 30s))
      << output();
  ASSERT_EQ(::kill(-demo.pid(), SIGINT), 0);
  const int status = demo.stop(0, 20s);  // signal 0: just wait for it
  const auto out = output();
  ASSERT_TRUE(WIFEXITED(status)) << "it exits by itself on SIGINT\n" << out;
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGINT) << out;
  EXPECT_THAT(out, HasSubstr("result: interrupted"));
  expect_cleaned_up(out);
}

}  // namespace
}  // namespace qorb::test
