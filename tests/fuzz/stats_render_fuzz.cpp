// SPDX-License-Identifier: BSL-1.0
// libFuzzer target: the stats server's renderers (observability/stats_json
// and stats_prometheus), without sockets. The bytes become a snapshot: up
// to 4 pools of up to 4 backends, with names of any bytes (quotes,
// backslashes, newlines, invalid UTF-8), counts, last errors and histogram
// buckets. It checks that the /stats JSON and each /qtop/stats push parse
// (boost::json; invalid UTF-8 in a name is passed through as given, so the
// parse allows it), name every pool and backend given, and that every line of
// the /metrics text is a well-formed HELP, TYPE or sample line.
#include "observability/stats_json.hpp"
#include "observability/stats_prometheus.hpp"

#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace {

// Reads the fuzz bytes front to back; zeros once they run out.
class byte_reader {
 public:
  byte_reader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::uint64_t number(int bytes) {
    std::uint64_t n = 0;
    for (int i = 0; i < bytes; ++i) n = (n << 8) | byte();
    return n;
  }
  std::string text() {
    std::string s;
    for (std::size_t n = byte() % 24; n > 0; --n) s.push_back(static_cast<char>(byte()));
    return s;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

qorb::backend_stats backend_from(byte_reader& in) {
  qorb::backend_stats b;
  const boost::asio::ip::address_v4::bytes_type v4{in.byte(), in.byte(), in.byte(), in.byte()};
  b.address = {boost::asio::ip::address_v4(v4), static_cast<unsigned short>(in.number(2))};
  b.connecting = in.number(1);
  b.unclaimed = in.number(1);
  b.checking = in.number(1);
  b.claimed = in.number(1);
  b.total_claims = in.number(8);
  b.connect_failures = in.number(4);
  b.check_failures = in.number(4);
  b.recent_failures = in.number(1);
  const auto flags = in.byte();
  b.online = (flags & 1) != 0;
  b.removed = (flags & 2) != 0;
  if ((flags & 4) != 0) {
    // Within +-68 years of 1970: what a system clock can say.
    const auto secs = static_cast<std::int32_t>(static_cast<std::uint32_t>(in.number(4)));
    const auto ms =
        static_cast<std::int64_t>(secs) * 1000 + static_cast<std::int64_t>(in.number(1));
    b.last_error = qorb::backend_error{
        in.text(), in.text(), std::chrono::system_clock::time_point(std::chrono::milliseconds(ms))};
  }
  return b;
}

}  // namespace

/// A snapshot made from the fuzz bytes (also used by tests to replay).
std::vector<qorb::pool_stats> stats_render_snapshot(const std::uint8_t* data, std::size_t size) {
  byte_reader in(data, size);
  std::vector<qorb::pool_stats> pools(in.byte() % 5);
  for (auto& p : pools) {
    p.name = in.text();
    for (std::size_t n = in.byte() % 5; n > 0; --n) {
      auto name = in.text();
      p.backends.insert_or_assign(std::move(name), backend_from(in));
    }
    p.total_claims = in.number(8);
    p.claims_waiting = in.number(2);
    p.max_slots = in.number(2);
    auto& f = p.claim_failures;
    f.no_backends = in.number(2);
    f.no_backends_online = in.number(2);
    f.all_claims_used = in.number(2);
    f.terminated = in.number(2);
    f.cancelled = in.number(2);
    f.acquire_failed = in.number(2);
    for (auto& c : p.claim_wait.counts) {
      c = in.number(2);
      p.claim_wait.count += c;
    }
    p.claim_wait.sum_s = static_cast<double>(in.number(4)) / 1000.0;
    p.terminated = (in.byte() & 1) != 0;
    // The lifecycle's fields, read last (older corpus entries decode as
    // before, these fields zero).
    f.pool_failed = in.number(2);
    p.status = static_cast<qorb::pool_status>(in.byte() % 5);
    p.min_idle = in.number(2);
    p.spares_wanted = in.number(2);
    p.max_connecting = in.number(2);
    p.connects_in_flight = in.number(2);
    p.connects_waiting = in.number(2);
    p.connections.opened = in.number(4);
    for (auto& c : p.connections.closed) c = in.number(2);
    for (auto& c : p.connect_time.counts) {
      c = in.number(2);
      p.connect_time.count += c;
    }
    p.connect_time.sum_s = static_cast<double>(in.number(4)) / 1000.0;
    for (auto& [name, b] : p.backends) {
      b.connections.opened = in.number(2);
      for (auto& c : b.connections.closed) c = in.number(1);
    }
  }
  return pools;
}

namespace {

bool name_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
         (!first && c >= '0' && c <= '9');
}

// The length of the metric or label name at the start of `s` (0: none).
std::size_t name_length(std::string_view s, bool metric) {
  std::size_t n = 0;
  while (n < s.size() && name_char(s[n], n == 0) && (metric || s[n] != ':')) ++n;
  return n;
}

bool is_value(std::string_view v) {
  if (v == "Nan" || v == "NaN" || v == "+Inf" || v == "-Inf") return true;
  if (v.empty()) return false;
  const std::string copy(v);
  char* end = nullptr;
  std::strtod(copy.c_str(), &end);
  return end == copy.c_str() + copy.size();
}

// `name{label="value",...} value`, label values escaped (\\, \", \n).
bool is_sample(std::string_view line) {
  const auto n = name_length(line, true);
  if (n == 0) return false;
  line.remove_prefix(n);
  if (!line.empty() && line.front() == '{') {
    line.remove_prefix(1);
    while (!line.empty() && line.front() != '}') {
      const auto l = name_length(line, false);
      if (l == 0 || line.substr(l, 2) != "=\"") return false;
      line.remove_prefix(l + 2);
      for (;;) {
        if (line.empty() || line.front() == '\n') return false;
        if (line.front() == '"') break;
        if (line.front() == '\\') {
          if (line.size() < 2 || (line[1] != '\\' && line[1] != '"' && line[1] != 'n'))
            return false;
          line.remove_prefix(1);
        }
        line.remove_prefix(1);
      }
      line.remove_prefix(1);  // the closing quote
      if (!line.empty() && line.front() == ',') line.remove_prefix(1);
    }
    if (line.empty()) return false;
    line.remove_prefix(1);  // '}'
  }
  if (line.empty() || line.front() != ' ') return false;
  line.remove_prefix(1);
  return is_value(line.substr(0, line.find(' ')));
}

bool is_comment(std::string_view line) {
  const bool help = line.starts_with("# HELP "), type = line.starts_with("# TYPE ");
  if (!help && !type) return false;
  line.remove_prefix(7);
  const auto n = name_length(line, true);
  if (n == 0 || line.size() <= n || line[n] != ' ') return false;
  if (!type) return true;
  const auto kind = line.substr(n + 1);
  return kind == "counter" || kind == "gauge" || kind == "histogram" || kind == "summary" ||
         kind == "untyped";
}

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto pools = stats_render_snapshot(data, size);
  std::vector<const qorb::pool_stats*> all;
  for (const auto& p : pools) all.push_back(&p);

