// SPDX-License-Identifier: BSL-1.0
// pool_explanation's text, claim_error's sentence, and the stripping of
// Boost.System's " [category:N ...]" suffix (include/qorb/claim_error.hpp).
#include <qorb/claim_error.hpp>

#include <boost/asio/error.hpp>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <utility>

namespace qorb {

namespace {

// "1 backend", "2 backends".
std::string count_of(std::size_t n, const char* one, const char* many) {
  std::string s = std::to_string(n);
  s += ' ';
  s += n == 1 ? one : many;
  return s;
}

struct totals {
  std::size_t known = 0, online = 0, claimed = 0, idle = 0, connecting = 0;
};

totals add_up(const pool_stats& s) {
  totals t;
  for (const auto& [name, b] : s.backends) {
    if (!b.removed) {
      ++t.known;
      if (b.online) ++t.online;
    }
    t.claimed += b.claimed;
    t.idle += b.unclaimed;
    t.connecting += b.connecting;
  }
  return t;
}

// "running; 2 backends known, 0 online; 0 of 16 slots claimed"
std::string head_of(const pool_stats& s, const totals& t) {
  std::string out = to_string(s.status);
  out += "; ";
  out += count_of(t.known, "backend", "backends");
  out += " known, ";
  out += std::to_string(t.online);
  out += " online; ";
  out += std::to_string(t.claimed);
  out += " of ";
  out += count_of(s.max_slots, "slot", "slots");
  out += " claimed";
  return out;
}

std::string waiting(const pool_stats& s) {
  return count_of(s.claims_waiting, "claim", "claims") + " waiting";
}

std::string age(std::chrono::system_clock::time_point at,
                std::chrono::system_clock::time_point then) {
  const auto d = at > then ? at - then : std::chrono::system_clock::duration::zero();
  std::string out = format_duration(std::chrono::duration_cast<duration>(d));
  out += " ago";
  return out;
}

// The backend whose last error is the cause (claim_error.hpp says which).
const std::pair<const std::string, backend_stats>* cause_row(const pool_stats& s) {
  const std::pair<const std::string, backend_stats>* best = nullptr;
  for (const bool removed : {false, true}) {
    for (const auto& row : s.backends) {
      const auto& e = row.second.last_error;
      if (row.second.removed != removed || !e) continue;
      if (!best || e->at > best->second.last_error->at) best = &row;
    }
    if (best) return best;
  }
  return nullptr;
}

// "connect: Connection refused, 0.4 s ago"
std::string error_of(const backend_error& e, std::chrono::system_clock::time_point at) {
  std::string out = e.operation;
  out += ": ";
  out += strip_error_suffix(e.message);
  out += ", ";
  out += age(at, e.at);
  return out;
}

}  // namespace

std::string format_duration(duration d) {
  if (d == duration::max()) return "forever";
  if (d < duration::zero()) d = duration::zero();
  const double s = std::chrono::duration<double>(d).count();
  char buf[64];
  if (s < 0.1) {
    std::snprintf(
        buf, sizeof buf, "%lld ms",
        static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()));
  } else if (s < 60) {
    std::snprintf(buf, sizeof buf, "%.1f s", s);
  } else if (s < 3600) {
    const auto whole = static_cast<long long>(s);
    std::snprintf(buf, sizeof buf, "%lld min %lld s", whole / 60, whole % 60);
  } else {
    const auto whole = static_cast<long long>(s);
    std::snprintf(buf, sizeof buf, "%lld h %lld min", whole / 3600, whole / 60 % 60);
  }
  return buf;
}

std::string pool_explanation::brief() const {
  return head_of(stats, add_up(stats)) + ", " + waiting(stats);
}

std::string pool_explanation::summary() const {
  const totals t = add_up(stats);
  std::string out = head_of(stats, t);
  out += ", ";
  out += std::to_string(t.idle);
  out += " idle, ";
  out += std::to_string(t.connecting);
  out += " connecting; ";
  out += waiting(stats);
  return out;
}

std::string pool_explanation::state_of(const backend_stats& b) {
  std::string out;
  if (b.removed) {
    out = "removed";
  } else if (b.online) {
    out = "online";
  } else if (b.failed_permanently) {
    out = "failed permanently";
  } else if (b.retry_in) {
    out = "backing off";
  } else {
    out = b.connecting > 0 ? "connecting" : "offline";
  }
  if (!b.removed && !b.online && b.retry_in) {
    out += ", retry in ";
    out += format_duration(*b.retry_in);
  }
  if (b.offline_for && !b.removed) {
    out += "; offline for ";
    out += format_duration(*b.offline_for);
  }
  return out;
}

