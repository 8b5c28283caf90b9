// SPDX-License-Identifier: BSL-1.0
// qorb: the DNS resolver (SRV, then A/AAAA, through c-ares on Asio).
#pragma once

#include <qorb/backend.hpp>
#include <qorb/log.hpp>
#include <qorb/resolver.hpp>

#include <boost/asio/ip/udp.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qorb {

/// Which address records the DNS resolver asks for.
enum class address_family {
  v4,   ///< A records only.
  v6,   ///< AAAA records only (qorb's behaviour).
  both  ///< A and AAAA.
};

/// How one lookup round (asking the servers until one has records) ended.
enum class dns_lookup_outcome {
  records,     ///< a server answered with backends.
  no_records,  ///< no server had records, at least one said so.
  failed       ///< every server asked timed out or failed.
};

/// Settings of a `dns_resolver`. Defaults are qorb's.
struct dns_resolver_config {
  /// The SRV name of the service, e.g. "_echo._tcp.test.com".
  std::string service;

  /// DNS servers to ask. Empty: the servers of the system's
  /// `/etc/resolv.conf`, read once by `start`.
  std::vector<asio::ip::udp::endpoint> servers;

  /// Dynamic discovery: when set, the SRV records of this name (e.g.
  /// "_dns._udp.example.com") are looked up on the known servers each round,
  /// and every DNS server they name is asked too.
  std::optional<std::string> resolver_service;

  /// At most this many servers are asked at once in one round.
  std::size_t max_dns_concurrency = 5;

  /// Time between rounds when the last round found records. When a backend
  /// of that answer lives shorter (its TTL, or `hardcoded_ttl`), the next
  /// round comes at 3/4 of that lifetime (at least 250 ms) instead, so
  /// backends still in DNS are refreshed rather than dropped and added back
  /// (qorb drops them until the next round). A TTL of 0 keeps its meaning:
  /// seen, then gone until the next round.
  std::chrono::milliseconds query_interval = std::chrono::seconds(60);

  /// Time between rounds when the last round found no records (or failed).
  std::chrono::milliseconds query_retry_if_no_records_found = std::chrono::seconds(10);

  /// How long one DNS query may take before it counts as a timeout.
  std::chrono::milliseconds query_timeout = std::chrono::seconds(10);

  /// When set, every backend lives this long after each answer that lists
  /// it, whatever the TTLs of its records say. `milliseconds::max()` means
  /// forever (never expires; the next round still comes after
  /// `query_interval`).
  std::optional<std::chrono::milliseconds> hardcoded_ttl;

  /// At most this many backends are taken from one server's answer (the
  /// first ones, in answer order); an answer listing more, e.g. N SRV ports
  /// times N addresses, is cut there, logged as a warning and counted in
  /// `dns_server_stats::capped_answers`. 0 is taken as 1.
  std::size_t max_backends_per_answer = 4096;

  /// A record's TTL above this counts as this much (logged, counted in
  /// `dns_server_stats::clamped_ttls`). Does not apply to `hardcoded_ttl`.
  std::chrono::seconds max_ttl = std::chrono::hours(24);

  /// Which address records to look up for each SRV target.
  address_family family = address_family::both;

  /// Off by default (as in cueball). When set and the name has no SRV
  /// records, the name is looked up as a plain host name and each of its
  /// addresses becomes a backend on this port.
  std::optional<std::uint16_t> fallback_port;

  /// Called on the resolver's strand at the end of every lookup round of
  /// `service`. Optional; meant for tools and tests. It must not block, and
  /// must not destroy the resolver.
  std::function<void(dns_lookup_outcome)> on_lookup_done;

  /// Where the resolver logs queries, answers, changes of the backend set,
  /// server failures and stop. Null: silent.
  logger_ptr logger = default_logger();
};

/// What the resolver has counted for one DNS server.
struct dns_server_stats {
  asio::ip::udp::endpoint server;  ///< the server's address.
  bool discovered = false;         ///< found through `resolver_service`.
  std::uint64_t lookups = 0;       ///< lookups started on this server.
  std::uint64_t records = 0;       ///< lookups answered with records.
  std::uint64_t no_records = 0;    ///< lookups answered "no such records".
  std::uint64_t timeouts = 0;      ///< lookups that timed out.
  std::uint64_t errors = 0;        ///< lookups that failed otherwise.
  std::string last_error;          ///< why the last failure happened.
  /// Answers that listed more than `max_backends_per_answer` backends.
  std::uint64_t capped_answers = 0;
  /// SRV records with port 0 (not a backend: skipped).
  std::uint64_t port_zero_records = 0;
  /// Backends whose TTL was above `max_ttl` (clamped to it).
  std::uint64_t clamped_ttls = 0;
};