  namespace json = boost::json;
  const auto text = qorb::detail::stats_json::render_stats(all, std::chrono::system_clock::now());
  check(!text.empty() && text.back() == '\n');
  // Names go out as the bytes given: invalid UTF-8 in a name stays invalid
  // (Boost.JSON serializes strings unchecked), so the parse allows it.
  json::parse_options options;
  options.allow_invalid_utf8 = true;
  boost::system::error_code ec;
  const auto doc = json::parse(text, ec, {}, options);
  check(!ec && doc.is_object());
  const auto& shown = doc.at("pools").as_object();
  std::map<std::string_view, const qorb::pool_stats*> last;  // a later pool of a name wins
  for (const auto& p : pools) last[p.name] = &p;
  check(shown.size() == last.size());
  for (const auto& [pool_name, p_ptr] : last) {
    const auto& p = *p_ptr;
    const auto& pool = shown.at(pool_name).as_object();
    check(pool.at("backends").as_object().size() == p.backends.size());
    for (const auto& [name, b] : p.backends) {
      check(pool.at("backends").as_object().contains(name));
    }
  }
  for (const auto& p : pools) {
    const auto sets = qorb::detail::stats_json::render_sets(p);
    const auto push = qorb::detail::stats_json::push_message(p.total_claims, sets);
    const auto message = json::parse(push, ec, {}, options);
    check(!ec && message.is_object());
    check(message.at("claims").to_number<std::uint64_t>() == p.total_claims);
    check(message.at("sets").as_object().size() == p.backends.size());
  }

  const auto metrics = qorb::detail::stats_prometheus::render(all);
  check(metrics.empty() || metrics.back() == '\n');
  std::string_view rest = metrics;
  while (!rest.empty()) {
    const auto end = rest.find('\n');
    const auto line = rest.substr(0, end);
    rest.remove_prefix(end + 1);
    check(line.empty() || (line.front() == '#' ? is_comment(line) : is_sample(line)));
  }
  return 0;
}
