// SPDX-License-Identifier: BSL-1.0
// qtop: a live view of a qorb pool, one row per backend, fed by the
// WebSocket /qtop/stats of a qorb::stats_server. Like cueball's cbtop.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <clocale>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <deque>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <curses.h>

#include "observability/stats_request.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

constexpr const char* usage =
    "usage: qtop [--interval S] URL\n"
    "       qtop --once [--json] [--interval S] URL\n"
    "\n"
    "Shows a qorb pool at work, one row per backend: claims per second and\n"
    "connections by state, from a qorb::stats_server; above the table, how\n"
    "close the pool is to saturation (claimed of max_slots, claims waiting);\n"
    "below it, each backend's last connect or check error. URL is the server\n"
    "(http://127.0.0.1:PORT) or its WebSocket (ws://127.0.0.1:PORT/qtop/stats,\n"
    "optionally with ?pool=NAME).\n"
    "\n"
    "Claims per second are taken over the updates of the last 5 s (the header\n"
    "says over how long); '-' until there are two updates.\n"
    "\n"
    "  --interval S  seconds between updates when nothing changes (default 1)\n"
    "  --once        print one table and exit, for scripts: takes two updates\n"
    "                --interval apart, and the rates over that time\n"
    "  --json        with --once: print the first update as received (one JSON\n"
    "                line, at once)\n"
    "\n"
    "A terminal too narrow for every column hides the least useful ones and\n"
    "names them under the table. Keys: q quits; so do SIGINT (Ctrl-C) and\n"
    "SIGTERM, at once, leaving the terminal as it was. When the endpoint is\n"
    "unreachable qtop says so and retries.\n"
    "\n"
    "Exit status: 0 on success (and when q or a signal ends the live view); 1\n"
    "when --once cannot get its updates; 2 on bad arguments; 130 or 143 when\n"
    "SIGINT or SIGTERM interrupts --once before it has its updates.\n";

// --- arguments -------------------------------------------------------------

struct endpoint_url {
  std::string shown;  // the WebSocket URL, as qtop connects to it
  std::string host;
  std::string port;
  std::string target;  // path and query
};

struct options {
  endpoint_url url;
  std::chrono::milliseconds interval{1000};
  std::string interval_text = "1";
  bool once = false;
  bool json = false;
};

// A number of seconds in (0, 86400], as the server takes update_secs.
std::optional<std::chrono::milliseconds> parse_seconds(const std::string& text) {
  return qorb::detail::stats_http::parse_update_secs(text);
}

// ws://HOST[:PORT][/PATH][?QUERY] or http://...; an empty path means
// /qtop/stats, and update_secs is added unless the query has it.
std::variant<endpoint_url, std::string> parse_url(const std::string& text,
                                                  const std::string& interval) {
  std::string rest;
  for (const char* scheme : {"ws://", "http://"}) {
    if (text.starts_with(scheme)) rest = text.substr(std::string_view(scheme).size());
  }
  if (rest.empty()) {
    if (text.starts_with("wss://") || text.starts_with("https://")) {
      return std::string("TLS (wss://, https://) is not supported");
    }
    return "'" + text + "' is not a ws:// or http:// URL";
  }
  endpoint_url url;
  const auto slash = rest.find_first_of("/?");
  const std::string authority = rest.substr(0, slash);
  std::string target = slash == std::string::npos ? "" : rest.substr(slash);
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string::npos) return "bad IPv6 address in '" + text + "'";
    url.host = authority.substr(1, close - 1);
    const std::string after = authority.substr(close + 1);
    if (!after.empty() && !after.starts_with(':')) return "bad port in '" + text + "'";
    url.port = after.empty() ? "80" : after.substr(1);
  } else {
    const auto colon = authority.rfind(':');
    url.host = authority.substr(0, colon);
    url.port = colon == std::string::npos ? "80" : authority.substr(colon + 1);
  }
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(url.port.data(), url.port.data() + url.port.size(), port);
  if (url.host.empty() || url.port.empty() || ec != std::errc{} ||
      end != url.port.data() + url.port.size() || port == 0 || port > 65535) {
    return "bad host or port in '" + text + "'";
  }
  if (target.empty() || target.starts_with('?')) target = "/qtop/stats" + target;
  if (target.starts_with("/?")) target = "/qtop/stats" + target.substr(1);
  if (target == "/") target = "/qtop/stats";
  const auto question = target.find('?');
  const bool has_update =
      question != std::string::npos &&
      ("&" + target.substr(question + 1)).find("&update_secs=") != std::string::npos;
  if (!has_update) {
    target += question == std::string::npos ? "?" : "&";
    target += "update_secs=" + interval;
  }
  url.target = target;
  const bool v6 = url.host.find(':') != std::string::npos;
  url.shown = "ws://" + (v6 ? "[" + url.host + "]" : url.host) + ":" + url.port + target;
  return url;
}

