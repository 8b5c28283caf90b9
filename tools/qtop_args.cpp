// SPDX-License-Identifier: BSL-1.0
// qtop's command line.
#include "qtop_args.hpp"

#include <charconv>
#include <optional>
#include <string_view>

#include "observability/stats_request.hpp"

namespace qtop {

const char* const usage =
    "usage: qtop [--interval S] URL\n"
    "       qtop --once [--json] [--interval S] URL\n"
    "\n"
    "Shows a qorb pool at work, one row per backend: claims per second and\n"
    "connections by state, from a qorb::stats_server. The title has the\n"
    "pool's status ([running], [failed], ...); above the table, how close the\n"
    "pool is to saturation (claimed of max_slots, claims waiting), and its\n"
    "connections opened, closed by reason, and connects in flight and\n"
    "waiting; below it, each backend's closes by reason and its last connect\n"
    "or check error. URL is the server\n"
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

namespace {

// A number of seconds in (0, 86400], as the server takes update_secs.
std::optional<std::chrono::milliseconds> parse_seconds(const std::string& text) {
  return qorb::detail::stats_http::parse_update_secs(text);
}

}  // namespace

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

}  // namespace qtop
