// SPDX-License-Identifier: BSL-1.0
#include "observability/stats_json.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <optional>
#include <utility>

namespace qorb::detail::stats_json {
namespace {

namespace json = boost::json;

// A backend's last error: null while it has none; "at" in UTC (ISO 8601,
// milliseconds), and with `now` "seconds_ago" from then (not in pushes,
// which go out when their content changes).
json::value error_json(const std::optional<backend_error>& e,
                       const std::optional<std::chrono::system_clock::time_point>& now) {
  if (!e) return nullptr;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(e->at.time_since_epoch());
  const std::time_t secs = static_cast<std::time_t>(ms.count() / 1000);
  std::tm utc{};
  gmtime_r(&secs, &utc);
  char at[40];
  const auto n = std::strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(at + n, sizeof at - n, ".%03dZ", static_cast<int>(ms.count() % 1000));
  json::object out{{"operation", e->operation}, {"message", e->message}, {"at", at}};
  if (now) {
    const double ago = std::max(0.0, std::chrono::duration<double>(*now - e->at).count());
    out["seconds_ago"] = std::round(ago * 1000) / 1000;
  }
  return out;
}

// Opened, and closed by every reason (0 included, so consumers need not
// know which reasons exist to read one).
json::object connections_json(const connection_counts& c) {
  json::object closed;
  for (std::size_t i = 0; i < close_reason_count; ++i) {
    closed[to_string(static_cast<close_reason>(i))] = c.closed[i];
  }
  return {{"opened", c.opened}, {"closed", std::move(closed)}};
}

// A histogram with fixed bounds: the bounds, a count per bucket (the last
// one above every bound, not cumulative), the sum and the count.
json::object histogram_json(const claim_wait_histogram& h) {
  json::array bounds, counts;
  for (double bound : claim_wait_histogram::bounds_s) bounds.emplace_back(bound);
  for (std::uint64_t count : h.counts) counts.emplace_back(count);
  return {{"bounds_s", std::move(bounds)},
          {"counts", std::move(counts)},
          {"sum_s", h.sum_s},
          {"count", h.count}};
}

json::object backend_json(const backend_stats& b, std::chrono::system_clock::time_point now) {
  return {{"address", to_string(b.address)},
          {"connecting", b.connecting},
          {"unclaimed", b.unclaimed},
          {"checking", b.checking},
          {"claimed", b.claimed},
          {"total_claims", b.total_claims},
          {"connect_failures", b.connect_failures},
          {"check_failures", b.check_failures},
          {"discards", b.discards},
          {"failures_reported", b.failures_reported},
          {"recent_failures", b.recent_failures},
          {"online", b.online},
          {"removed", b.removed},
          {"connections", connections_json(b.connections)},
          {"last_error", error_json(b.last_error, now)}};
}

json::object site_json(const claim_site& site) {
  return {{"label", site.label()},
          {"file", site.file},
          {"line", site.line},
          {"function", site.function}};
}

// The oldest holds (pool_stats keeps at most max_holders), oldest first;
// at most `limit`, ages to the millisecond or (`whole_seconds`, for pushes,
// which go out when their content changes) to the second.
json::array holders_json(const std::vector<claim_holder>& holders,
                         std::size_t limit = pool_stats::max_holders, bool whole_seconds = false) {
  json::array out;
  for (const auto& h : holders) {
    if (out.size() == limit) break;
    const double age = std::chrono::duration<double>(h.age).count();
    out.push_back(
        json::object{{"slot", h.slot},
                     {"claim", h.claim},
                     {"backend", h.backend},
                     {"address", to_string(h.address)},
                     {"age_s", whole_seconds ? std::floor(age) : std::round(age * 1000) / 1000},
                     {"site", site_json(h.site)},
                     {"warned", h.warned},
                     {"timed", h.timed}});
  }
  return out;
}

json::array sites_json(const std::vector<claim_site_stats>& sites) {
  json::array out;
  for (const auto& s : sites) {
    out.push_back(json::object{{"site", site_json(s.site)},
                               {"other", s.other},
                               {"wait", histogram_json(s.wait)},
                               {"hold", histogram_json(s.hold)}});
  }
  return out;
}

json::object pool_json(const pool_stats& p, std::chrono::system_clock::time_point now) {
  json::object backends;
  std::size_t online = 0, connecting = 0, unclaimed = 0, checking = 0, claimed = 0;
  std::uint64_t connect_failures = 0, check_failures = 0;
  for (const auto& [name, b] : p.backends) {
    backends[name] = backend_json(b, now);
    online += b.online ? 1 : 0;
    connecting += b.connecting;
    unclaimed += b.unclaimed;
    checking += b.checking;
    claimed += b.claimed;
    connect_failures += b.connect_failures;
    check_failures += b.check_failures;
  }
  const auto& f = p.claim_failures;
  return {{"name", p.name},
          {"status", to_string(p.status)},
          {"terminated", p.terminated},
          {"total_claims", p.total_claims},
          {"claims_waiting", p.claims_waiting},
          {"max_slots", p.max_slots},
          {"min_idle", p.min_idle},
          {"spares_wanted", p.spares_wanted},
          {"max_connecting", p.max_connecting},
          {"connects_in_flight", p.connects_in_flight},
          {"connects_waiting", p.connects_waiting},
          {"totals",
           {{"backends", p.backends.size()},
            {"online", online},
            {"connecting", connecting},
            {"unclaimed", unclaimed},
            {"checking", checking},
            {"claimed", claimed},
            {"connect_failures", connect_failures},
            {"check_failures", check_failures}}},
          {"claim_failures",
           {{"no_backends", f.no_backends},
            {"no_backends_online", f.no_backends_online},
            {"all_claims_used", f.all_claims_used},
            {"terminated", f.terminated},
            {"cancelled", f.cancelled},
            {"acquire_failed", f.acquire_failed}}},
          {"claim_wait", histogram_json(p.claim_wait)},
          {"connections", connections_json(p.connections)},
          {"connect_time", histogram_json(p.connect_time)},
          {"hold_warning_s",
           p.hold_warning ? json::value(std::chrono::duration<double>(*p.hold_warning).count())
                          : json::value(nullptr)},
          {"hold_warnings", p.hold_warnings},
          {"holders", holders_json(p.holders)},
          {"sites", sites_json(p.sites)},
          {"backends", std::move(backends)}};
}

}  // namespace

std::string render_stats(const std::vector<const pool_stats*>& pools,
                         std::chrono::system_clock::time_point now) {
  json::object all;
  for (const auto* p : pools) all[p->name] = pool_json(*p, now);
  auto body = json::serialize(json::object{{"pools", std::move(all)}});
  body += '\n';
  return body;
}

std::string render_sets(const pool_stats& p) {
  json::object sets;
  std::size_t claimed = 0;
  for (const auto& [name, b] : p.backends) {
    sets[name] = json::object{{"connecting", b.connecting},
                              {"unclaimed", b.unclaimed},
                              {"checking", b.checking},
                              {"claimed", b.claimed},
                              {"total_claims", b.total_claims},
                              {"online", b.online},
                              {"connections", connections_json(b.connections)},
                              {"last_error", error_json(b.last_error, std::nullopt)}};
    claimed += b.claimed;
  }
  return json::serialize(json::object{{"name", p.name},
                                      {"status", to_string(p.status)},
                                      {"total_claims", p.total_claims},
                                      {"claims_waiting", p.claims_waiting},
                                      {"max_slots", p.max_slots},
                                      {"claimed", claimed},
                                      {"connects_in_flight", p.connects_in_flight},
                                      {"connects_waiting", p.connects_waiting},
                                      {"max_connecting", p.max_connecting},
                                      {"connections", connections_json(p.connections)},
                                      {"hold_warnings", p.hold_warnings},
                                      {"holders", holders_json(p.holders, 5, true)},
                                      {"sets", std::move(sets)}});
}

std::string push_message(std::uint64_t claims, std::string_view sets) {
  std::string message = "{\"claims\":";
  message += std::to_string(claims);
  message += ',';
  message.append(sets.substr(1));  // the fields of `sets`, after its brace
  return message;
}

}  // namespace qorb::detail::stats_json