std::variant<options, std::string> parse(int argc, char** argv) {
  options o;
  std::optional<std::string> url;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--once") {
      o.once = true;
    } else if (arg == "--json") {
      o.json = true;
    } else if (arg == "--interval") {
      if (i + 1 >= argc) return std::string("--interval needs a value");
      o.interval_text = argv[++i];
      const auto s = parse_seconds(o.interval_text);
      if (!s) return "bad --interval '" + o.interval_text + "': want seconds in (0, 86400]";
      o.interval = *s;
    } else if (arg.starts_with("-")) {
      return "unknown option '" + arg + "'";
    } else if (url) {
      return std::string("more than one URL");
    } else {
      url = arg;
    }
  }
  if (!url) return std::string("no URL");
  if (o.json && !o.once) return std::string("--json goes with --once");
  auto parsed = parse_url(*url, o.interval_text);
  if (auto* error = std::get_if<std::string>(&parsed)) return *error;
  o.url = std::get<endpoint_url>(parsed);
  return o;
}

// --- the feed ----------------------------------------------------------------

// One connection to the endpoint: connects, then hands every message to
// `on_message` until the connection ends; returns why it ended.
asio::awaitable<std::string> run_feed(const options& o,
                                      const std::function<void(std::string)>& on_message,
                                      const std::function<void()>& on_connected) {
  auto ex = co_await asio::this_coro::executor;
  tcp::resolver resolver(ex);
  auto [rec, results] = co_await resolver.async_resolve(o.url.host, o.url.port, use_nothrow);
  if (rec) co_return "cannot resolve " + o.url.host + ": " + rec.message();
  websocket::stream<beast::tcp_stream> ws(ex);
  auto& tcp_layer = beast::get_lowest_layer(ws);
  tcp_layer.expires_after(3s);
  auto [cec, ep] = co_await tcp_layer.async_connect(results, use_nothrow);
  if (cec) co_return "cannot connect: " + cec.message();
  tcp_layer.expires_never();
  websocket::stream_base::timeout timeouts{};
  timeouts.handshake_timeout = 3s;
  // A server that stops answering pings is gone even without a FIN.
  timeouts.idle_timeout = std::max<clock_type::duration>(5s, 3 * o.interval);
  timeouts.keep_alive_pings = true;
  ws.set_option(timeouts);
  websocket::response_type response;
  auto [hec] = co_await ws.async_handshake(response, o.url.host + ":" + o.url.port, o.url.target,
                                           use_nothrow);
  if (hec) {
    if (response.result_int() != 0 &&
        response.result() != beast::http::status::switching_protocols) {
      std::string body = response.body();
      while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
      co_return "the server answered " + std::to_string(response.result_int()) + " " +
          std::string(response.reason()) + (body.empty() ? "" : ": " + body);
    }
    co_return "WebSocket handshake failed: " + hec.message();
  }
  on_connected();
  beast::flat_buffer buffer;
  for (;;) {
    auto [ec, n] = co_await ws.async_read(buffer, use_nothrow);
    if (ec) {
      if (ec == websocket::error::closed) {
        const auto& reason = ws.reason();
        co_return "the server closed the connection" +
            (reason.reason.empty() ? std::string() : ": " + std::string(reason.reason.c_str()));
      }
      co_return "connection lost: " + ec.message();
    }
    on_message(beast::buffers_to_string(buffer.data()));
    buffer.consume(buffer.size());
  }
}

