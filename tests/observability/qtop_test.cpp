// SPDX-License-Identifier: BSL-1.0
// qtop as its users run it: --once for scripts, and the terminal UI under
// tmux, read back from the screen with capture-pane.
#include <unistd.h>

#include <boost/json.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "live_pool.hpp"
#include "support/require_tool.hpp"
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
  // The pool's life comes along: its name and status as the pool has them.
  const auto stats = live.pool->stats();
  EXPECT_EQ(update.at("name").as_string(), stats.name);
  EXPECT_EQ(update.at("status").as_string(), to_string(stats.status));
  EXPECT_TRUE(update.at("connections").at("closed").as_object().contains("lifetime")) << out;

  // The table form, for people reading scripts' output.
  ASSERT_EQ(
      run_command({qtop, "--once", "ws://127.0.0.1:" + std::to_string(live.port()) + "/qtop/stats"},
                  &out, 20s),
      0)
      << out;
  EXPECT_NE(out.find("BACKEND"), std::string::npos) << out;
  EXPECT_NE(out.find("127.0.0.1:1 "), std::string::npos) << out;
  // The title first, with the pool's status; then its connections.
  EXPECT_TRUE(out.starts_with("pool " + stats.name + " [" + to_string(stats.status) + "]\n"))
      << out;
  EXPECT_NE(out.find("\nconnections: "), std::string::npos) << out;
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
  if (!tmux_installed()) QORB_MISSING_TOOL("tmux");
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

// Claims and returns one connection at a steady rate, on a schedule (a late
// claim is made up at once, so the average rate holds on a loaded machine).
class steady_claimer {
 public:
  steady_claimer(qorb::pool<fake_conn>& pool, double per_second)
      : thread_([&pool, per_second, this](std::stop_token stop) {
          const auto period = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
              std::chrono::duration<double>(1.0 / per_second));
          auto next = std::chrono::steady_clock::now();
          while (!stop.stop_requested()) {
            { auto h = pool.claim(5s); }
            ++claims;
            next += period;
            std::this_thread::sleep_until(next);
          }
        }) {}

  std::atomic<std::uint64_t> claims{0};

 private:
  std::jthread thread_;  // last: stopped and joined first
};

// "R claims/s over the last S s" -> {R, S}.
std::optional<std::pair<double, double>> rate_shown(const std::string& text) {
  static const std::regex re(R"(([0-9]+\.[0-9]) claims/s over the last ([0-9]+\.[0-9]) s)");
  std::smatch m;
  if (!std::regex_search(text, m, re)) return std::nullopt;
  return std::pair{std::stod(m[1]), std::stod(m[2])};
}

// The sum of the CLAIMS/S column of the backend rows.
double backend_rates(const std::string& screen) {
  double sum = 0;
  std::istringstream lines(screen);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string word; words >> word;) w.push_back(word);
    if (w.size() < 7 || !w[0].starts_with("127.0.0.1:") || w[1] == "(offline)") continue;
    try {
      sum += std::stod(w[1]);
    } catch (const std::exception&) {
    }
  }
  return sum;
}

TEST(qtop_once, takes_two_updates_an_interval_apart_and_shows_the_rate_between_them) {
  observed_pool live;
  ASSERT_TRUE(wait_until([&] { return settled(*live.pool, 2); }));
  steady_claimer claimer(*live.pool, 50);
  ASSERT_TRUE(wait_until([&] { return claimer.claims >= 10; }, 10s));
  std::string out;
  ASSERT_EQ(run_command({qtop, "--once", "--interval", "3",
                         "http://127.0.0.1:" + std::to_string(live.port())},
                        &out, 30s),
            0)
      << out;
  const auto rate = rate_shown(out);
  ASSERT_TRUE(rate) << out;
  EXPECT_NEAR(rate->first, 50.0, 5.0) << out;
  EXPECT_GE(rate->second, 3.0) << out;
  EXPECT_NEAR(backend_rates(out), 50.0, 5.0) << out;
}

