// SPDX-License-Identifier: BSL-1.0
// The echo workload: a qorb pool over TCP echo servers found in DNS (SRV
// records), and claimers that claim a connection, write a message, hold the
// claim, read the echo back and count what happened. It records, per
// backend, what the claimers saw and when the pool listed, connected and
// dropped it, so a view (workload_view.hpp) can show it live and the demo can
// tell the story afterwards.
#pragma once

#include <qorb/log.hpp>
#include <qorb/policy.hpp>
#include <qorb/resolver.hpp>
#include <qorb/stats.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qorb::examples {

using steady_clock = std::chrono::steady_clock;

/// The pool's policy in the workload: qorb's defaults with shorter intervals,
/// so that what the pool does can be watched as it happens.
qorb::policy workload_policy();

struct workload_config {
  /// The SRV name of the echo servers.
  std::string service = "_echo._tcp.test.com.";
  /// The DNS servers to ask (empty: the system's).
  std::vector<boost::asio::ip::udp::endpoint> dns_servers;
  /// How often the resolver asks again (qorb's default is a minute).
  std::chrono::milliseconds dns_interval{std::chrono::seconds(5)};
  /// Claimers started at once (more can be added later).
  std::size_t claimers = 4;
  /// How long each claim is held, between writing and reading the echo.
  std::chrono::milliseconds hold{100};
  /// Pause between a claimer's claims.
  std::chrono::milliseconds pause{100};
  qorb::policy policy = workload_policy();
  /// When set, a stats server (/stats, /metrics, qtop's WebSocket) for the
  /// pool listens here.
  std::optional<boost::asio::ip::tcp::endpoint> stats_addr;
  /// Where the pool and the resolver log; null: silent.
  qorb::logger_ptr logger;
  /// Threads running the pool's io_context.
  unsigned threads = 2;
  /// When set, the pool finds its backends through this resolver instead
  /// of DNS (`service`, `dns_servers` and `dns_interval` are then unused),
  /// and `describe_resolver` gives the snapshot's line about it.
  std::shared_ptr<qorb::resolver> resolver;
  std::function<std::string()> describe_resolver;
};

/// One claimer, as the view shows it.
struct claimer_info {
  std::size_t id = 0;
  std::chrono::milliseconds hold{0};
  bool claimed = false;  ///< holds a claim right now
  std::uint64_t ok = 0;
  std::uint64_t server_failures = 0;  ///< the write or the echo failed
  std::uint64_t claim_failures = 0;   ///< the pool gave no connection
};

/// One backend: what the claimers saw on it and what the pool did with it.
struct backend_record {
  qorb::backend_stats pool;  ///< the pool's latest stats for it
  bool listed = false;       ///< in the pool's backend set now
  std::uint64_t claims = 0;  ///< claims handed out to it
  std::uint64_t ok = 0;      ///< of those, echoed back
  std::uint64_t server_failures = 0;
  /// When each claim whose write or echo failed was handed its connection
  /// (the first 1000): against a kill's time, it tells a connection dead
  /// when handed out from one that died while claimed.
  std::vector<steady_clock::time_point> failed_handed;
  std::optional<steady_clock::time_point> first_claim, last_claim, first_ok;
  std::optional<steady_clock::time_point> listed_at, unlisted_at;  ///< last change of `listed`
  std::optional<steady_clock::time_point> online_at, offline_at;   ///< last change of online
};

/// Something that happened, with when.
struct workload_event {
  steady_clock::time_point at;
  std::string text;
};

struct workload_snapshot {
  steady_clock::time_point taken;
  std::vector<claimer_info> claimers;
  std::map<std::string, backend_record> backends;
  std::uint64_t ok = 0;
  std::uint64_t server_failures = 0;
  std::uint64_t claim_failures = 0;
  std::size_t claims_waiting = 0;
  /// What the DNS resolver did: rounds, and per server its answers and
  /// failures (with the last error).
  std::string dns;
};

/// The pool, the resolver, the claimers and the record of what happened.
/// Every member function may be called from any thread.
class echo_workload {
 public:
  /// Starts the resolver, the pool, the claimers and (if configured) the
  /// stats server. Throws std::invalid_argument for a bad policy and
  /// std::system_error when the stats server cannot listen.
  explicit echo_workload(workload_config config);
  ~echo_workload();
  echo_workload(const echo_workload&) = delete;
  echo_workload& operator=(const echo_workload&) = delete;

  void add_claimer();
  /// Stops the most recently added claimer (it finishes its current claim).
  void remove_claimer();
  /// Changes how long claimer number `index` (in `snapshot().claimers`)
  /// holds its claims, by `delta`, at least 0 and at most 60 s.
  void change_hold(std::size_t index, std::chrono::milliseconds delta);

  /// Adds an event of the caller's to the log.
  void note(std::string text);
  /// Events from number `from` on (the log only grows).
  std::vector<workload_event> events(std::size_t from = 0) const;

  workload_snapshot snapshot() const;
  steady_clock::time_point started() const;
  const workload_config& config() const;
  /// Where the stats server listens, if there is one.
  std::optional<boost::asio::ip::tcp::endpoint> stats_endpoint() const;

  /// Stops the claimers, terminates the pool and joins the threads. Also
  /// done by the destructor. Idempotent.
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace qorb::examples
