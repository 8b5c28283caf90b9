// SPDX-License-Identifier: BSL-1.0
// qtop's view model (tools/qtop_view.hpp) on its own: updates and times
// passed in, the lines it would draw read back. No terminal, no server.
#include <boost/json.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "qtop_view.hpp"

namespace qtop {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

struct backend {
  std::string name;
  std::uint64_t total_claims = 0, claimed = 0;
  bool online = true;
  json::value last_error = nullptr;
};

// A /qtop/stats push, as the server writes it, for `backends` in order.
std::string push(const std::vector<backend>& backends, std::optional<std::uint64_t> total = {}) {
  json::object sets;
  std::uint64_t sum = 0;
  for (const auto& b : backends) {
    sets[b.name] = {
        {"connecting", 0},           {"unclaimed", 1},     {"checking", 0},
        {"claimed", b.claimed},      {"online", b.online}, {"total_claims", b.total_claims},
        {"last_error", b.last_error}};
    sum += b.total_claims;
  }
  return json::serialize(json::object{{"claims", 0},
                                      {"total_claims", total.value_or(sum)},
                                      {"claims_waiting", 0},
                                      {"max_slots", 8},
                                      {"claimed", 3},
                                      {"sets", std::move(sets)}});
}

const clock_type::time_point t0{};  // the view never reads a clock
const wall_clock::time_point wall0 = wall_clock::from_time_t(1'800'000'000);

std::vector<backend> two(std::uint64_t first_total, std::uint64_t second_total) {
  return {{"127.0.0.1:1", first_total, 2}, {"127.0.0.1:2", second_total, 1}};
}

// A view that has taken the update two(5, 7).
view one_update() {
  view v;
  EXPECT_TRUE(v.update(push(two(5, 7)), t0, wall0));
  return v;
}

// The rows as --once and the screen show them, less the heading.
std::vector<std::string> cells_of(const view& v, std::size_t width = 0) {
  auto lines = backend_table(v, width).lines;
  lines.erase(lines.begin());
  return lines;
}

TEST(qtop_view, a_wide_table_shows_every_column_right_aligned_under_its_heading) {
  const auto t = backend_table(one_update(), 200);
  ASSERT_EQ(t.lines.size(), 3u);
  EXPECT_EQ(t.lines[0], "BACKEND     CLAIMS/S CONNECTING UNCLAIMED CHECKING CLAIMED TOTAL");
  EXPECT_EQ(t.lines[1], "127.0.0.1:1        -          0         1        0       2     5");
  EXPECT_EQ(t.lines[2], "127.0.0.1:2        -          0         1        0       1     7");
  EXPECT_TRUE(t.hidden.empty());
  EXPECT_EQ(t.full_width, 64u);
  EXPECT_EQ(backend_table(one_update(), 0).lines, t.lines) << "0 is no limit";
}

TEST(qtop_view, a_narrower_table_hides_the_least_useful_columns_first) {
  const auto v = one_update();
  // The widest each set of hidden columns leaves the table: TOTAL goes
  // first, CLAIMS/S last.
  const std::vector<std::pair<std::size_t, std::vector<std::string>>> expected{
      {64, {}},
      {63, {"TOTAL"}},
      {58, {"TOTAL"}},
      {57, {"CHECKING", "TOTAL"}},
      {49, {"CHECKING", "TOTAL"}},
      {48, {"CONNECTING", "CHECKING", "TOTAL"}},
      {38, {"CONNECTING", "CHECKING", "TOTAL"}},
      {37, {"CONNECTING", "UNCLAIMED", "CHECKING", "TOTAL"}},
      {28, {"CONNECTING", "UNCLAIMED", "CHECKING", "TOTAL"}},
      {27, {"CONNECTING", "UNCLAIMED", "CHECKING", "CLAIMED", "TOTAL"}},
      {20, {"CONNECTING", "UNCLAIMED", "CHECKING", "CLAIMED", "TOTAL"}},
      {19, {"CLAIMS/S", "CONNECTING", "UNCLAIMED", "CHECKING", "CLAIMED", "TOTAL"}},
  };
  for (const auto& [width, hidden] : expected) {
    const auto t = backend_table(v, width);
    EXPECT_EQ(t.hidden, hidden) << "width " << width;
    EXPECT_EQ(t.full_width, 64u);
  }
  EXPECT_EQ(backend_table(v, 20).lines[0], "BACKEND     CLAIMS/S");
  EXPECT_EQ(backend_table(v, 28).lines[1], "127.0.0.1:1        -       2");
}

TEST(qtop_view, no_table_line_is_wider_than_the_width_once_the_names_fit) {
  const auto v = one_update();
  for (std::size_t width = 11; width <= 80; ++width) {
    const auto t = backend_table(v, width);
    for (const auto& line : t.lines)
      EXPECT_LE(line.size(), width) << "width " << width << ": " << line;
    // Every column is either shown, whole, or named as hidden.
    std::size_t headings = 0;
    for (const char* h : {"CLAIMS/S", "CONNECTING", "UNCLAIMED", "CHECKING", "CLAIMED", "TOTAL"}) {
      headings += t.lines[0].find(h) != std::string::npos ? 1 : 0;
    }
    EXPECT_EQ(headings + t.hidden.size(), 6u) << "width " << width;
  }
}

TEST(qtop_view, the_hidden_note_names_the_hidden_columns_in_lines_that_fit) {
  const auto t = backend_table(one_update(), 50);
  EXPECT_EQ(hidden_note(t),
            (std::vector<std::string>{"hidden columns (too narrow; 64 show all): CHECKING TOTAL"}));
  const auto lines = hidden_note(t, 20);
  EXPECT_EQ(lines, (std::vector<std::string>{"hidden columns (too", "narrow; 64 show",
                                             "all): CHECKING TOTAL"}));
  for (const auto& line : lines) EXPECT_LE(line.size(), 20u) << line;
}

TEST(qtop_view, the_screen_fits_any_width_and_names_what_it_hides) {
  const auto v = one_update();
  const connection_state c{"ws://127.0.0.1:1/qtop/stats", "", true};
  for (int cols = 1; cols <= 120; ++cols) {
    for (const auto& line : compose(v, c, cols, 30, wall0)) {
      EXPECT_LE(line.text.size(), static_cast<std::size_t>(cols)) << line.text;
      EXPECT_EQ(line.cut,
                line.text.size() == static_cast<std::size_t>(cols) && line.text.ends_with('>'))
          << cols << ": " << line.text;
    }
  }
  const auto narrow = compose(v, c, 50, 30, wall0);
  bool note = false;
  for (const auto& line : narrow) {
    if (line.text.starts_with("BACKEND") || line.text.starts_with("127.0.0.1:")) {
      EXPECT_FALSE(line.cut) << line.text;
    }
    if (line.text.starts_with("hidden columns")) {
      note = true;
      EXPECT_EQ(line.style, look::bold);
    }
  }
  EXPECT_TRUE(note);
  for (const auto& line : compose(v, c, 120, 30, wall0)) {
    EXPECT_EQ(line.text.find("hidden"), std::string::npos) << line.text;
  }
}

TEST(qtop_view, the_screen_lists_its_lines_top_down_with_the_key_line_at_the_bottom) {
  view v;
  ASSERT_TRUE(v.update(push(two(5, 7)), t0, wall0));
  ASSERT_TRUE(v.update(push(two(15, 17)), t0 + 2s, wall0 + 2s));
  const auto lines = compose(v, {"ws://h:1/qtop/stats", "", true}, 120, 12, wall0);
  std::vector<std::string> texts;
  for (const auto& l : lines) texts.push_back(std::to_string(l.row) + " " + l.text);
  ASSERT_EQ(lines.size(), 7u);
  EXPECT_EQ(texts[0], "0 qtop  ws://h:1/qtop/stats");
  EXPECT_EQ(texts[1],
            "1 connected: 2 backends, 2 online, 10.0 claims/s over the last 2.0 s  (updated " +
                v.wall_time + ")");
  EXPECT_EQ(texts[2], "2 saturation: 3 of max_slots 8 claimed (38%), 0 claims waiting");
  EXPECT_TRUE(texts[3].starts_with("4 BACKEND ")) << texts[3];
  EXPECT_EQ(texts[4], "5 127.0.0.1:1      5.0          0         1        0       2    15");
  EXPECT_TRUE(texts[5].starts_with("6 127.0.0.1:2 ")) << texts[5];
  EXPECT_EQ(texts[6], "11 q: quit");
  EXPECT_EQ(lines[0].style, look::bold);
  EXPECT_EQ(lines[3].style, look::heading);
  EXPECT_EQ(lines[4].style, look::plain);
  EXPECT_EQ(lines[6].style, look::dim);
  EXPECT_EQ(v.wall_time.size(), 8u) << "HH:MM:SS: " << v.wall_time;

  // A short terminal: nothing below its last row.
  for (const auto& l : compose(v, {"ws://h:1/qtop/stats", "", true}, 120, 4, wall0)) {
    EXPECT_LT(l.row, 4) << l.text;
  }
}

TEST(qtop_view, an_unreachable_endpoint_shows_its_status_and_the_last_values_dimmed) {
  const auto v = one_update();
  const auto lines = compose(v, {"ws://h:1/qtop/stats", "UNREACHABLE: why", false}, 120, 30, wall0);
  ASSERT_GE(lines.size(), 5u);
  EXPECT_EQ(lines[1].text, "UNREACHABLE: why");
  EXPECT_EQ(lines[1].style, look::alert);
  EXPECT_EQ(lines[4].style, look::dim) << lines[4].text;
  bool last_known = false;
  for (const auto& l : lines)
    last_known |= l.text == "(last known values, from " + v.wall_time + ")";
  EXPECT_TRUE(last_known);

  // Connected, before the first update.
  const auto waiting = compose(view{}, {"ws://h:1/qtop/stats", "", true}, 120, 30, wall0);
  ASSERT_EQ(waiting.size(), 4u);
  EXPECT_EQ(waiting[1].text, "connected: 0 backends, 0 online, claims/s: - (needs two updates)");
  EXPECT_EQ(waiting[2].text, "waiting for the first update...");
}

TEST(qtop_view, the_first_update_has_no_rate_yet) {
  const auto v = one_update();
  EXPECT_FALSE(v.claims_per_s);
  for (const auto& r : v.rows) EXPECT_FALSE(r.claims_per_s) << r.name;
  EXPECT_EQ(rate_summary(v), "claims/s: - (needs two updates)");
  EXPECT_EQ(v.total_claims, 12u);
}

TEST(qtop_view, rates_are_the_claims_between_two_updates_over_the_time_between_them) {
  view v;
  ASSERT_TRUE(v.update(push(two(5, 7)), t0, wall0));
  ASSERT_TRUE(v.update(push(two(15, 37)), t0 + 2s, wall0 + 2s));
  ASSERT_TRUE(v.claims_per_s);
  EXPECT_DOUBLE_EQ(*v.claims_per_s, 20.0);
  EXPECT_EQ(v.rate_span, 2s);
  ASSERT_TRUE(v.rows[0].claims_per_s && v.rows[1].claims_per_s);
  EXPECT_DOUBLE_EQ(*v.rows[0].claims_per_s, 5.0);
  EXPECT_DOUBLE_EQ(*v.rows[1].claims_per_s, 15.0);
  EXPECT_EQ(rate_summary(v), "20.0 claims/s over the last 2.0 s");
}

TEST(qtop_view, rates_are_taken_over_the_last_five_seconds_of_updates) {
  view v;
  // A burst of 1000 claims, then 10 a second for 10 s.
  ASSERT_TRUE(v.update(push(two(0, 0)), t0, wall0));
  std::uint64_t total = 1000;
  for (int s = 1; s <= 10; ++s, total += 10) {
    ASSERT_TRUE(v.update(push(two(total, 0)), t0 + s * 1s, wall0));
  }
  ASSERT_TRUE(v.claims_per_s);
  EXPECT_DOUBLE_EQ(*v.claims_per_s, 10.0);
  EXPECT_EQ(v.rate_span, 5s);
  EXPECT_EQ(rate_summary(v), "10.0 claims/s over the last 5.0 s");
  ASSERT_TRUE(v.rows[0].claims_per_s);
  EXPECT_DOUBLE_EQ(*v.rows[0].claims_per_s, 10.0);
}

TEST(qtop_view, a_counter_going_backwards_restarts_the_rates) {
  view v;
  ASSERT_TRUE(v.update(push(two(500, 500)), t0, wall0));
  ASSERT_TRUE(v.update(push(two(600, 600)), t0 + 1s, wall0));
  ASSERT_TRUE(v.claims_per_s);
  // The pool restarted: its count is lower. No rate, rather than a
  // negative or huge one.
  ASSERT_TRUE(v.update(push(two(3, 4)), t0 + 2s, wall0));
  EXPECT_FALSE(v.claims_per_s);
  for (const auto& r : v.rows) EXPECT_FALSE(r.claims_per_s) << r.name;
  EXPECT_EQ(format_rate(v.rows[0].claims_per_s), "-");
  // From the restart on, rates again.
  ASSERT_TRUE(v.update(push(two(13, 24)), t0 + 4s, wall0));
  ASSERT_TRUE(v.claims_per_s);
  EXPECT_DOUBLE_EQ(*v.claims_per_s, 15.0);
  EXPECT_EQ(v.rate_span, 2s);

  // One backend's count lower (a new backend under the same name), the
  // pool's not: that backend has no rate, the other has.
  ASSERT_TRUE(v.update(push(two(2, 44), 100), t0 + 6s, wall0));
  EXPECT_FALSE(v.rows[0].claims_per_s);
  ASSERT_TRUE(v.rows[1].claims_per_s);
  EXPECT_DOUBLE_EQ(*v.rows[1].claims_per_s, 10.0);
}

TEST(qtop_view, two_updates_at_the_same_time_give_no_rate) {
  view v;
  ASSERT_TRUE(v.update(push(two(5, 7)), t0 + 1s, wall0));
  ASSERT_TRUE(v.update(push(two(15, 17)), t0 + 1s, wall0));
  EXPECT_FALSE(v.claims_per_s);
  for (const auto& r : v.rows) EXPECT_FALSE(r.claims_per_s) << r.name;
}

TEST(qtop_view, a_new_connection_or_a_new_backend_starts_without_a_rate) {
  view v;
  ASSERT_TRUE(v.update(push({{"a", 5}}), t0, wall0));
  ASSERT_TRUE(v.update(push({{"a", 6}, {"b", 1}}), t0 + 1s, wall0));
  ASSERT_TRUE(v.rows[0].claims_per_s);
  EXPECT_FALSE(v.rows[1].claims_per_s) << "b was not in the first update";
  ASSERT_TRUE(v.update(push({{"a", 7}, {"b", 3}}), t0 + 2s, wall0));
  ASSERT_TRUE(v.rows[1].claims_per_s);
  EXPECT_DOUBLE_EQ(*v.rows[1].claims_per_s, 2.0) << "from the oldest update listing b";

  v.reconnected();
  ASSERT_TRUE(v.update(push({{"a", 9}, {"b", 4}}), t0 + 3s, wall0));
  EXPECT_FALSE(v.claims_per_s);
  EXPECT_FALSE(v.rows[0].claims_per_s);
  EXPECT_TRUE(v.have_data) << "the last values stay on screen";
}

TEST(qtop_view, rows_keep_the_servers_order_qtop_does_not_sort) {
  view v;
  ASSERT_TRUE(v.update(push({{"zeta:1", 1}, {"alpha:2", 2}, {"mid:3", 3}}), t0, wall0));
  const auto rows = cells_of(v);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_TRUE(rows[0].starts_with("zeta:1 ")) << rows[0];
  EXPECT_TRUE(rows[1].starts_with("alpha:2 ")) << rows[1];
  EXPECT_TRUE(rows[2].starts_with("mid:3 ")) << rows[2];
}

TEST(qtop_view, an_empty_pool_is_a_table_with_no_rows) {
  view v;
  ASSERT_TRUE(v.update(push({}), t0, wall0));
  EXPECT_TRUE(v.have_data);
  EXPECT_TRUE(v.rows.empty());
  const auto t = backend_table(v, 120);
  EXPECT_EQ(t.lines, std::vector<std::string>{
                         "BACKEND CLAIMS/S CONNECTING UNCLAIMED CHECKING CLAIMED TOTAL"});
  EXPECT_TRUE(t.hidden.empty());
  EXPECT_EQ(once_report(v, wall0),
            (std::vector<std::string>{
                "claims/s: - (needs two updates)",
                "saturation: 3 of max_slots 8 claimed (38%), 0 claims waiting", t.lines[0]}));
  const auto lines = compose(v, {"u", "", true}, 120, 30, wall0);
  ASSERT_GE(lines.size(), 2u);
  EXPECT_TRUE(lines[1].text.starts_with("connected: 0 backends, 0 online, ")) << lines[1].text;
}

TEST(qtop_view, what_is_not_an_update_is_refused_and_changes_nothing) {
  auto v = one_update();
  const auto rows = cells_of(v);
  for (const std::string text :
       {"not json", "[]", R"({"sets":{}})", R"({"claims":0})", R"({"claims":0,"sets":[]})",
        R"({"claims":"0","sets":{}})", R"({"claims":0,"sets":{"a":1}})"}) {
    EXPECT_FALSE(v.update(text, t0 + 1s, wall0)) << text;
  }
  EXPECT_EQ(cells_of(v), rows);
  EXPECT_EQ(v.samples.size(), 1u);
}

TEST(qtop_view, saturation_and_the_last_errors_as_of_the_time_given) {
  view v;
  backend failing{"127.0.0.1:2", 0, 0, false};
  failing.last_error = {{"operation", "connect"},
                        {"message", "connection refused"},
                        {"at", "2026-12-02T01:02:03.456Z"}};
  ASSERT_TRUE(v.update(push({{"127.0.0.1:1", 4, 3}, failing}), t0, wall0));
  const auto at = parse_utc("2026-12-02T01:02:03.456Z");
  ASSERT_TRUE(at);
  EXPECT_EQ(*at, wall_clock::from_time_t(1796173323) + 456ms);
  EXPECT_EQ(
      error_lines(v, *at + 3200ms),
      std::vector<std::string>{"  127.0.0.1:2: connect failed 3.2 s ago: connection refused"});
  // A clock behind the server's says 0.0 s, never a negative time.
  EXPECT_EQ(error_lines(v, *at - 1s)[0],
            "  127.0.0.1:2: connect failed 0.0 s ago: connection refused");
  EXPECT_EQ(saturation_summary(v), "saturation: 3 of max_slots 8 claimed (38%), 0 claims waiting");
  EXPECT_EQ(cells_of(v)[1].substr(0, 21), "127.0.0.1:2 (offline)");

  const auto report = once_report(v, *at + 3200ms);
  ASSERT_EQ(report.size(), 7u);
  EXPECT_EQ(report[5], "last errors:");
  EXPECT_EQ(report[6], "  127.0.0.1:2: connect failed 3.2 s ago: connection refused");
}

// A push with the pool's life: `status`, closes by reason (pool and
// backend), connects in flight and waiting, as the server writes them.
std::string lifecycle_push(const std::string& status) {
  auto o = json::parse(push(two(5, 7))).as_object();
  o["name"] = "db";
  o["status"] = status;
  o["connects_in_flight"] = 2;
  o["connects_waiting"] = 5;
  o["max_connecting"] = 4;
  o["connections"] = {{"opened", 30},
                      {"closed", {{"lifetime", 3}, {"idle", 12}, {"evicted", 0}, {"lost", 1}}}};
  auto& sets = o["sets"].as_object();
  sets["127.0.0.1:1"].as_object()["connections"] = {
      {"opened", 20}, {"closed", {{"lifetime", 3}, {"idle", 0}, {"lost", 1}}}};
  sets["127.0.0.1:2"].as_object()["connections"] = {{"opened", 10},
                                                    {"closed", {{"lifetime", 0}, {"idle", 0}}}};
  return json::serialize(o);
}

TEST(qtop_view, the_pools_status_closes_by_reason_and_connects_are_shown) {
  view v;
  ASSERT_TRUE(v.update(lifecycle_push("running"), t0, wall0));
  EXPECT_EQ(pool_title(v), "pool db [running]");
  EXPECT_EQ(connections_summary(v),
            "connections: 30 opened, closed: lifetime 3, idle 12, lost 1; connects: 2 in flight, "
            "5 waiting (max_connecting 4)");
  // Only backends with closes, only their non-zero reasons.
  EXPECT_EQ(closed_lines(v), std::vector<std::string>{"  127.0.0.1:1: lifetime 3, lost 1"});

  const auto lines = compose(v, {"ws://h:1/qtop/stats", "", true}, 200, 30, wall0);
  ASSERT_GE(lines.size(), 10u);
  EXPECT_EQ(lines[0].text, "qtop  ws://h:1/qtop/stats  pool db [running]");
  EXPECT_EQ(lines[0].style, look::bold);
  EXPECT_EQ(lines[3].text, connections_summary(v));
  std::vector<std::string> texts;
  for (const auto& l : lines) texts.push_back(l.text);
  const auto heading = std::find(texts.begin(), texts.end(), "CLOSED BY REASON");
  ASSERT_NE(heading, texts.end());
  ASSERT_NE(heading + 1, texts.end());
  EXPECT_EQ(heading[1], "  127.0.0.1:1: lifetime 3, lost 1");

  const auto report = once_report(v, wall0);
  ASSERT_GE(report.size(), 4u);
  EXPECT_EQ(report[0], "pool db [running]");
  EXPECT_EQ(report[3], connections_summary(v));
  EXPECT_EQ(report[report.size() - 2], "closed by reason:");
  EXPECT_EQ(report.back(), "  127.0.0.1:1: lifetime 3, lost 1");
}

TEST(qtop_view, a_failed_pool_is_marked_in_the_title) {
  view v;
  ASSERT_TRUE(v.update(lifecycle_push("failed"), t0, wall0));
  const auto lines = compose(v, {"ws://h:1/qtop/stats", "", true}, 200, 30, wall0);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0].text, "qtop  ws://h:1/qtop/stats  pool db [failed]");
  EXPECT_EQ(lines[0].style, look::alert);
  // Back to running: the mark goes.
  ASSERT_TRUE(v.update(lifecycle_push("running"), t0 + 1s, wall0 + 1s));
  EXPECT_EQ(compose(v, {"ws://h:1/qtop/stats", "", true}, 200, 30, wall0)[0].style, look::bold);
}

