// SPDX-License-Identifier: BSL-1.0
#include "resolvers/dns_state.hpp"

#include <algorithm>
#include <numeric>

namespace qorb::detail::dns {

clock::time_point expiry_after(clock::time_point now, std::chrono::milliseconds lifetime) {
  using std::chrono::milliseconds;
  if (lifetime <= milliseconds::zero()) return now;
  // Compared in milliseconds: converting a huge lifetime to the clock's
  // nanoseconds would overflow.
  const auto left = std::chrono::duration_cast<milliseconds>(clock::time_point::max() - now);
  if (lifetime >= left) return clock::time_point::max();
  return now + std::chrono::duration_cast<clock::duration>(lifetime);
}

bool backend_table::merge(const std::vector<found_backend>& found, clock::time_point now,
                          std::optional<std::chrono::milliseconds> hardcoded_ttl) {
  bool changed = false;
  for (const auto& f : found) {
    const auto expires =
        expiry_after(now, hardcoded_ttl ? *hardcoded_ttl
                                        : std::chrono::milliseconds(std::chrono::seconds(f.ttl)));
    auto name = backend_name(f.target, f.address, f.port);
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      backend b{name, asio::ip::tcp::endpoint(f.address, f.port)};
      entries_.emplace(std::move(name), dns_backend_info{std::move(b), f.target, expires});
      changed = true;
    } else {
      // The latest answer says how long it lives from now, even if shorter.
      it->second.expires = expires;
    }
  }
  return changed;
}

bool backend_table::expire(clock::time_point now) {
  if (held_) return false;
  return std::erase_if(entries_, [&](const auto& e) { return e.second.expires <= now; }) > 0;
}

std::optional<clock::time_point> backend_table::next_expiry() const {
  if (held_ || entries_.empty()) return std::nullopt;
  auto earliest = entries_.begin()->second.expires;
  for (const auto& [name, e] : entries_) earliest = std::min(earliest, e.expires);
  // The end of time: never.
  if (earliest == clock::time_point::max()) return std::nullopt;
  return earliest;
}

backend_map backend_table::backends() const {
  backend_map out;
  for (const auto& [name, e] : entries_) out.emplace(name, e.backend);
  return out;
}

std::vector<dns_backend_info> backend_table::info() const {
  std::vector<dns_backend_info> out;
  out.reserve(entries_.size());
  for (const auto& [name, e] : entries_) out.push_back(e);
  return out;
}

std::pair<std::size_t, bool> server_registry::add(const asio::ip::udp::endpoint& server,
                                                  bool discovered) {
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    if (servers_[i].stats.server == server) return {i, false};
  }
  entry e;
  e.stats.server = server;
  e.stats.discovered = discovered;
  servers_.push_back(std::move(e));
  return {servers_.size() - 1, true};
}

std::vector<std::size_t> server_registry::ask_order() const {
  std::vector<std::size_t> ids(servers_.size());
  std::iota(ids.begin(), ids.end(), std::size_t{0});
  std::stable_sort(ids.begin(), ids.end(), [&](std::size_t a, std::size_t b) {
    return servers_[a].consecutive_failures < servers_[b].consecutive_failures;
  });
  return ids;
}

void server_registry::lookup_started(std::size_t id) { ++servers_[id].stats.lookups; }

void server_registry::lookup_finished(std::size_t id, const lookup_result& result) {
  auto& e = servers_[id];
  if (result.capped) ++e.stats.capped_answers;
  e.stats.port_zero_records += result.port_zero;
  e.stats.clamped_ttls += result.ttls_clamped;
  switch (result.status) {
    case lookup_status::records:
      ++e.stats.records;
      e.consecutive_failures = 0;
      return;
    case lookup_status::no_records:
      ++e.stats.no_records;
      e.consecutive_failures = 0;
      return;
    case lookup_status::timeout:
      ++e.stats.timeouts;
      break;
    case lookup_status::error:
      ++e.stats.errors;
      break;
  }
  ++e.consecutive_failures;
  e.stats.last_error = result.reason;
}

std::vector<dns_server_stats> server_registry::stats() const {
  std::vector<dns_server_stats> out;
  out.reserve(servers_.size());
  for (const auto& e : servers_) out.push_back(e.stats);
  return out;
}

lookup_round::lookup_round(std::vector<std::size_t> order, std::size_t max_concurrency)
    : queue_(order.begin(), order.end()),
      max_concurrency_(std::max<std::size_t>(1, max_concurrency)) {}