// --- what the screen shows -------------------------------------------------------

// Rates are taken over this window of samples: the server pushes on every
// change (up to 10 a second) and claims come in bursts, so the time between
// two pushes says nothing about a rate.
constexpr auto rate_window = 5s;

struct last_error_info {
  std::string operation, message;
  std::optional<std::chrono::system_clock::time_point> at;
};

struct backend_row {
  std::string name;
  std::optional<double> claims_per_s;  // none until two samples
  std::uint64_t connecting = 0, unclaimed = 0, checking = 0, claimed = 0, total = 0;
  bool online = false;
  std::optional<last_error_info> last_error;
};

// Claim counters as one update had them.
struct sample {
  clock_type::time_point at;
  std::uint64_t total = 0;
  std::map<std::string, std::uint64_t> backends;
};

// "2026-12-02T01:02:03.456Z" as the server writes it.
std::optional<std::chrono::system_clock::time_point> parse_utc(const std::string& text) {
  std::tm t{};
  int ms = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &t.tm_year, &t.tm_mon, &t.tm_mday,
                  &t.tm_hour, &t.tm_min, &t.tm_sec, &ms) != 7) {
    return std::nullopt;
  }
  t.tm_year -= 1900;
  t.tm_mon -= 1;
  const std::time_t secs = timegm(&t);
  if (secs == static_cast<std::time_t>(-1)) return std::nullopt;
  return std::chrono::system_clock::from_time_t(secs) + std::chrono::milliseconds(ms);
}

struct view {
  explicit view(clock_type::duration w = rate_window) : window(w) {}

  std::vector<backend_row> rows;
  std::optional<double> claims_per_s;  // the pool's, over `rate_span`
  clock_type::duration rate_span{};
  std::uint64_t total_claims = 0;
  // Saturation: absent when the server does not send them.
  std::optional<std::uint64_t> claims_waiting, max_slots, claimed;
  bool have_data = false;
  std::string wall_time;  // of the last update
  clock_type::duration window;
  std::deque<sample> samples;  // oldest first; the first at or before the window's start

