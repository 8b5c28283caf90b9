// SPDX-License-Identifier: BSL-1.0
// qtop's view model (see qtop_view.hpp).
#include "qtop_view.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <functional>
#include <string_view>

namespace qtop {

namespace {

namespace json = boost::json;

double seconds(clock_type::duration d) { return std::chrono::duration<double>(d).count(); }

std::optional<std::uint64_t> number(const json::object& o, const char* key) {
  const auto* f = o.if_contains(key);
  if (!f || !f->is_number()) return std::nullopt;
  boost::system::error_code ec;
  const auto n = f->to_number<std::uint64_t>(ec);
  if (ec) return std::nullopt;
  return n;
}

std::string text_of(const json::object& o, const char* key) {
  const auto* f = o.if_contains(key);
  return f && f->is_string() ? std::string(f->as_string()) : std::string();
}

// `{"closed": {REASON: N, ...}}` of a "connections" object, in order.
closes closes_of(const json::object& o) {
  closes out;
  const auto* c = o.if_contains("connections");
  if (!c || !c->is_object()) return out;
  const auto* closed = c->as_object().if_contains("closed");
  if (!closed || !closed->is_object()) return out;
  for (const auto& [reason, n] : closed->as_object()) {
    boost::system::error_code ec;
    const auto count = n.is_number() ? n.to_number<std::uint64_t>(ec) : 0;
    out.emplace_back(std::string(reason), ec ? 0 : count);
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

}  // namespace

std::optional<wall_clock::time_point> parse_utc(const std::string& text) {
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
  return wall_clock::from_time_t(secs) + std::chrono::milliseconds(ms);
}

bool view::update(const std::string& text, clock_type::time_point now,
                  wall_clock::time_point wall_now) {
  boost::system::error_code ec;
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
    r.closed = closes_of(b);
    s.backends[r.name] = r.total;
    s.total += r.total;
    next.push_back(std::move(r));
  }
  // The pool's count also has the claims of backends no longer listed.
  if (const auto total = number(o, "total_claims")) s.total = *total;
  claims_waiting = number(o, "claims_waiting");
  max_slots = number(o, "max_slots");
  claimed = number(o, "claimed");
  pool_name = text_of(o, "name");
  status = text_of(o, "status");
  opened.reset();
  if (const auto* c = o.if_contains("connections"); c && c->is_object()) {
    opened = number(c->as_object(), "opened");
  }
  closed = closes_of(o);
  holders.clear();
  if (const auto* h = o.if_contains("holders"); h && h->is_array()) {
    for (const auto& item : h->as_array()) {
      if (!item.is_object() || holders.size() == 5) continue;
      const auto& ho = item.as_object();
      holder_row row;
      row.backend = text_of(ho, "backend");
      row.slot = number(ho, "slot").value_or(0);
      if (const auto* age = ho.if_contains("age_s"); age && age->is_number()) {
        row.age_s = age->to_number<double>();
      }
      if (const auto* site = ho.if_contains("site"); site && site->is_object()) {
        row.site = text_of(site->as_object(), "label");
      }
      const auto* warned = ho.if_contains("warned");
      row.warned = warned && warned->is_bool() && warned->as_bool();
      holders.push_back(std::move(row));
    }
  }
  connects_in_flight = number(o, "connects_in_flight");
  connects_waiting = number(o, "connects_waiting");
  max_connecting = number(o, "max_connecting");
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
  const std::time_t t = wall_clock::to_time_t(wall_now);
  char buf[16];
  std::tm local{};
  localtime_r(&t, &local);
  std::strftime(buf, sizeof buf, "%H:%M:%S", &local);
  wall_time = buf;
  return true;
}

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

std::string closed_summary(const closes& c) {
  std::string out;
  for (const auto& [reason, n] : c) {
    if (n == 0) continue;
    if (!out.empty()) out += ", ";
    out += reason + " " + std::to_string(n);
  }
  return out.empty() ? "none" : out;
}

std::string pool_title(const view& v) {
  if (v.pool_name.empty() && v.status.empty()) return {};
  std::string out = "pool";
  if (!v.pool_name.empty()) out += " " + v.pool_name;
  if (!v.status.empty()) out += " [" + v.status + "]";
  return out;
}

std::string connections_summary(const view& v) {
  if (!v.opened && v.closed.empty() && !v.connects_in_flight && !v.connects_waiting) return {};
  std::string out = "connections: ";
  out += v.opened ? std::to_string(*v.opened) : std::string("-");
  out += " opened, closed: " + closed_summary(v.closed);
  if (v.connects_in_flight || v.connects_waiting) {
    out += "; connects: " + std::to_string(v.connects_in_flight.value_or(0)) + " in flight, " +
           std::to_string(v.connects_waiting.value_or(0)) + " waiting";
    if (v.max_connecting && *v.max_connecting > 0) {
      out += " (max_connecting " + std::to_string(*v.max_connecting) + ")";
    }
  }
  return out;
}

std::vector<std::string> closed_lines(const view& v) {
  std::vector<std::string> out;
  for (const auto& r : v.rows) {
    const auto summary = closed_summary(r.closed);
    if (summary != "none") out.push_back("  " + r.name + ": " + summary);
  }
  return out;
}

// "127.0.0.1:1: connect failed 3.2 s ago: connection refused", one per
// backend that has had an error.
std::vector<std::string> error_lines(const view& v, wall_clock::time_point now) {
  std::vector<std::string> out;
  for (const auto& r : v.rows) {
    if (!r.last_error) continue;
    const auto& e = *r.last_error;
    std::string line =
        "  " + r.name + ": " + (e.operation.empty() ? "operation" : e.operation) + " failed";
    if (e.at) {
      line += " " + format_seconds(std::max(now - *e.at, wall_clock::duration{})) + " ago";
    }
    line += ": " + (e.message.empty() ? std::string("(no reason given)") : e.message);
    out.push_back(std::move(line));
  }
  return out;
}

std::vector<std::string> holder_lines(const view& v) {
  std::vector<std::string> out;
  for (const auto& h : v.holders) {
    std::string line = "  " + format_seconds(std::chrono::duration_cast<clock_type::duration>(
                                  std::chrono::duration<double>(h.age_s)));
    line += "  slot " + std::to_string(h.slot) + "  " + h.backend + "  " +
            (h.site.empty() ? std::string("(site unknown)") : h.site);
    if (h.warned) line += "  (warned)";
    out.push_back(std::move(line));
  }
  return out;
}

// The backend table, at most `max_width` wide (0: no limit). Columns that
// do not fit are left out, least useful first, and named in `hidden`.
table backend_table(const view& v, std::size_t max_width) {
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
std::vector<std::string> hidden_note(const table& t, std::size_t width) {
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

std::vector<std::string> once_report(const view& v, wall_clock::time_point now) {
  std::vector<std::string> out;
  if (const auto title = pool_title(v); !title.empty()) out.push_back(title);
  out.push_back(rate_summary(v));
  out.push_back(saturation_summary(v));
  if (auto c = connections_summary(v); !c.empty()) out.push_back(std::move(c));
  for (auto& line : backend_table(v).lines) out.push_back(std::move(line));
  const auto closed_by_backend = closed_lines(v);
  if (!closed_by_backend.empty()) out.emplace_back("closed by reason:");
  out.insert(out.end(), closed_by_backend.begin(), closed_by_backend.end());
  const auto errors = error_lines(v, now);
  if (!errors.empty()) out.emplace_back("last errors:");
  out.insert(out.end(), errors.begin(), errors.end());
  const auto holds = holder_lines(v);
  if (!holds.empty()) out.emplace_back("oldest holds:");
  out.insert(out.end(), holds.begin(), holds.end());
  return out;
}

std::vector<screen_line> compose(const view& v, const connection_state& c, int cols,
                                 int rows_on_screen, wall_clock::time_point now) {
  std::vector<screen_line> out;
  // Lines off the screen are left out; a longer one ends in '>'.
  const auto put = [&](int row, std::string text, look style) {
    if (row < 0 || row >= rows_on_screen || cols <= 0) return;
    const auto width = static_cast<std::size_t>(cols);
    const bool cut = text.size() > width;
    if (cut) {
      text.resize(width - 1);
      text += '>';
    }
    out.push_back({row, std::move(text), style, cut});
  };
  const auto width = static_cast<std::size_t>(std::max(1, cols));
  int row = 0;
  // The pool's status beside its name; a failed pool stands out.
  const auto title = pool_title(v);
  put(row++, "qtop  " + c.url + (title.empty() ? "" : "  " + title),
      v.status == "failed" ? look::alert : look::bold);
  if (c.connected) {
    std::size_t online = 0;
    for (const auto& r : v.rows) online += r.online ? 1 : 0;
    put(row++,
        "connected: " + std::to_string(v.rows.size()) + " backends, " + std::to_string(online) +
            " online, " + rate_summary(v) + (v.have_data ? "  (updated " + v.wall_time + ")" : ""),
        look::plain);
  } else {
    put(row++, c.status, look::alert);
  }
  if (v.have_data) put(row++, saturation_summary(v), look::plain);
  if (const auto conns = connections_summary(v); v.have_data && !conns.empty()) {
    put(row++, conns, look::plain);
  }
  ++row;
  if (v.have_data) {
    const auto t = backend_table(v, width);
    for (std::size_t i = 0; i < t.lines.size(); ++i) {
      put(row++, t.lines[i], i == 0 ? look::heading : (c.connected ? look::plain : look::dim));
    }
    if (!t.hidden.empty()) {
      for (const auto& line : hidden_note(t, width)) put(row++, line, look::bold);
    }
    if (!c.connected) put(row++, "(last known values, from " + v.wall_time + ")", look::dim);
    const auto closed_by_backend = closed_lines(v);
    if (!closed_by_backend.empty()) {
      ++row;
      put(row++, "CLOSED BY REASON", look::heading);
      for (const auto& line : closed_by_backend) put(row++, line, look::plain);
    }
    const auto errors = error_lines(v, now);
    if (!errors.empty()) {
      ++row;
      put(row++, "LAST ERRORS", look::heading);
      for (const auto& e : errors) put(row++, e, look::plain);
    }
    const auto holds = holder_lines(v);
    if (!holds.empty()) {
      ++row;
      put(row++, "OLDEST HOLDS", look::heading);
      for (const auto& h : holds) put(row++, h, look::plain);
    }
  } else if (c.connected) {
    put(row++, "waiting for the first update...", look::plain);
  }
  put(rows_on_screen - 1, "q: quit", look::dim);
  return out;
}

}  // namespace qtop