TEST(qtop_screen, claims_per_second_over_a_five_second_window_match_a_steady_workload) {
  if (!tmux_installed()) QORB_MISSING_TOOL("tmux");
  observed_pool live;
  ASSERT_TRUE(wait_until([&] { return settled(*live.pool, 2); }));
  steady_claimer claimer(*live.pool, 20);
  tmux_server tmux("qtop");
  const std::string command =
      qtop + " --interval 0.5 ws://127.0.0.1:" + std::to_string(live.port()) + "/qtop/stats";
  ASSERT_EQ(tmux.run({"new-session", "-d", "-s", "qtop", "-x", "120", "-y", "30", command}), 0);
  // Until the window is full the header says over how long the rate is.
  std::string screen;
  std::optional<std::pair<double, double>> rate;
  EXPECT_TRUE(wait_until(
      [&] {
        screen = tmux.screen();
        rate = rate_shown(screen);
        return rate && rate->second >= 5.0;
      },
      30s))
      << screen;
  ASSERT_TRUE(rate) << screen;
  EXPECT_NEAR(rate->first, 20.0, 2.0) << screen;
  EXPECT_LE(rate->second, 6.5) << screen;
  EXPECT_NEAR(backend_rates(screen), 20.0, 2.0) << screen;
}

const std::set<std::string> all_columns{"CLAIMS/S", "CONNECTING", "UNCLAIMED",
                                        "CHECKING", "CLAIMED",    "TOTAL"};

// The column headings of the table on `screen`.
std::set<std::string> headings_on(const std::string& screen) {
  std::istringstream lines(screen);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("BACKEND")) continue;
    std::istringstream words(line);
    std::set<std::string> out;
    for (std::string word; words >> word;) out.insert(word);
    out.erase("BACKEND");
    return out;
  }
  return {};
}

// The columns the note "hidden columns (too narrow; N show all): A B C"
// names (wrapped over lines to fit the terminal).
std::set<std::string> hidden_on(const std::string& screen) {
  std::istringstream lines(screen);
  std::string note;
  bool in_note = false;
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("hidden columns")) in_note = true;
    if (!in_note) continue;
    if (line.empty()) break;
    note += " " + line;
  }
  const auto colon = note.find("):");
  if (colon == std::string::npos) return {};
  std::istringstream words(note.substr(colon + 2));
  std::set<std::string> out;
  for (std::string word; words >> word;) out.insert(word);
  return out;
}

TEST(qtop_screen, a_narrow_terminal_names_the_columns_it_hides) {
  if (!tmux_installed()) QORB_MISSING_TOOL("tmux");
  observed_pool live;
  ASSERT_TRUE(wait_until([&] { return settled(*live.pool, 2); }));
  tmux_server tmux("qtop");
  const std::string command =
      qtop + " --interval 0.2 ws://127.0.0.1:" + std::to_string(live.port()) + "/qtop/stats";
  ASSERT_EQ(tmux.run({"new-session", "-d", "-s", "qtop", "-x", "50", "-y", "20", command}), 0);
  std::string screen;
  EXPECT_TRUE(wait_until(
      [&] {
        screen = tmux.screen();
        return !headings_on(screen).empty() && !hidden_on(screen).empty();
      },
      10s))
      << screen;
  const auto shown = headings_on(screen);
  const auto hidden = hidden_on(screen);
  // Every column is either on screen, whole, or named as hidden.
  std::set<std::string> both = shown;
  both.insert(hidden.begin(), hidden.end());
  EXPECT_EQ(both, all_columns) << screen;
  EXPECT_EQ(shown.size() + hidden.size(), all_columns.size()) << screen;
  EXPECT_TRUE(shown.contains("CLAIMS/S") && shown.contains("CLAIMED")) << screen;
  std::istringstream lines(screen);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_LE(line.size(), 50u) << line;
    // The table's own lines fit; only a longer text line ends in '>'.
    if (line.starts_with("BACKEND") || line.starts_with("127.0.0.1:")) {
      EXPECT_FALSE(line.ends_with(">")) << line;
    }
  }

  // Wide enough again: every column, no note.
  ASSERT_EQ(tmux.run({"resize-window", "-t", "qtop", "-x", "120", "-y", "20"}), 0);
  EXPECT_TRUE(wait_until(
      [&] {
        screen = tmux.screen();
        return headings_on(screen) == all_columns && hidden_on(screen).empty();
      },
      10s))
      << screen;
  EXPECT_EQ(screen.find("hidden"), std::string::npos) << screen;
}