  // Takes one message; false if it is not what the endpoint sends.
  bool update(const std::string& text, clock_type::time_point now = clock_type::now()) {
    error_code_type ec;
    const json::value v = json::parse(text, ec);
    if (ec || !v.is_object()) return false;
    const auto& o = v.as_object();
    const auto* sets = o.if_contains("sets");
    const auto* claims = o.if_contains("claims");
    if (!sets || !sets->is_object() || !claims || !claims->is_number()) return false;
    std::vector<backend_row> next;
    sample s{now, 0, {}};
    for (const auto& [name, stats] : sets->as_object()) {
      if (!stats.is_object()) return false;
      const auto& b = stats.as_object();
      backend_row r;
      r.name = name;
      r.connecting = number(b, "connecting").value_or(0);
      r.unclaimed = number(b, "unclaimed").value_or(0);
      r.checking = number(b, "checking").value_or(0);
      r.claimed = number(b, "claimed").value_or(0);
      r.total = number(b, "total_claims").value_or(0);
      const auto* online = b.if_contains("online");
      r.online = online && online->is_bool() && online->as_bool();
      if (const auto* e = b.if_contains("last_error"); e && e->is_object()) {
        last_error_info info;
        info.operation = text_of(e->as_object(), "operation");
        info.message = text_of(e->as_object(), "message");
        info.at = parse_utc(text_of(e->as_object(), "at"));
        r.last_error = std::move(info);
      }
      s.backends[r.name] = r.total;
      s.total += r.total;
      next.push_back(std::move(r));
    }
    // The pool's count also has the claims of backends no longer listed.
    if (const auto total = number(o, "total_claims")) s.total = *total;
    claims_waiting = number(o, "claims_waiting");
    max_slots = number(o, "max_slots");
    claimed = number(o, "claimed");
    if (!samples.empty() && s.total < samples.back().total) samples.clear();  // a new pool
    samples.push_back(std::move(s));
    while (samples.size() > 2 && samples[1].at <= now - window) samples.pop_front();
    const auto& newest = samples.back();
    claims_per_s.reset();
    if (samples.size() >= 2 && newest.at > samples.front().at) {
      rate_span = newest.at - samples.front().at;
      claims_per_s = static_cast<double>(newest.total - samples.front().total) / seconds(rate_span);
    }
    for (auto& r : next) {
      // From the oldest sample that lists the backend.
      for (const auto& old : samples) {
        const auto it = old.backends.find(r.name);
        if (it == old.backends.end()) continue;
        if (old.at < newest.at && r.total >= it->second) {
          r.claims_per_s = static_cast<double>(r.total - it->second) / seconds(newest.at - old.at);
        }
        break;
      }
    }
    total_claims = newest.total;
    rows = std::move(next);
    have_data = true;
    const std::time_t t = std::time(nullptr);
    char buf[16];
    std::tm local{};
    localtime_r(&t, &local);
    std::strftime(buf, sizeof buf, "%H:%M:%S", &local);
    wall_time = buf;
    return true;
  }

  // A new connection: rates restart from its first message.
  void reconnected() { samples.clear(); }

  using error_code_type = boost::system::error_code;

 private:
  static double seconds(clock_type::duration d) { return std::chrono::duration<double>(d).count(); }

  static std::optional<std::uint64_t> number(const json::object& o, const char* key) {
    const auto* f = o.if_contains(key);
    if (!f || !f->is_number()) return std::nullopt;
    error_code_type ec;
    const auto n = f->to_number<std::uint64_t>(ec);
    if (ec) return std::nullopt;
    return n;
  }

  static std::string text_of(const json::object& o, const char* key) {
    const auto* f = o.if_contains(key);
    return f && f->is_string() ? std::string(f->as_string()) : std::string();
  }
};

std::string format_seconds(clock_type::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", std::chrono::duration<double>(d).count());
  return buf;
}

std::string format_rate(const std::optional<double>& rate) {
  if (!rate) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", *rate);
  return buf;
}

// "20.0 claims/s over the last 5.0 s", or why there is no rate yet.
std::string rate_summary(const view& v) {
  if (!v.claims_per_s) return "claims/s: - (needs two updates)";
  return format_rate(v.claims_per_s) + " claims/s over the last " + format_seconds(v.rate_span);
}

// "3 of max_slots 8 claimed (38%), 0 claims waiting", from what the server
// sent.
std::string saturation_summary(const view& v) {
  std::uint64_t claimed = 0;
  for (const auto& r : v.rows) claimed += r.claimed;
  if (v.claimed) claimed = *v.claimed;
  std::string out = "saturation: " + std::to_string(claimed);
  if (v.max_slots && *v.max_slots > 0) {
    out += " of max_slots " + std::to_string(*v.max_slots) + " claimed (" +
           std::to_string((claimed * 100 + *v.max_slots / 2) / *v.max_slots) + "%)";
  } else {
    out += " claimed (max_slots not reported)";
  }
  if (v.claims_waiting) {
    out += ", " + std::to_string(*v.claims_waiting) + " claims waiting";
  }
  return out;
}

