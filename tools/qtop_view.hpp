// SPDX-License-Identifier: BSL-1.0
// qtop's view model: what qtop shows, computed from the updates it
// receives, the terminal's size and the time, all passed in. Pure (no
// curses, no sockets, no clock reads), so that
// tests/observability/qtop_view_test.cpp checks it as it is; the terminal
// (qtop_terminal.hpp) only draws the lines `compose` returns.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace qtop {

using clock_type = std::chrono::steady_clock;
using wall_clock = std::chrono::system_clock;

// Rates are taken over this window of samples: the server pushes on every
// change (up to 10 a second) and claims come in bursts, so the time between
// two pushes says nothing about a rate.
constexpr auto rate_window = std::chrono::seconds(5);

struct last_error_info {
  std::string operation, message;
  std::optional<wall_clock::time_point> at;
};

// Connections closed, by reason, in the order the server lists them.
using closes = std::vector<std::pair<std::string, std::uint64_t>>;

struct backend_row {
  std::string name;
  std::optional<double> claims_per_s;  // none until two samples
  std::uint64_t connecting = 0, unclaimed = 0, checking = 0, claimed = 0, total = 0;
  bool online = false;
  std::optional<last_error_info> last_error;
  closes closed;  // empty when the server does not send them
};

// Claim counters as one update had them.
/// A claimed connection held long (the pool's oldest holds).
struct holder_row {
  std::string backend, site;
  std::uint64_t slot = 0;
  double age_s = 0;
  bool warned = false;
};

struct sample {
  clock_type::time_point at;
  std::uint64_t total = 0;
  std::map<std::string, std::uint64_t> backends;
};

// "2026-12-02T01:02:03.456Z" as the server writes it.
std::optional<wall_clock::time_point> parse_utc(const std::string& text);

struct view {
  explicit view(clock_type::duration w = rate_window) : window(w) {}

  std::vector<backend_row> rows;       // in the order the server lists them
  std::vector<holder_row> holders;     // the oldest holds, oldest first
  std::optional<double> claims_per_s;  // the pool's, over `rate_span`
  clock_type::duration rate_span{};
  std::uint64_t total_claims = 0;
  // Saturation: absent when the server does not send them.
  std::optional<std::uint64_t> claims_waiting, max_slots, claimed;
  // The pool's life: absent (empty) when the server does not send them.
  std::string pool_name, status;
  std::optional<std::uint64_t> opened, connects_in_flight, connects_waiting, max_connecting;
  closes closed;  // the pool's, removed backends' included
  bool have_data = false;
  std::string wall_time;  // of the last update, local HH:MM:SS
  clock_type::duration window;
  std::deque<sample> samples;  // oldest first; the first at or before the window's start

  // Takes one message, received at `now` (`wall_now` on the wall clock);
  // false if it is not what the endpoint sends.
  bool update(const std::string& text, clock_type::time_point now, wall_clock::time_point wall_now);

  // A new connection: rates restart from its first message.
  void reconnected() { samples.clear(); }
};

std::string format_seconds(clock_type::duration d);
std::string format_rate(const std::optional<double>& rate);

// "20.0 claims/s over the last 5.0 s", or why there is no rate yet.
std::string rate_summary(const view& v);

// "3 of max_slots 8 claimed (38%), 0 claims waiting", from what the server
// sent.
std::string saturation_summary(const view& v);

// "lifetime 3, idle 12": the reasons with closes, or "none".
std::string closed_summary(const closes& c);

// "pool db [running]" (or "[failed]"), empty when the server did not say.
std::string pool_title(const view& v);

// "connections: 20 opened, closed: lifetime 3, idle 12; connects: 1 in
// flight, 0 waiting (max_connecting 4)", empty when the server did not
// send them.
std::string connections_summary(const view& v);

// "  127.0.0.1:1: lifetime 3, idle 12", one per backend that has closed
// some connection.
std::vector<std::string> closed_lines(const view& v);

// "127.0.0.1:1: connect failed 3.2 s ago: connection refused", one per
// backend that has had an error, as of `now`.
std::vector<std::string> error_lines(const view& v, wall_clock::time_point now);
/// "  12 s  slot 3  db-1  app.cpp:42", one per hold the pool listed
/// (oldest first; "(warned)" past the pool's hold_warning).
std::vector<std::string> holder_lines(const view& v);

struct table {
  std::vector<std::string> lines;   // the heading, then one per backend
  std::vector<std::string> hidden;  // headings of the columns left out
  std::size_t full_width = 0;       // what showing every column takes
};

// The backend table, at most `max_width` wide (0: no limit). Columns that
// do not fit are left out, least useful first, and named in `hidden`.
table backend_table(const view& v, std::size_t max_width = 0);

// The note under a table with columns left out, in lines at most `width`
// wide (0: one line), so that it is never cut itself.
std::vector<std::string> hidden_note(const table& t, std::size_t width = 0);

// --once's table, for scripts: the summaries, the table, the last errors.
std::vector<std::string> once_report(const view& v, wall_clock::time_point now);

// How the terminal shows a line.
enum class look { plain, bold, alert, heading, dim };

// One line of the screen, fitted to its width: a longer text is cut, and
// ends in '>' (`cut`) so that nothing is cut silently.
struct screen_line {
  int row = 0;
  std::string text;
  look style = look::plain;
  bool cut = false;
};

// What the live view knows besides the updates.
struct connection_state {
  std::string url;     // as shown in the title
  std::string status;  // why it is not connected
  bool connected = false;
};

// The live screen, `cols` x `rows_on_screen`, as lines to draw in order (a
// later line on the same row is drawn over an earlier one).
std::vector<screen_line> compose(const view& v, const connection_state& c, int cols,
                                 int rows_on_screen, wall_clock::time_point now);

}  // namespace qtop
