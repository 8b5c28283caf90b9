// SPDX-License-Identifier: BSL-1.0
// A hostile DNS server, for real over UDP and TCP: the N x N answer (one
// target, N ports, N addresses: 640,000 pairs in 60 KB over TCP) is capped,
// counted, logged and published in one lookup; SRV port 0 and absurd TTLs
// are skipped and clamped; hardcoded_ttl = milliseconds::max() never
// expires anything.
#include "resolver_harness.hpp"
#include "tcp_dns_server.hpp"

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <gtest/gtest.h>

namespace qorb::test {
namespace {

dns_resolver_config config_for(const dns::tcp_dns_server& server) {
  dns_resolver_config c;
  c.service = "_echo._tcp.test.com";
  c.servers = {server.endpoint()};
  c.family = address_family::v4;
  c.query_interval = 200ms;
  c.query_retry_if_no_records_found = 200ms;
  c.query_timeout = 10s;  // generous: a loaded machine must not time it out
  c.logger = nullptr;
  return c;
}

// Answers the SRV query with `srv`; every other query with no records.
dns::tcp_dns_server::answer_fn srv_only(std::function<dns::bytes(const dns::query_info&)> srv) {
  return [srv](const dns::query_info& q) {
    if (q.qtype == 33) return srv(q);
    dns::response_spec s;
    s.id = q.id;
    s.qname = q.qname;
    s.qtype = q.qtype;
    return dns::build_response(s);
  };
}

TEST(DnsHostileServer, TheNByNAnswerIsCappedCountedLoggedAndPublishedInOneLookup) {
  dns::tcp_dns_server server(srv_only([](const dns::query_info& q) {
    return dns::n_by_n_answer(q, 800);
  }));
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
  auto c = config_for(server);
  c.logger = std::make_shared<spdlog::logger>("dns", sink);
  resolver_harness h(c);
  h.start();
  // A generous deadline for a loaded machine; the answer's cost is bounded
  // by the cap (4096 backends), not by the 640,000 pairs it lists.
  ASSERT_TRUE(wait_until([&] { return h.count(dns_lookup_outcome::records) >= 1; }, 60s))
      << "outcomes: " << h.outcomes().size();
  ASSERT_TRUE(wait_until([&] { return h.current().size() == 4096; }, 10s)) << h.current().size();
  EXPECT_EQ(h.resolver().backends().size(), 4096u);
  const auto s = h.server(server.endpoint());
  EXPECT_GE(s.capped_answers, 1u);
  EXPECT_EQ(s.capped_answers, s.records);  // every lookup of it was capped
  EXPECT_EQ(s.errors + s.timeouts, 0u) << s.last_error;
  EXPECT_GE(server.tcp_queries(), 1);  // the 60 KB answer came over TCP
  EXPECT_TRUE(h.stop());
  bool logged = false;
  for (const auto& line : sink->last_formatted()) {
    if (line.find("listed more than 4096 backends") != std::string::npos &&
        line.find("max_backends_per_answer") != std::string::npos) {
      logged = true;
    }
  }
  EXPECT_TRUE(logged);
}

TEST(DnsHostileServer, PortZeroIsSkippedAndAbsurdTtlsClamped) {
  dns::tcp_dns_server server(srv_only([](const dns::query_info& q) {
    dns::response_spec s;
    s.id = q.id;
    s.qname = q.qname;
    s.qtype = q.qtype;
    s.answers = {dns::srv_rr(q.qname, 60, 0, "b0.test.com"),
                 dns::srv_rr(q.qname, 0x7FFFFFFF, 8080, "b1.test.com")};
    s.additional = {dns::a_rr("b0.test.com", 60, "127.0.0.3"),
                    dns::a_rr("b1.test.com", 0x7FFFFFFF, "127.0.0.2")};
    return dns::build_response(s);
  }));
  auto c = config_for(server);
  c.max_ttl = 120s;
  resolver_harness h(c);
  const auto before = std::chrono::steady_clock::now();
  h.start();
  ASSERT_TRUE(h.wait_names({"b1.test.com@127.0.0.2:8080"}, 30s));
  const auto backends = h.resolver().backends();
  ASSERT_EQ(backends.size(), 1u);
  EXPECT_LE(backends.front().expires, std::chrono::steady_clock::now() + 120s);
  EXPECT_GE(backends.front().expires, before + 120s);
  const auto s = h.server(server.endpoint());
  EXPECT_GE(s.port_zero_records, 1u);
  EXPECT_GE(s.clamped_ttls, 1u);
  EXPECT_TRUE(h.stop());
}

TEST(DnsHostileServer, HardcodedTtlMaxKeepsBackendsThroughRounds) {
  dns::tcp_dns_server server(srv_only([](const dns::query_info& q) {
    dns::response_spec s;
    s.id = q.id;
    s.qname = q.qname;
    s.qtype = q.qtype;
    s.answers = {dns::srv_rr(q.qname, 1, 8080, "b1.test.com")};
    s.additional = {dns::a_rr("b1.test.com", 1, "127.0.0.2")};
    return dns::build_response(s);
  }));
  auto c = config_for(server);
  c.hardcoded_ttl = std::chrono::milliseconds::max();
  resolver_harness h(c);
  h.start();
  ASSERT_TRUE(wait_until([&] { return h.count(dns_lookup_outcome::records) >= 4; }, 30s));
  // Published once and never expired (with the overflow, each backend
  // expired the moment it was published, and came back every round).
  const auto events = h.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(names_of(events.front().backends), std::set<std::string>{"b1.test.com@127.0.0.2:8080"});
  ASSERT_EQ(h.resolver().backends().size(), 1u);
  EXPECT_EQ(h.resolver().backends().front().expires, std::chrono::steady_clock::time_point::max());
  EXPECT_TRUE(h.stop());
}

}  // namespace
}  // namespace qorb::test