TEST(qtop_view, a_pool_with_no_closes_says_none) {
  EXPECT_EQ(closed_summary({}), "none");
  EXPECT_EQ(closed_summary({{"lifetime", 0}, {"idle", 0}}), "none");
  EXPECT_EQ(closed_summary({{"idle", 2}, {"removed", 1}}), "idle 2, removed 1");
}

TEST(qtop_view, the_oldest_holds_are_shown_with_age_slot_backend_and_site) {
  auto doc = json::parse(push(two(5, 7))).as_object();
  json::array holders;
  holders.push_back(json::object{{"slot", 4},
                                 {"backend", "127.0.0.1:1"},
                                 {"age_s", 75},
                                 {"site", {{"label", "app.cpp:42"}}},
                                 {"warned", true}});
  holders.push_back(json::object{{"slot", 9}, {"backend", "127.0.0.1:2"}, {"age_s", 3}});
  doc["holders"] = std::move(holders);
  view v;
  ASSERT_TRUE(v.update(json::serialize(doc), t0, wall0));
  const auto lines = holder_lines(v);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "  75.0 s  slot 4  127.0.0.1:1  app.cpp:42  (warned)");
  EXPECT_EQ(lines[1], "  3.0 s  slot 9  127.0.0.1:2  (site unknown)");
  const auto report = once_report(v, wall0);
  EXPECT_NE(std::find(report.begin(), report.end(), "oldest holds:"), report.end());
  bool on_screen = false;
  for (const auto& line :
       compose(v, {.url = "x", .status = "", .connected = true}, 100, 40, wall0)) {
    on_screen = on_screen || line.text == "OLDEST HOLDS";
  }
  EXPECT_TRUE(on_screen);
  // A push without holds shows none.
  ASSERT_TRUE(v.update(push(two(6, 8)), t0, wall0));
  EXPECT_TRUE(holder_lines(v).empty());
}

}  // namespace
}  // namespace qtop
