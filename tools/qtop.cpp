// qtop: a live view of a qorb pool, one row per backend, fed by the
// WebSocket /qtop/stats of a qorb::stats_server. Like cueball's cbtop.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
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
#include <cstdio>
#include <ctime>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <curses.h>

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
    "connections by state, from a qorb::stats_server. URL is the server\n"
    "(http://127.0.0.1:PORT) or its WebSocket (ws://127.0.0.1:PORT/qtop/stats,\n"
    "optionally with ?pool=NAME).\n"
    "\n"
    "  --interval S  seconds between updates when nothing changes (default 1)\n"
    "  --once        print one update and exit, for scripts\n"
    "  --json        with --once: print the update as received (one JSON line)\n"
    "\n"
    "Keys: q quits. When the endpoint is unreachable qtop says so and retries.\n"
    "Exit status: 0 on success, 1 when --once cannot get an update, 2 on bad\n"
    "arguments.\n";

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

std::optional<std::chrono::milliseconds> parse_seconds(const std::string& text) {
  double seconds = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() ||
      !std::isfinite(seconds) || seconds <= 0 || seconds > 86400) {
    return std::nullopt;
  }
  return std::chrono::milliseconds(std::max<long long>(1, std::llround(seconds * 1000)));
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

struct backend_row {
  std::string name;
  double claims_per_s = 0;
  std::uint64_t connecting = 0, unclaimed = 0, checking = 0, claimed = 0, total = 0;
  bool online = false;
};

struct view {
  std::vector<backend_row> rows;
  double claims_per_s = 0;
  bool have_data = false;
  std::optional<clock_type::time_point> last_update;
  std::string wall_time;  // of the last update

  // Takes one message; false if it is not what the endpoint sends.
  bool update(const std::string& text) {
    error_code_type ec;
    const json::value v = json::parse(text, ec);
    if (ec || !v.is_object()) return false;
    const auto& o = v.as_object();
    const auto* sets = o.if_contains("sets");
    const auto* claims = o.if_contains("claims");
    if (!sets || !sets->is_object() || !claims || !claims->is_number()) return false;
    const auto now = clock_type::now();
    const double elapsed =
        last_update ? std::chrono::duration<double>(now - *last_update).count() : 0.0;
    std::map<std::string, std::uint64_t> previous;
    for (const auto& r : rows) previous[r.name] = r.total;
    std::vector<backend_row> next;
    for (const auto& [name, stats] : sets->as_object()) {
      if (!stats.is_object()) return false;
      const auto& s = stats.as_object();
      const auto number = [&](const char* key) -> std::uint64_t {
        const auto* f = s.if_contains(key);
        error_code_type nec;
        const auto n = f ? f->to_number<std::uint64_t>(nec) : 0;
        return nec ? 0 : n;
      };
      backend_row r;
      r.name = name;
      r.connecting = number("connecting");
      r.unclaimed = number("unclaimed");
      r.checking = number("checking");
      r.claimed = number("claimed");
      r.total = number("total_claims");
      const auto* online = s.if_contains("online");
      r.online = online && online->is_bool() && online->as_bool();
      const auto before = previous.find(r.name);
      if (elapsed > 0 && before != previous.end() && r.total >= before->second) {
        r.claims_per_s = static_cast<double>(r.total - before->second) / elapsed;
      }
      next.push_back(std::move(r));
    }
    error_code_type cec;
    const auto pool_claims = claims->to_number<double>(cec);
    claims_per_s = elapsed > 0 && !cec ? pool_claims / elapsed : 0.0;
    rows = std::move(next);
    have_data = true;
    last_update = now;
    const std::time_t t = std::time(nullptr);
    char buf[16];
    std::tm local{};
    localtime_r(&t, &local);
    std::strftime(buf, sizeof buf, "%H:%M:%S", &local);
    wall_time = buf;
    return true;
  }

  // A new connection: rates restart from its first message.
  void reconnected() { last_update.reset(); }

