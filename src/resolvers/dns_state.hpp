// SPDX-License-Identifier: BSL-1.0
// qorb internal: the DNS resolver's decisions, no I/O. Which servers to ask
// and when (server_registry, lookup_round, delay_after), and which backends
// are current (backend_table). Time is passed in, so tests use a fake clock.
#pragma once

#include "resolvers/dns_lookup.hpp"

#include <qorb/resolvers/dns.hpp>

#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace qorb::detail::dns {

using clock = std::chrono::steady_clock;

/// `now + lifetime`, saturating at the end of time (`lifetime` may be
/// milliseconds::max(): never).
clock::time_point expiry_after(clock::time_point now, std::chrono::milliseconds lifetime);

/// The backends currently published and when each expires.
class backend_table {
 public:
  /// Adds or refreshes the backends of a winning answer: each expires
  /// `hardcoded_ttl` (when set) or its TTL after `now`. Backends the answer
  /// does not list keep their expiry. Returns whether the set changed.
  bool merge(const std::vector<found_backend>& found, clock::time_point now,
             std::optional<std::chrono::milliseconds> hardcoded_ttl);

  /// Removes the backends whose expiry is at or before `now`, unless held.
  /// Returns whether the set changed.
  bool expire(clock::time_point now);

  /// While held (every server failing), nothing expires: the last known
  /// backends are better than none.
  void hold(bool held) { held_ = held; }
  bool held() const { return held_; }

  /// When `expire` next has something to do; nothing when held or empty.
  std::optional<clock::time_point> next_expiry() const;

  backend_map backends() const;
  std::vector<dns_backend_info> info() const;
  std::size_t size() const { return entries_.size(); }

 private:
  std::map<std::string, dns_backend_info, std::less<>> entries_;
  bool held_ = false;
};

/// The servers known (bootstrap first, then discovered) and their counters.
/// A server's id is its index; servers are never removed.
class server_registry {
 public:
  /// Adds `server` unless known; returns its id and whether it is new.
  std::pair<std::size_t, bool> add(const asio::ip::udp::endpoint& server, bool discovered);

  /// Ids in the order a round asks them: fewest consecutive failures first,
  /// then the order they were added.
  std::vector<std::size_t> ask_order() const;

  void lookup_started(std::size_t id);
  void lookup_finished(std::size_t id, const lookup_result& result);

  std::size_t size() const { return servers_.size(); }
  const dns_server_stats& stats(std::size_t id) const { return servers_[id].stats; }
  std::vector<dns_server_stats> stats() const;

 private:
  struct entry {
    dns_server_stats stats;
    unsigned consecutive_failures = 0;
  };
  std::vector<entry> servers_;
};

/// One round of asking servers for one name: at most `max_concurrency` at
/// once, in the given order; the first answer with records wins. Lookups
/// still running when the round ends are not the round's business.
class lookup_round {
 public:
  lookup_round(std::vector<std::size_t> order, std::size_t max_concurrency);

  /// The servers to ask now.
  std::vector<std::size_t> start();

  /// Servers that became known during the round join the queue; returns
  /// those to ask now.
  std::vector<std::size_t> add(const std::vector<std::size_t>& servers);

  /// One server's lookup ended; returns the servers to ask next.
  std::vector<std::size_t> finished(std::size_t server, const lookup_result& result);

  bool done() const;
  dns_lookup_outcome outcome() const;
  /// The winning answer, when the outcome is `records`.
  const std::optional<lookup_result>& winner() const { return winner_; }

 private:
  std::vector<std::size_t> launch();

  std::deque<std::size_t> queue_;
  std::vector<std::size_t> in_flight_;
  std::size_t max_concurrency_;
  bool no_records_seen_ = false;
  std::optional<lookup_result> winner_;
};

/// How long to wait before the next round after one that ended `outcome`;
/// `shortest_ttl`: the shortest lifetime among the backends of that round's
/// answer (which is then refreshed before it ends, unless it is 0).
std::chrono::milliseconds delay_after(
    dns_lookup_outcome outcome, std::chrono::milliseconds query_interval,
    std::chrono::milliseconds retry_if_no_records,
    std::optional<std::chrono::milliseconds> shortest_ttl = std::nullopt);

/// The limits a lookup applies, from the resolver's settings: at least one
/// backend per answer, TTLs at most max_ttl and never above 2^31 - 1 s
/// (RFC 2181).
lookup_limits limits_of(const dns_resolver_config& config);

/// What the end of a service round decided.
struct round_decision {
  bool changed = false;                    // the set of backends changed: publish it
  std::chrono::milliseconds next_round{};  // when to start the next round
};

/// Ends a service round that came to `outcome` (`winner`: its answer, when
/// the outcome is `records`) at `now`. Records: the backends listed are
/// added or refreshed, the others keep their expiry. No records: whatever
/// is due expires. Failed (every server failed): the table is held as it
/// is. The next round comes before the shortest TTL of the answer runs out
/// (see delay_after).
round_decision end_round(backend_table& table, dns_lookup_outcome outcome,
                         const std::optional<lookup_result>& winner,
                         const dns_resolver_config& config, clock::time_point now);

/// How `after` differs from `before`, as logged: " +name" for each backend
/// added, then " -name" for each removed; "" when they are the same.
std::string describe_change(const backend_map& before, const backend_map& after);

}  // namespace qorb::detail::dns