// "127.0.0.1:1: connect failed 3.2 s ago: connection refused", one per
// backend that has had an error.
std::vector<std::string> error_lines(const view& v) {
  std::vector<std::string> out;
  const auto now = std::chrono::system_clock::now();
  for (const auto& r : v.rows) {
    if (!r.last_error) continue;
    const auto& e = *r.last_error;
    std::string line =
        "  " + r.name + ": " + (e.operation.empty() ? "operation" : e.operation) + " failed";
    if (e.at) {
      line += " " + format_seconds(std::max(now - *e.at, std::chrono::system_clock::duration{})) +
              " ago";
    }
    line += ": " + (e.message.empty() ? std::string("(no reason given)") : e.message);
    out.push_back(std::move(line));
  }
  return out;
}

struct column {
  const char* heading;
  std::function<std::string(const backend_row&)> cell;
  int keep;  // the lowest is hidden first when the terminal is narrow
};

const std::vector<column>& columns() {
  static const std::vector<column> all{
      {"CLAIMS/S", [](const backend_row& r) { return format_rate(r.claims_per_s); }, 6},
      {"CONNECTING", [](const backend_row& r) { return std::to_string(r.connecting); }, 3},
      {"UNCLAIMED", [](const backend_row& r) { return std::to_string(r.unclaimed); }, 4},
      {"CHECKING", [](const backend_row& r) { return std::to_string(r.checking); }, 2},
      {"CLAIMED", [](const backend_row& r) { return std::to_string(r.claimed); }, 5},
      {"TOTAL", [](const backend_row& r) { return std::to_string(r.total); }, 1},
  };
  return all;
}

struct table {
  std::vector<std::string> lines;   // the heading, then one per backend
  std::vector<std::string> hidden;  // headings of the columns left out
  std::size_t full_width = 0;       // what showing every column takes
};

// The backend table, at most `max_width` wide (0: no limit). Columns that
// do not fit are left out, least useful first, and named in `hidden`.
table backend_table(const view& v, std::size_t max_width = 0) {
  const auto shown_name = [](const backend_row& r) {
    return r.name + (r.online ? "" : " (offline)");
  };
  // The name column fits the longest name, so the numbers stay in view.
  std::size_t name_width = 7;
  for (const auto& r : v.rows) name_width = std::max(name_width, shown_name(r).size());
  name_width = std::min<std::size_t>(name_width, 64);
  const auto& cols = columns();
  std::vector<std::size_t> widths;
  for (const auto& c : cols) {
    std::size_t w = std::string_view(c.heading).size();
    for (const auto& r : v.rows) w = std::max(w, c.cell(r).size());
    widths.push_back(w);
  }
  std::vector<bool> shown(cols.size(), true);
  const auto width_now = [&] {
    std::size_t w = name_width;
    for (std::size_t i = 0; i < cols.size(); ++i) w += shown[i] ? widths[i] + 1 : 0;
    return w;
  };
  table out;
  out.full_width = width_now();
  for (int keep = 1; max_width > 0 && width_now() > max_width && keep <= 6; ++keep) {
    for (std::size_t i = 0; i < cols.size(); ++i) {
      if (cols[i].keep == keep) shown[i] = false;
    }
  }
  for (std::size_t i = 0; i < cols.size(); ++i) {
    if (!shown[i]) out.hidden.emplace_back(cols[i].heading);
  }
  const auto line = [&](const std::string& name, const auto& cell) {
    std::string s = name;
    s.resize(std::max(s.size(), name_width), ' ');
    for (std::size_t i = 0; i < cols.size(); ++i) {
      if (!shown[i]) continue;
      const std::string text = cell(i);
      s += ' ';
      s.append(widths[i] - std::min(widths[i], text.size()), ' ');
      s += text;
    }
    return s;
  };
  out.lines.push_back(line("BACKEND", [&](std::size_t i) { return std::string(cols[i].heading); }));
  for (const auto& r : v.rows) {
    out.lines.push_back(line(shown_name(r), [&](std::size_t i) { return cols[i].cell(r); }));
  }
  return out;
}