std::optional<std::string> pool_explanation::cause() const {
  const auto* row = cause_row(stats);
  if (!row) return std::nullopt;
  std::string out = row->first;
  out += ' ';
  out += error_of(*row->second.last_error, at);
  return out;
}

std::string pool_explanation::text() const {
  std::string out = "pool '";
  out += stats.name;
  out += "': ";
  out += summary();
  for (const auto& [name, b] : stats.backends) {
    out += "\n  ";
    out += name;
    out += " (";
    out += qorb::to_string(b.address);
    out += "): ";
    out += state_of(b);
    out += "; ";
    out += std::to_string(b.claimed);
    out += " claimed, ";
    out += std::to_string(b.unclaimed);
    out += " idle, ";
    out += std::to_string(b.connecting);
    out += " connecting";
    if (b.last_error) {
      out += "; last error: ";
      out += error_of(*b.last_error, at);
    }
  }
  if (auto c = cause()) {
    out += "\nlast error: ";
    out += *c;
  }
  return out;
}

pool_explanation explain(pool_stats stats, std::chrono::system_clock::time_point at) {
  return pool_explanation{std::move(stats), at};
}

std::string to_string(const pool_explanation& e) { return e.text(); }

std::ostream& operator<<(std::ostream& os, const pool_explanation& e) { return os << e.text(); }

std::string_view strip_error_suffix(std::string_view what) noexcept {
  if (what.empty() || what.back() != ']') return what;
  const auto open = what.rfind(" [");
  if (open == std::string_view::npos) return what;
  // "category:N" or "category:N at ...", the category a name that may hold
  // colons itself ("std:qorb"): the last colon before the first space
  // ends it, and a number follows.
  const std::string_view inner = what.substr(open + 2, what.size() - open - 3);
  const std::string_view head = inner.substr(0, inner.find(' '));
  const auto colon = head.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return what;
  std::string_view number = head.substr(colon + 1);
  if (!number.empty() && number.front() == '-') number.remove_prefix(1);
  if (number.empty()) return what;
  for (char c : number) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return what;
  }
  for (char c : head.substr(0, colon)) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != ':' && c != '.' && c != '_' &&
        c != '-') {
      return what;
    }
  }
  const std::string_view rest = inner.substr(head.size());
  if (!rest.empty() && !rest.starts_with(" at ")) return what;
  return what.substr(0, open);
}

std::string claim_error_head(const error_code& ec) {
  if (ec == errc::no_backends) return "no backends known";
  if (ec == errc::no_backends_online) return "no backend online";
  if (ec == errc::all_claims_used) return "all connections claimed";
  if (ec == errc::terminated) return "pool terminated";
  if (ec == errc::pool_failed) return "pool failed";
  if (ec == errc::acquire_failed) return "on_acquire failed";
  if (ec == errc::would_deadlock) {
    return "a blocking claim on a thread that runs the pool's executor would deadlock";
  }
  if (ec == boost::asio::error::operation_aborted) return "claim cancelled";
  return std::string(strip_error_suffix(ec.message()));
}

struct claim_error::data {
  std::string what;
  pool_explanation explanation;
  duration waited{};
};

claim_error::claim_error(error_code ec, pool_stats stats, duration waited)
    : boost::system::system_error(ec) {
  auto d = std::make_shared<data>();
  d->explanation = explain(std::move(stats));
  d->waited = waited;
  std::string& w = d->what;
  w = "pool '";
  w += d->explanation.stats.name;
  w += "': ";
  w += claim_error_head(ec);
  if (ec != errc::would_deadlock) {
    w += " after waiting ";
    w += format_duration(waited);
  }
  w += " (";
  w += d->explanation.brief();
  w += ")";
  if (auto c = d->explanation.cause()) {
    w += "; last error: ";
    w += *c;
  }
  data_ = std::move(d);
}

const char* claim_error::what() const noexcept { return data_->what.c_str(); }

const std::string& claim_error::pool_name() const noexcept { return data_->explanation.stats.name; }

duration claim_error::waited() const noexcept { return data_->waited; }

const pool_explanation& claim_error::explanation() const noexcept { return data_->explanation; }

}  // namespace qorb
