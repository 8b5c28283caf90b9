// qtop as its users run it: --once for scripts, and the terminal UI under
// tmux, read back from the screen with capture-pane.
#include <unistd.h>

#include <boost/json.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <sstream>

#include "live_pool.hpp"
#include "support/tmux.hpp"

namespace qorb::test {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

const std::string qtop = QTOP_PATH;

TEST(qtop_once, prints_one_update_as_json_and_exits_0) {
  observed_pool live;
  ASSERT_TRUE(wait_until([&] { return settled(*live.pool, 2); }));
  auto held = live.pool->claim(5s);
  std::string out;
  const int rc = run_command(
      {qtop, "--once", "--json", "http://127.0.0.1:" + std::to_string(live.port())}, &out, 20s);
  ASSERT_EQ(rc, 0) << out;
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.find('\n'), out.size() - 1) << "one line: " << out;
  const auto update = json::parse(out).as_object();
  EXPECT_EQ(update.at("claims").to_number<std::uint64_t>(), 0u);
  const auto& sets = update.at("sets").as_object();
  ASSERT_EQ(sets.size(), 2u);
  std::uint64_t claimed = 0;
  for (const auto& [name, s] : sets) claimed += s.at("claimed").to_number<std::uint64_t>();
  EXPECT_EQ(claimed, 1u);

  // The table form, for people reading scripts' output.
  ASSERT_EQ(
      run_command({qtop, "--once", "ws://127.0.0.1:" + std::to_string(live.port()) + "/qtop/stats"},
                  &out, 20s),
      0)
      << out;
  EXPECT_NE(out.find("BACKEND"), std::string::npos) << out;
  EXPECT_NE(out.find("127.0.0.1:1 "), std::string::npos) << out;
}

TEST(qtop_once, says_why_and_exits_1_when_it_cannot_connect) {
  std::string out;
  const auto port = std::to_string(free_port());
  EXPECT_EQ(
      run_command({qtop, "--once", "--json", "ws://127.0.0.1:" + port + "/qtop/stats"}, &out, 20s),
      1);
  EXPECT_NE(out.find("cannot connect"), std::string::npos) << out;
}

TEST(qtop_once, exits_2_on_bad_arguments) {
  std::string out;
  EXPECT_EQ(run_command({qtop}, &out), 2);
  EXPECT_EQ(run_command({qtop, "--interval", "0", "ws://127.0.0.1:1"}, &out), 2);
  EXPECT_EQ(run_command({qtop, "--bogus", "ws://127.0.0.1:1"}, &out), 2);
  EXPECT_EQ(run_command({qtop, "ftp://127.0.0.1:1"}, &out), 2);
  EXPECT_EQ(run_command({qtop, "ws://127.0.0.1:99999"}, &out), 2);
  EXPECT_NE(out.find("usage: qtop"), std::string::npos) << out;
}

// The rows qtop shows: backend name -> claimed.
std::map<std::string, std::uint64_t> claimed_on_screen(const std::string& screen) {
  std::map<std::string, std::uint64_t> out;
  std::istringstream lines(screen);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string word; words >> word;) w.push_back(word);
    // NAME [(offline)] CLAIMS/S CONNECTING UNCLAIMED CHECKING CLAIMED TOTAL
    if (w.size() < 7 || !w[0].starts_with("127.0.0.1:")) continue;
    try {
      out[w[0]] = std::stoull(w[w.size() - 2]);
    } catch (const std::exception&) {
    }
  }
  return out;
}

TEST(qtop_screen, shows_each_backend_follows_resizes_reports_outages_and_quits_on_q) {
  if (!tmux_installed()) GTEST_SKIP() << "tmux is not installed (scripts/install-deps.sh adds it)";
  observed_pool live;
  ASSERT_TRUE(wait_until([&] { return settled(*live.pool, 2); }));
  std::vector<handle<fake_conn>> held;
  for (int i = 0; i < 3; ++i) held.push_back(live.pool->claim(5s));
  std::map<std::string, std::uint64_t> expected;
  for (const auto& [name, b] : live.pool->stats().backends) expected[name] = b.claimed;

  temp_dir dir("qorb-qtop");
  const std::string status_file = dir.path() + "/status";
  const auto port = live.port();
  tmux_server tmux("qtop");
  const std::string command = qtop + " --interval 0.2 ws://127.0.0.1:" + std::to_string(port) +
                              "/qtop/stats; echo $? > " + status_file;
  ASSERT_EQ(tmux.run({"new-session", "-d", "-s", "qtop", "-x", "120", "-y", "30", command}), 0);

  std::string screen;
  EXPECT_TRUE(wait_until(
      [&] {
        screen = tmux.screen();
        return claimed_on_screen(screen) == expected;
      },
      10s))
      << screen;
  EXPECT_NE(screen.find("connected: 2 backends"), std::string::npos) << screen;

  // A claim returned: the screen follows.
  held.pop_back();
  expected.clear();
  for (const auto& [name, b] : live.pool->stats().backends) expected[name] = b.claimed;
  EXPECT_TRUE(wait_until(
      [&] {
        screen = tmux.screen();
        return claimed_on_screen(screen) == expected;
      },
      10s))
      << screen;

  // A smaller window: qtop redraws to fit, the key line at the new bottom.
  ASSERT_EQ(tmux.run({"resize-window", "-t", "qtop", "-x", "90", "-y", "12"}), 0);
  EXPECT_TRUE(wait_until(
      [&] {
        screen = tmux.screen();
        std::vector<std::string> lines;
        std::istringstream in(screen);
        for (std::string l; std::getline(in, l);) lines.push_back(l);
        return lines.size() >= 12 && lines[11].starts_with("q: quit") &&
               claimed_on_screen(screen) == expected;
      },
      10s))
      << screen;

  // The endpoint goes away: qtop says so, and comes back with it.
  live.server.reset();
  EXPECT_TRUE(wait_until(
      [&] {
        screen = tmux.screen();
        return screen.find("ENDPOINT WENT AWAY") != std::string::npos ||
               screen.find("UNREACHABLE") != std::string::npos;
      },
      10s))
      << screen;
  stats_server_config config = observed_pool::quiet();
  config.listen.port(port);
  live.server = std::make_unique<stats_server>(live.io.executor(), config);
  live.server->attach(*live.pool);
  live.server->start();
  EXPECT_TRUE(wait_until(
      [&] {
        screen = tmux.screen();
        return screen.find("connected: 2 backends") != std::string::npos &&
               claimed_on_screen(screen) == expected;
      },
      10s))
      << screen;

  ASSERT_EQ(tmux.run({"send-keys", "-t", "qtop", "q"}), 0);
  std::string status;
  EXPECT_TRUE(wait_until(
      [&] {
        std::ifstream in(status_file);
        status.clear();
        in >> status;
        return !status.empty();
      },
      10s));
  EXPECT_EQ(status, "0");
}

}  // namespace
}  // namespace qorb::test