// The note under a table with columns left out, in lines at most `width`
// wide (0: one line), so that it is never cut itself.
std::vector<std::string> hidden_note(const table& t, std::size_t width = 0) {
  std::vector<std::string> words{
      "hidden", "columns", "(too", "narrow;", std::to_string(t.full_width), "show", "all):"};
  words.insert(words.end(), t.hidden.begin(), t.hidden.end());
  std::vector<std::string> lines{""};
  for (const auto& w : words) {
    if (!lines.back().empty() && width > 0 && lines.back().size() + 1 + w.size() > width) {
      lines.emplace_back();
    }
    if (!lines.back().empty()) lines.back() += ' ';
    lines.back() += w;
  }
  return lines;
}

// --- the terminal ------------------------------------------------------------------

class terminal {
 public:
  terminal() {
    std::setlocale(LC_ALL, "");
    initscr();
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    curs_set(0);
  }
  ~terminal() { endwin(); }
  terminal(const terminal&) = delete;
  terminal& operator=(const terminal&) = delete;

  void draw(const options& o, const view& v, const std::string& status, bool connected) {
    erase();
    int row = 0;
    put(row++, "qtop  " + o.url.shown, A_BOLD);
    if (connected) {
      std::size_t online = 0;
      for (const auto& r : v.rows) online += r.online ? 1 : 0;
      put(row++,
          "connected: " + std::to_string(v.rows.size()) + " backends, " + std::to_string(online) +
              " online, " + rate_summary(v) +
              (v.have_data ? "  (updated " + v.wall_time + ")" : ""),
          0);
    } else {
      put(row++, status, A_BOLD | A_REVERSE);
    }
    if (v.have_data) put(row++, saturation_summary(v), 0);
    ++row;
    if (v.have_data) {
      const auto t = backend_table(v, static_cast<std::size_t>(std::max(1, COLS)));
      for (std::size_t i = 0; i < t.lines.size(); ++i) {
        put(row++, t.lines[i], i == 0 ? A_UNDERLINE : (connected ? 0 : A_DIM));
      }
      if (!t.hidden.empty()) {
        for (const auto& line : hidden_note(t, static_cast<std::size_t>(std::max(1, COLS)))) {
          put(row++, line, A_BOLD);
        }
      }
      if (!connected) put(row++, "(last known values, from " + v.wall_time + ")", A_DIM);
      const auto errors = error_lines(v);
      if (!errors.empty()) {
        ++row;
        put(row++, "LAST ERRORS", A_UNDERLINE);
        for (const auto& e : errors) put(row++, e, 0);
      }
    } else if (connected) {
      put(row++, "waiting for the first update...", 0);
    }
    put(LINES - 1, "q: quit", A_DIM);
    refresh();
  }

  // The next key, or ERR when none is waiting.
  int key() { return getch(); }

 private:
  // A line too long for the terminal ends in '>', so nothing is cut
  // silently.
  static void put(int row, const std::string& text, int attributes) {
    if (row < 0 || row >= LINES || COLS <= 0) return;
    attron(attributes);
    const auto cols = static_cast<std::size_t>(COLS);
    if (text.size() > cols) {
      mvaddnstr(row, 0, text.c_str(), COLS - 1);
      mvaddch(row, COLS - 1, '>');
    } else {
      mvaddnstr(row, 0, text.c_str(), COLS);
    }
    attroff(attributes);
  }
};

// --- modes ----------------------------------------------------------------------------

