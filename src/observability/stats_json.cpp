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

json::object backend_json(const backend_stats& b, std::chrono::system_clock::time_point now) {
  return {{"address", to_string(b.address)},
          {"connecting", b.connecting},
          {"unclaimed", b.unclaimed},
          {"checking", b.checking},
          {"claimed", b.claimed},
          {"total_claims", b.total_claims},
          {"connect_failures", b.connect_failures},
          {"check_failures", b.check_failures},
          {"recent_failures", b.recent_failures},
          {"online", b.online},
          {"removed", b.removed},
          {"last_error", error_json(b.last_error, now)}};
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
  json::array bounds, counts;
  for (double bound : claim_wait_histogram::bounds_s) bounds.emplace_back(bound);
  for (std::uint64_t count : p.claim_wait.counts) counts.emplace_back(count);
  const auto& f = p.claim_failures;
  return {{"name", p.name},
          {"terminated", p.terminated},
          {"total_claims", p.total_claims},
          {"claims_waiting", p.claims_waiting},
          {"max_slots", p.max_slots},
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
          {"claim_wait",
           {{"bounds_s", std::move(bounds)},
            {"counts", std::move(counts)},
            {"sum_s", p.claim_wait.sum_s},
            {"count", p.claim_wait.count}}},
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
                              {"last_error", error_json(b.last_error, std::nullopt)}};
    claimed += b.claimed;
  }
  return json::serialize(json::object{{"total_claims", p.total_claims},
                                      {"claims_waiting", p.claims_waiting},
                                      {"max_slots", p.max_slots},
                                      {"claimed", claimed},
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