  using error_code_type = boost::system::error_code;
};

std::string format_row(int name_width, const std::string& name, const std::string& rate,
                       const std::string& c1, const std::string& c2, const std::string& c3,
                       const std::string& c4, const std::string& total) {
  char buf[512];
  std::snprintf(buf, sizeof buf, "%-*s %10s %10s %10s %9s %8s %10s", name_width, name.c_str(),
                rate.c_str(), c1.c_str(), c2.c_str(), c3.c_str(), c4.c_str(), total.c_str());
  return buf;
}

std::vector<std::string> table_lines(const view& v) {
  const auto shown_name = [](const backend_row& r) {
    return r.name + (r.online ? "" : " (offline)");
  };
  // The name column fits the longest name, so the numbers stay in view.
  std::size_t width = 7;
  for (const auto& r : v.rows) width = std::max(width, shown_name(r).size());
  const int w = static_cast<int>(std::min<std::size_t>(width, 64));
  std::vector<std::string> lines;
  lines.push_back(format_row(w, "BACKEND", "CLAIMS/S", "CONNECTING", "UNCLAIMED", "CHECKING",
                             "CLAIMED", "TOTAL"));
  for (const auto& r : v.rows) {
    char rate[32];
    std::snprintf(rate, sizeof rate, "%.1f", r.claims_per_s);
    lines.push_back(format_row(w, shown_name(r), rate, std::to_string(r.connecting),
                               std::to_string(r.unclaimed), std::to_string(r.checking),
                               std::to_string(r.claimed), std::to_string(r.total)));
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
      char summary[128];
      std::size_t online = 0;
      for (const auto& r : v.rows) online += r.online ? 1 : 0;
      std::snprintf(summary, sizeof summary, "connected: %zu backends, %zu online, %.1f claims/s",
                    v.rows.size(), online, v.claims_per_s);
      put(row++, std::string(summary) + (v.have_data ? "  (updated " + v.wall_time + ")" : ""), 0);
    } else {
      put(row++, status, A_BOLD | A_REVERSE);
    }
    ++row;
    if (v.have_data) {
      const auto lines = table_lines(v);
      for (std::size_t i = 0; i < lines.size(); ++i) {
        put(row++, lines[i], i == 0 ? A_UNDERLINE : (connected ? 0 : A_DIM));
      }
      if (!connected) put(row++, "(last known values, from " + v.wall_time + ")", A_DIM);
    } else if (connected) {
      put(row++, "waiting for the first update...", 0);
    }
    put(LINES - 1, "q: quit", A_DIM);
    refresh();
  }

  // The next key, or ERR when none is waiting.
  int key() { return getch(); }

 private:
  static void put(int row, const std::string& text, int attributes) {
    if (row < 0 || row >= LINES) return;
    attron(attributes);
    mvaddnstr(row, 0, text.c_str(), std::max(0, COLS));
    attroff(attributes);
  }
};

// --- modes ----------------------------------------------------------------------------

int run_once(const options& o) {
  asio::io_context io;
  std::optional<std::string> message;
  std::string failure;
  asio::steady_timer deadline(io, 5s);
  deadline.async_wait([&](boost::system::error_code ec) {
    if (!ec) {
      failure = "no update within 5 s";
      io.stop();
    }
  });
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        failure = co_await run_feed(
            o,
            [&](std::string text) {
              message = std::move(text);
              io.stop();
            },
            [] {});
        io.stop();
      },
      asio::detached);
  io.run();
  if (!message) {
    std::cerr << "qtop: " << o.url.shown << ": " << failure << "\n";
    return 1;
  }
  if (o.json) {
    std::cout << *message << "\n";
    return 0;
  }
  view v;
  if (!v.update(*message)) {
    std::cerr << "qtop: " << o.url.shown << ": not a qtop update: " << *message << "\n";
    return 1;
  }
  for (const auto& line : table_lines(v)) std::cout << line << "\n";
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