// Once: the first update, then (for the table) the first one at least
// --interval after it, for the rates.
int run_once(const options& o) {
  asio::io_context io;
  std::optional<std::string> first, second;
  clock_type::time_point first_at{}, second_at{};
  std::string failure;
  int interrupted = 0;
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int signal) {
    if (ec) return;
    interrupted = signal;
    io.stop();
  });
  asio::steady_timer deadline(io, 5s + (o.json ? 0ms : o.interval));
  deadline.async_wait([&](boost::system::error_code ec) {
    if (!ec) {
      failure = first ? "no second update within --interval + 5 s" : "no update within 5 s";
      io.stop();
    }
  });
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        failure = co_await run_feed(
            o,
            [&](std::string text) {
              const auto now = clock_type::now();
              if (!first) {
                first = std::move(text);
                first_at = now;
                if (o.json) io.stop();
              } else if (now - first_at >= o.interval) {
                second = std::move(text);
                second_at = now;
                io.stop();
              }
            },
            [] {});
        io.stop();
      },
      asio::detached);
  io.run();
  if (interrupted != 0) {
    std::cerr << "qtop: interrupted (" << (interrupted == SIGINT ? "SIGINT" : "SIGTERM")
              << ") before the updates came\n";
    return 128 + interrupted;
  }
  if (!first || (!o.json && !second)) {
    std::cerr << "qtop: " << o.url.shown << ": " << failure << "\n";
    return 1;
  }
  if (o.json) {
    std::cout << *first << "\n";
    return 0;
  }
  view v(o.interval);
  if (!v.update(*first, first_at) || !v.update(*second, second_at)) {
    std::cerr << "qtop: " << o.url.shown << ": not a qtop update: " << *first << "\n";
    return 1;
  }
  std::cout << rate_summary(v) << "\n" << saturation_summary(v) << "\n";
  for (const auto& line : backend_table(v).lines) std::cout << line << "\n";
  const auto errors = error_lines(v);
  if (!errors.empty()) std::cout << "last errors:\n";
  for (const auto& line : errors) std::cout << line << "\n";
  return 0;
}

int run_interactive(const options& o) {
  asio::io_context io;
  terminal term;
  view v;
  bool connected = false;
  std::string status = "connecting to " + o.url.shown + " ...";
  const auto redraw = [&] { term.draw(o, v, status, connected); };
  redraw();

  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer pause(co_await asio::this_coro::executor);
        auto backoff = 250ms;
        for (;;) {
          const std::string why = co_await run_feed(
              o,
              [&](std::string text) {
                if (v.update(text)) backoff = 250ms;
                redraw();
              },
              [&] {
                connected = true;
                v.reconnected();
                status.clear();
                redraw();
              });
          const bool was_connected = connected;
          connected = false;
          const auto seconds = std::chrono::duration<double>(backoff).count();
          char retry[64];
          std::snprintf(retry, sizeof retry, " -- retrying every %.1f s", seconds);
          status = std::string(was_connected ? "ENDPOINT WENT AWAY: " : "UNREACHABLE: ") +
                   o.url.shown + ": " + why + retry;
          redraw();
          pause.expires_after(backoff);
          co_await pause.async_wait(use_nothrow);
          backoff = std::min<std::chrono::milliseconds>(backoff * 2, 4s);
        }
      },
      asio::detached);

  // SIGINT and SIGTERM end it as q does (ncurses's own handlers, replaced
  // here, would exit without this function's cleanup).
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int) {
    if (!ec) io.stop();
  });

  // Keys, and KEY_RESIZE (which ncurses reports after SIGWINCH), polled.
  asio::steady_timer keys(io);
  std::function<void()> poll_keys = [&] {
    for (int k = term.key(); k != ERR; k = term.key()) {
      if (k == 'q' || k == 'Q') {
        io.stop();
        return;
      }
      if (k == KEY_RESIZE) redraw();
    }
    keys.expires_after(50ms);
    keys.async_wait([&](boost::system::error_code ec) {
      if (!ec) poll_keys();
    });
  };
  poll_keys();
  io.run();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
    std::cout << usage;
    return 0;
  }
  auto parsed = parse(argc, argv);
  if (auto* error = std::get_if<std::string>(&parsed)) {
    std::cerr << "qtop: " << *error << "\n\n" << usage;
    return 2;
  }
  const auto& o = std::get<options>(parsed);
  return o.once ? run_once(o) : run_interactive(o);
}