TEST(qtop_screen, shows_claimed_of_max_slots_and_the_claims_waiting) {
  if (!tmux_installed()) QORB_MISSING_TOOL("tmux");
  observed_pool live;
  ASSERT_TRUE(wait_until([&] { return settled(*live.pool, 2); }));
  std::vector<handle<fake_conn>> held;
  for (int i = 0; i < 3; ++i) held.push_back(live.pool->claim(5s));
  tmux_server tmux("qtop");
  const std::string command =
      qtop + " --interval 0.2 ws://127.0.0.1:" + std::to_string(live.port()) + "/qtop/stats";
  ASSERT_EQ(tmux.run({"new-session", "-d", "-s", "qtop", "-x", "120", "-y", "30", command}), 0);
  std::string screen;
  EXPECT_TRUE(wait_until(
      [&] {
        screen = tmux.screen();
        return screen.find("saturation: 3 of max_slots 8 claimed (38%), 0 claims waiting") !=
               std::string::npos;
      },
      10s))
      << screen;

  // Every slot claimed (observed_policy: max_slots 8), two claims waiting.
  for (int i = 3; i < 8; ++i) held.push_back(live.pool->claim(10s));
  std::atomic<int> served{0};
  {
    std::vector<std::jthread> waiting;
    for (int i = 0; i < 2; ++i) {
      waiting.emplace_back([&] {
        auto h = live.pool->claim(30s);
        ++served;
      });
    }
    EXPECT_TRUE(wait_until([&] { return live.pool->stats().claims_waiting == 2; }, 10s));
    EXPECT_TRUE(wait_until(
        [&] {
          screen = tmux.screen();
          return screen.find("saturation: 8 of max_slots 8 claimed (100%), 2 claims waiting") !=
                 std::string::npos;
        },
        10s))
        << screen;
    held.clear();  // the waiting claims are served, and return at once
  }
  EXPECT_EQ(served, 2);
}

TEST(qtop_screen, shows_each_backends_last_connect_error) {
  if (!tmux_installed()) QORB_MISSING_TOOL("tmux");
  observed_pool live(2, observed_pool::quiet(), {"127.0.0.1:2"});
  ASSERT_TRUE(wait_until([&] { return first_up_second_failing(*live.pool); }, 10s));
  tmux_server tmux("qtop");
  const std::string command =
      qtop + " --interval 0.2 ws://127.0.0.1:" + std::to_string(live.port()) + "/qtop/stats";
  ASSERT_EQ(tmux.run({"new-session", "-d", "-s", "qtop", "-x", "120", "-y", "30", command}), 0);
  static const std::regex error_line(
      R"(127\.0\.0\.1:2: connect failed [0-9]+\.[0-9] s ago: connection refused \(fake\))");
  std::string screen;
  EXPECT_TRUE(wait_until(
      [&] {
        screen = tmux.screen();
        return screen.find("LAST ERRORS") != std::string::npos &&
               std::regex_search(screen, error_line);
      },
      10s))
      << screen;
  EXPECT_EQ(screen.find("127.0.0.1:1: "), std::string::npos) << "backend 1 never failed\n"
                                                             << screen;

  // --once prints them too.
  std::string out;
  ASSERT_EQ(run_command({qtop, "--once", "--interval", "0.2",
                         "http://127.0.0.1:" + std::to_string(live.port())},
                        &out, 30s),
            0)
      << out;
  EXPECT_NE(out.find("last errors:"), std::string::npos) << out;
  EXPECT_TRUE(std::regex_search(out, error_line)) << out;
}

}  // namespace
}  // namespace qorb::test