std::vector<std::size_t> lookup_round::launch() {
  std::vector<std::size_t> now;
  while (!done() && !queue_.empty() && in_flight_.size() < max_concurrency_) {
    now.push_back(queue_.front());
    in_flight_.push_back(queue_.front());
    queue_.pop_front();
  }
  return now;
}

std::vector<std::size_t> lookup_round::start() { return launch(); }

std::vector<std::size_t> lookup_round::add(const std::vector<std::size_t>& servers) {
  if (done()) return {};
  for (auto s : servers) {
    const bool known = std::find(queue_.begin(), queue_.end(), s) != queue_.end() ||
                       std::find(in_flight_.begin(), in_flight_.end(), s) != in_flight_.end();
    if (!known) queue_.push_back(s);
  }
  return launch();
}

std::vector<std::size_t> lookup_round::finished(std::size_t server, const lookup_result& result) {
  const auto it = std::find(in_flight_.begin(), in_flight_.end(), server);
  if (it == in_flight_.end() || done()) return {};
  in_flight_.erase(it);
  if (result.status == lookup_status::records) {
    winner_ = result;
    return {};
  }
  if (result.status == lookup_status::no_records) no_records_seen_ = true;
  return launch();
}

bool lookup_round::done() const { return winner_ || (queue_.empty() && in_flight_.empty()); }

dns_lookup_outcome lookup_round::outcome() const {
  if (winner_) return dns_lookup_outcome::records;
  return no_records_seen_ ? dns_lookup_outcome::no_records : dns_lookup_outcome::failed;
}

std::chrono::milliseconds delay_after(dns_lookup_outcome outcome,
                                      std::chrono::milliseconds query_interval,
                                      std::chrono::milliseconds retry_if_no_records,
                                      std::optional<std::chrono::milliseconds> shortest_ttl) {
  using namespace std::chrono_literals;
  if (outcome != dns_lookup_outcome::records) return retry_if_no_records;
  // Ask again before the shortest-lived backend expires, so that a backend
  // still in DNS is refreshed instead of dropped and added back (also behind
  // a cache, whose answers carry shrinking TTLs). A TTL of 0 keeps its
  // meaning: seen, then gone until the next round.
  if (shortest_ttl && *shortest_ttl > 0ms) {
    // 3/4 of it, written so that milliseconds::max() cannot overflow.
    const auto three_quarters = *shortest_ttl - *shortest_ttl / 4;
    return std::min(query_interval, std::max<std::chrono::milliseconds>(three_quarters, 250ms));
  }
  return query_interval;
}

lookup_limits limits_of(const dns_resolver_config& config) {
  lookup_limits l;
  l.max_backends = std::max<std::size_t>(1, config.max_backends_per_answer);
  const auto max_ttl =
      std::clamp<std::chrono::seconds::rep>(config.max_ttl.count(), 0, 0x7FFFFFFF);  // RFC 2181
  l.max_ttl = static_cast<std::uint32_t>(max_ttl);
  return l;
}

round_decision end_round(backend_table& table, dns_lookup_outcome outcome,
                         const std::optional<lookup_result>& winner,
                         const dns_resolver_config& config, clock::time_point now) {
  round_decision out;
  switch (outcome) {
    case dns_lookup_outcome::records:
      table.hold(false);
      out.changed = table.merge(winner->backends, now, config.hardcoded_ttl);
      break;
    case dns_lookup_outcome::no_records:
      table.hold(false);
      out.changed = table.expire(now);
      break;
    case dns_lookup_outcome::failed:
      table.hold(true);
      break;
  }
  std::optional<std::chrono::milliseconds> shortest_ttl = config.hardcoded_ttl;
  if (outcome == dns_lookup_outcome::records && !shortest_ttl) {
    for (const auto& b : winner->backends) {
      const std::chrono::milliseconds ttl = std::chrono::seconds(b.ttl);
      if (!shortest_ttl || ttl < *shortest_ttl) shortest_ttl = ttl;
    }
  }
  out.next_round = delay_after(outcome, config.query_interval,
                               config.query_retry_if_no_records_found, shortest_ttl);
  return out;
}

std::string describe_change(const backend_map& before, const backend_map& after) {
  std::string out;
  for (const auto& [name, b] : after) {
    if (!before.contains(name)) out.append(" +").append(name);
  }
  for (const auto& [name, b] : before) {
    if (!after.contains(name)) out.append(" -").append(name);
  }
  return out;
}

}  // namespace qorb::detail::dns
