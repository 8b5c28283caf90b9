// SPDX-License-Identifier: BSL-1.0
// qorb internal: what to ask one DNS server to resolve a service, and what
// its answers mean. No I/O: the caller sends the questions and feeds back
// the answers (raw bytes) or failures.
#pragma once

#include "resolvers/dns_message.hpp"

#include <qorb/resolvers/dns.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <vector>

namespace qorb::detail::dns {

/// A backend found in DNS: an SRV target (or host name), one of its
/// addresses, the SRV port, and the TTL of the smaller of its records.
struct found_backend {
  std::string target;
  asio::ip::address address;
  std::uint16_t port = 0;
  std::uint32_t ttl = 0;

  friend bool operator==(const found_backend&, const found_backend&) = default;
};

/// "target@ip:port" ("backend1.test.com@[::1]:8080"): stable across answers
/// and readable in logs; unique per (target, address, port).
std::string backend_name(const std::string& target, const asio::ip::address& address,
                         std::uint16_t port);

struct question {
  std::string name;
  rr_type type = rr_type::srv;

  friend bool operator==(const question&, const question&) = default;
};

const char* to_string(rr_type type);

enum class lookup_status { records, no_records, timeout, error };

const char* to_string(lookup_status status);

/// How one server's lookup ended. Only `records` has backends.
struct lookup_result {
  lookup_status status = lookup_status::no_records;
  std::vector<found_backend> backends;
  std::string reason;  ///< for timeout and error: why.
  /// The answer listed more than `lookup_limits::max_backends` backends;
  /// only the first that many (in answer order) are in `backends`.
  bool capped = false;
  std::size_t port_zero = 0;     ///< SRV records with port 0 (skipped).
  std::size_t ttls_clamped = 0;  ///< backends whose TTL was above `max_ttl`.
};

/// What one answer may make the resolver do (dns_resolver_config's
/// max_backends_per_answer and max_ttl).
struct lookup_limits {
  std::size_t max_backends = 4096;
  std::uint32_t max_ttl = 86400;  ///< seconds
};

/// A query that got no usable answer from c-ares.
struct query_failure {
  bool timeout = false;
  std::string reason;
};

/// At most this many distinct SRV targets are followed in one answer; a
/// bigger answer counts as a failure of the server ("answer too large").
inline constexpr std::size_t max_srv_targets = 256;

/// At most this many names are followed through CNAME records from one
/// name (the name itself included); longer chains are cut there.
inline constexpr std::size_t max_alias_names = 32;

/// One lookup of `name` on one server: the SRV query, then an A and/or AAAA
/// query for each target whose addresses were not in the Additional section
/// (or, with a fallback port and no SRV records, A/AAAA of `name` itself).
/// Any failed query fails the whole lookup: a partial answer could drop
/// backends that are still there.
///
/// Work is bounded by the answer's size: each answer is indexed once
/// (O(n log n)), CNAME chains are followed through at most
/// `max_alias_names` names, and at most `limits.max_backends` backends are
/// built, however many (port, address) pairs the answer multiplies out to.
class server_lookup {
 public:
  server_lookup(std::string name, address_family family, std::optional<std::uint16_t> fallback_port,
                lookup_limits limits = {});

  /// The first question: the SRV records of the name.
  question first_question() const;

  /// Feeds the answer to `q`; returns the questions to ask next.
  std::vector<question> on_answer(const question& q, std::span<const std::uint8_t> bytes);

  /// Feeds the failure of `q`; the lookup is then done.
  void on_failure(const question& q, const query_failure& failure);

  bool done() const { return done_; }
  const lookup_result& result() const { return result_; }

 private:
  struct backend_key {
    std::size_t target;  // index in targets_
    asio::ip::address address;
    std::uint16_t port;
    friend bool operator<(const backend_key& a, const backend_key& b) {
      return std::tie(a.target, a.address, a.port) < std::tie(b.target, b.address, b.port);
    }
  };
  std::vector<question> on_srv_answer(const message& m);
  void on_address_answer(const question& q, const message& m);
  void add_addresses(std::size_t target, const std::vector<const record*>& records);
  void add_backend(std::size_t target, const asio::ip::address& address, std::uint16_t port,
                   std::uint32_t ttl);
  std::vector<rr_type> wanted_types() const;
  void fail(lookup_status status, std::string reason);
  void finish_if_idle();

  std::string name_;
  address_family family_;
  std::optional<std::uint16_t> fallback_port_;
  lookup_limits limits_;
  std::vector<std::string> targets_;                           // in answer order
  std::map<std::string, std::size_t> target_ids_;              // target -> index in targets_
  std::vector<std::map<std::uint16_t, std::uint32_t>> ports_;  // by target: port -> TTL
  std::map<backend_key, std::size_t> built_;                   // -> index in result_.backends
  std::size_t outstanding_ = 1;
  bool done_ = false;
  lookup_result result_;
};

}  // namespace qorb::detail::dns