/// A snapshot of a `dns_resolver`'s counters.
struct dns_resolver_stats {
  std::uint64_t rounds = 0;               ///< lookup rounds of `service` completed.
  std::vector<dns_server_stats> servers;  ///< per server, configured then discovered.
};

/// One backend the DNS resolver currently publishes, with when it expires.
struct dns_backend_info {
  qorb::backend backend;                          ///< as published to the pool.
  std::string target;                             ///< the SRV target (or host name) it came from.
  std::chrono::steady_clock::time_point expires;  ///< unless an answer lists it again.
};

/// Parses "ip:port" ("127.0.0.1:53", "[::1]:5353"); the port defaults to 53
/// when absent. Returns nothing when `text` is not such an address.
std::optional<asio::ip::udp::endpoint> parse_dns_server(std::string_view text);

/// A resolver that finds backends in DNS: the SRV records of
/// `config.service`, then the A/AAAA records of each SRV target (from the
/// answer's Additional section when it has them).
///
/// @details Each round asks the servers, at most `max_dns_concurrency` at
/// once, fewest recent failures first; the first server that answers with
/// records wins. A server answering "no such records" (NXDOMAIN, NODATA,
/// REFUSED, NOTIMP) is not failing; timeouts and other errors (SERVFAIL,
/// malformed or truncated answers, refused connections) are counted per
/// server. Each backend is named "<target>@<ip>:<port>" (IPv6 as
/// "host@[::1]:80") and expires at the smaller TTL of its SRV and address
/// records (or `hardcoded_ttl`) unless a later answer lists it again. While
/// every server fails, nothing expires: the last known backends are kept.
/// The listener is called only when the set changes.
///
/// All DNS work runs on a strand of the executor given to `start`, through
/// c-ares' socket callbacks: no thread of its own, no blocking call (except
/// reading `/etc/resolv.conf` once when no servers are configured).
///
/// Thread safety: `start`, `stop`, `stats` and `backends` may be called from
/// any thread. The listener and `on_lookup_done` run on the strand, one at a
/// time. After `stop()` returns, no new call of either starts (unless `stop`
/// is called from inside one of them, when the call in progress finishes).
///
/// Lifetime: the resolver's state lives until its outstanding work is done;
/// `stop` (or destroying the resolver) cancels that work, which then ends
/// as soon as the executor runs it. Destroying the resolver stops it.
///
/// Example: the backends of `_db._tcp.example.com`, asked of two DNS servers:
/// @code
/// qorb::dns_resolver_config dns;
/// dns.service = "_db._tcp.example.com";
/// dns.servers = {*qorb::parse_dns_server("10.0.0.2:53"), *qorb::parse_dns_server("10.0.0.3")};
/// qorb::pool<asio::ip::tcp::socket> pool(io.get_executor(), "db",
///                                        std::make_shared<qorb::dns_resolver>(dns),
///                                        qorb::tcp_connector{});
/// @endcode
class dns_resolver final : public resolver {
 public:
  /// A resolver for `config.service`; nothing is asked until `start`.
  explicit dns_resolver(dns_resolver_config config);
  dns_resolver(const dns_resolver&) = delete;
  dns_resolver& operator=(const dns_resolver&) = delete;
  ~dns_resolver() override;

  /// Starts the first round at once on a strand of `executor`. Call once.
  ///
  /// Handler: `on_change`, with the whole set, only when it changed (the
  /// first call after the first round that found backends, or an empty set
  /// when none did).
  ///
  /// Errors: none reported to the caller: a failing server is counted in
  /// `stats()` and logged, and the last known backends are kept.
  ///
  /// Executor: `on_change` runs on the resolver's strand of `executor`,
  /// never inside this call.
  ///
  /// Cancellation: `stop()`.
  ///
  /// Lifetimes, thread safety and exceptions: as `resolver::start` and the
  /// class comment; throws only `std::bad_alloc` (a failure to read
  /// `/etc/resolv.conf` is logged and retried).
  void start(asio::any_io_executor executor, listener on_change) override;

  /// Stops: cancels queries and timers; no listener call starts afterwards.
  /// Returns without waiting for the executor. Idempotent.
  ///
  /// Handler, errors, executor, cancellation, lifetimes, thread safety and
  /// exceptions: as `resolver::stop`; it does not throw.
  void stop() override;

  /// Counters so far (a consistent snapshot).
  dns_resolver_stats stats() const;

  /// The backends currently published, with their expiry times.
  std::vector<dns_backend_info> backends() const;

 private:
  class impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace qorb
