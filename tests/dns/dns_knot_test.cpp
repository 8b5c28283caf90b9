// SPDX-License-Identifier: BSL-1.0
// The DNS resolver against real Knot DNS servers on loopback, each test with
// its own server(s) and zone.
#include "knot_server.hpp"
#include "resolver_harness.hpp"

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <gtest/gtest.h>

#include <sstream>

namespace qorb::test {
namespace {

using udp_endpoint = asio::ip::udp::endpoint;
using std::chrono::steady_clock;

const std::string service = "_echo._tcp.test.com";

dns_resolver_config fast_config(std::vector<udp_endpoint> servers) {
  dns_resolver_config c;
  c.service = service;
  c.servers = std::move(servers);
  c.query_interval = 200ms;
  c.query_retry_if_no_records_found = 100ms;
  c.query_timeout = 1s;
  c.logger = nullptr;
  return c;
}

TEST(DnsKnot, ResolvesTargetsInTheZoneAndOutOfIt) {
  // backend1 is in the SRV's zone (Knot sends its addresses in the
  // Additional section); host.example.net is not (follow-up A/AAAA queries).
  knot_server knot(
      std::map<std::string, std::string>{{"test.com",
                                          "_echo._tcp 60 IN SRV 0 0 8080 backend1\n"
                                          "_echo._tcp 60 IN SRV 0 0 8081 host.example.net.\n"
                                          "backend1 60 IN AAAA ::1\n"
                                          "backend1 60 IN A 127.0.0.2\n"},
                                         {"example.net", "host 60 IN A 127.0.0.3\n"}});
  resolver_harness h(fast_config({knot.endpoint()}));
  h.start();
  ASSERT_TRUE(h.wait_names({"backend1.test.com@127.0.0.2:8080", "backend1.test.com@[::1]:8080",
                            "host.example.net@127.0.0.3:8081"}))
      << h.names().size();
  const auto m = h.current();
  EXPECT_EQ(m.at("backend1.test.com@[::1]:8080").address,
            asio::ip::tcp::endpoint(asio::ip::make_address("::1"), 8080));
  EXPECT_EQ(m.at("host.example.net@127.0.0.3:8081").address,
            asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.3"), 8081));
  const auto s = h.server(knot.endpoint());
  EXPECT_GE(s.records, 1u);
  EXPECT_EQ(s.errors + s.timeouts, 0u) << s.last_error;
  // Several rounds with the same answer publish once.
  ASSERT_TRUE(wait_until([&] { return h.resolver().stats().rounds >= 4; }));
  EXPECT_EQ(h.events().size(), 1u);
}

TEST(DnsKnot, ServerWithoutRecordsIsNotAFailure) {
  knot_server empty("example.net", "host 60 IN A 127.0.0.3\n");  // REFUSED for test.com
  knot_server full("test.com", "_echo._tcp 60 IN SRV 0 0 8080 b1\nb1 60 IN A 127.0.0.1\n");
  auto c = fast_config({empty.endpoint(), full.endpoint(true)});
  c.max_dns_concurrency = 1;  // the empty server is asked first, alone
  resolver_harness h(c);
  h.start();
  ASSERT_TRUE(h.wait_names({"b1.test.com@127.0.0.1:8080"}));
  const auto e = h.server(empty.endpoint());
  EXPECT_GE(e.no_records, 1u);
  EXPECT_EQ(e.errors + e.timeouts, 0u) << e.last_error;
  EXPECT_GE(h.server(full.endpoint(true)).records, 1u);
  EXPECT_EQ(h.count(dns_lookup_outcome::no_records), 0u);
}

class DnsFamily : public ::testing::TestWithParam<address_family> {};

TEST_P(DnsFamily, PublishesOneBackendPerAddressOfTheChosenFamilies) {
  knot_server knot("test.com",
                   "_echo._tcp 60 IN SRV 0 0 8080 mixed\n"
                   "_echo._tcp 60 IN SRV 0 0 9090 v4only\n"
                   "mixed 60 IN A 127.0.0.2\n"
                   "mixed 60 IN A 127.0.0.3\n"
                   "mixed 60 IN AAAA ::1\n"
                   "mixed 60 IN AAAA ::2\n"
                   "v4only 60 IN A 127.0.0.4\n");
  auto c = fast_config({knot.endpoint()});
  c.family = GetParam();
  const std::set<std::string> v4 = {"mixed.test.com@127.0.0.2:8080",
                                    "mixed.test.com@127.0.0.3:8080",
                                    "v4only.test.com@127.0.0.4:9090"};
  const std::set<std::string> v6 = {"mixed.test.com@[::1]:8080", "mixed.test.com@[::2]:8080"};
  std::set<std::string> expected;
  if (GetParam() != address_family::v6) expected.insert(v4.begin(), v4.end());
  if (GetParam() != address_family::v4) expected.insert(v6.begin(), v6.end());
  resolver_harness h(c);
  h.start();
  EXPECT_TRUE(h.wait_names(expected)) << h.names().size();
  ASSERT_TRUE(wait_until([&] { return h.resolver().stats().rounds >= 2; }));
  EXPECT_EQ(h.names(), expected);
}

INSTANTIATE_TEST_SUITE_P(Families, DnsFamily,
                         ::testing::Values(address_family::v4, address_family::v6,
                                           address_family::both));

TEST(DnsKnot, BackendsExpireOneByOneAtTheirTtl) {
  // Records of one RRset share a TTL, so the TTLs differ on the addresses; a
  // backend lives as long as the shorter of its SRV and address records.
  knot_server knot("test.com",
                   "_echo._tcp 3600 IN SRV 0 0 8080 short\n"
                   "_echo._tcp 3600 IN SRV 0 0 8080 long\n"
                   "short 1 IN A 127.0.0.2\n"
                   "long 3 IN A 127.0.0.3\n");
  resolver_harness h(fast_config({knot.endpoint()}));
  h.start();
  const std::string s = "short.test.com@127.0.0.2:8080";
  const std::string l = "long.test.com@127.0.0.3:8080";
  ASSERT_TRUE(h.wait_names({s, l}));
  knot.edit("test.com", {}, {"_echo._tcp.test.com."});
  const auto removed = steady_clock::now();
  ASSERT_TRUE(h.wait_names({l}, 5s)) << h.names().size();
  const auto short_gone = steady_clock::now();
  ASSERT_TRUE(h.wait_names({}, 6s));
  const auto long_gone = steady_clock::now();
  // Each went at its own TTL (counted from its last refresh, just before the
  // edit), not at once and not at the next query.
  EXPECT_LT(short_gone - removed, 2s);
  EXPECT_GT(long_gone - short_gone, 1s);
  EXPECT_GT(long_gone - removed, 2s);
}

TEST(DnsKnot, HardcodedTtlOverridesTheRecords) {
  knot_server knot("test.com", "_echo._tcp 1 IN SRV 0 0 8080 b1\nb1 1 IN A 127.0.0.2\n");
  auto c = fast_config({knot.endpoint()});
  c.hardcoded_ttl = 3s;
  resolver_harness h(c);
  h.start();
  ASSERT_TRUE(h.wait_names({"b1.test.com@127.0.0.2:8080"}));
  const auto info = h.resolver().backends();
  ASSERT_EQ(info.size(), 1u);
  EXPECT_GT(info[0].expires - steady_clock::now(), 2s);
  EXPECT_EQ(info[0].target, "b1.test.com");
  knot.edit("test.com", {}, {"_echo._tcp.test.com."});
  const auto removed = steady_clock::now();
  ASSERT_TRUE(h.wait_names({}, 6s));
  EXPECT_GT(steady_clock::now() - removed, 2s);  // the DNS TTL (1 s) was not used
}

TEST(DnsKnot, TtlZeroAppearsThenGoesEveryRound) {
  knot_server knot("test.com", "_echo._tcp 0 IN SRV 0 0 8080 b1\nb1 0 IN A 127.0.0.2\n");
  resolver_harness h(fast_config({knot.endpoint()}));
  h.start();
  const auto cycles = [&] {
    std::size_t appeared = 0;
    std::size_t went = 0;
    for (const auto& e : h.events()) (e.backends.empty() ? went : appeared)++;
    return std::min(appeared, went);
  };
  ASSERT_TRUE(wait_until([&] { return cycles() >= 3; }, 5s)) << cycles();
  const auto events = h.events();
  for (std::size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].backends.size(), i % 2 == 0 ? 1u : 0u) << i;
  }
}

TEST(DnsKnot, BackendsStillInDnsAreRefreshedBeforeTheyExpire) {
  // A 2 s TTL and a query interval of a minute: qorb would drop the backend
  // after 2 s and add it back a minute later. The resolver asks again
  // before the TTL ends instead, so the backend stays without a blip.
  knot_server knot("test.com", "_echo._tcp 2 IN SRV 0 0 8080 b1\nb1 2 IN A 127.0.0.2\n");
  auto c = fast_config({knot.endpoint()});
  c.query_interval = 60s;
  resolver_harness h(c);
  h.start();
  ASSERT_TRUE(h.wait_names({"b1.test.com@127.0.0.2:8080"}));
  const auto rounds = h.resolver().stats().rounds;
  // Two TTLs later it was asked again (at least twice) and never dropped.
  ASSERT_TRUE(wait_until([&] { return h.resolver().stats().rounds >= rounds + 2; }, 5s));
  EXPECT_EQ(h.events().size(), 1u) << "the backend was dropped and added back";
  // Removed from DNS, it still goes at its TTL.
  knot.edit("test.com", {}, {"_echo._tcp.test.com."});
  EXPECT_TRUE(h.wait_names({}, 5s));
}

TEST(DnsKnot, PicksUpRecordsChangedWhileRunning) {
  knot_server knot("test.com", "_echo._tcp 1 IN SRV 0 0 8080 b1\nb1 60 IN A 127.0.0.2\n");
  resolver_harness h(fast_config({knot.endpoint()}));
  h.start();
  ASSERT_TRUE(h.wait_names({"b1.test.com@127.0.0.2:8080"}));
  knot.edit("test.com",
            {"_echo._tcp.test.com. 1 SRV 0 0 8081 b2.test.com.", "b2.test.com. 60 A 127.0.0.5"});
  ASSERT_TRUE(h.wait_names({"b1.test.com@127.0.0.2:8080", "b2.test.com@127.0.0.5:8081"}));
  knot.edit("test.com", {}, {"_echo._tcp.test.com. SRV 0 0 8080 b1.test.com."});
  ASSERT_TRUE(h.wait_names({"b2.test.com@127.0.0.5:8081"}));
  knot.edit("test.com", {"b2.test.com. 60 A 127.0.0.6"});
  EXPECT_TRUE(h.wait_names({"b2.test.com@127.0.0.5:8081", "b2.test.com@127.0.0.6:8081"}));
}

TEST(DnsKnot, EmptyAnswersAreRetriedSoonerThanTheQueryInterval) {
  knot_server knot("test.com", "b1 60 IN A 127.0.0.2\n");
  auto c = fast_config({knot.endpoint()});
  c.query_interval = 60s;
  c.query_retry_if_no_records_found = 200ms;
  resolver_harness h(c);
  h.start();
  ASSERT_TRUE(wait_until([&] { return h.count(dns_lookup_outcome::no_records) >= 1; }));
  knot.edit("test.com", {"_echo._tcp.test.com. 60 SRV 0 0 8080 b1.test.com."});
  const auto added = steady_clock::now();
  ASSERT_TRUE(h.wait_names({"b1.test.com@127.0.0.2:8080"}, 10s));
  EXPECT_LT(steady_clock::now() - added, 5s);
  // Once found, the next round waits the full query interval.
  const auto rounds = h.resolver().stats().rounds;
  EXPECT_FALSE(wait_until([&] { return h.resolver().stats().rounds > rounds; }, 500ms));
}

TEST(DnsKnot, SilentServerTimesOutAndTheOtherServerIsUsed) {
  silent_udp_server silent;
  knot_server knot("test.com", "_echo._tcp 60 IN SRV 0 0 8080 b1\nb1 60 IN A 127.0.0.2\n");
  auto c = fast_config({silent.endpoint(), knot.endpoint()});
  c.max_dns_concurrency = 1;  // the silent server first, alone
  c.query_timeout = 300ms;
  resolver_harness h(c);
  h.start();
  ASSERT_TRUE(h.wait_names({"b1.test.com@127.0.0.2:8080"}));
  const auto s = h.server(silent.endpoint());
  EXPECT_EQ(s.timeouts, 1u);
  EXPECT_EQ(s.records, 0u);
  EXPECT_FALSE(s.last_error.empty());
  // The failing server is asked last from now on: the next rounds succeed
  // without waiting for it.
  ASSERT_TRUE(wait_until([&] { return h.count(dns_lookup_outcome::records) >= 4; }));
  EXPECT_EQ(h.server(silent.endpoint()).timeouts, 1u);
}

TEST(DnsKnot, DiscoversMoreServersThroughTheResolverService) {
  knot_server second("test.com", "_echo._tcp 60 IN SRV 0 0 8080 b1\nb1 60 IN A 127.0.0.2\n");
  knot_server bootstrap("test.com", "_dns._udp 60 IN SRV 0 0 " + std::to_string(second.port()) +
                                        " ns2\nns2 60 IN A 127.0.0.1\n");
  auto c = fast_config({bootstrap.endpoint()});
  c.resolver_service = "_dns._udp.test.com";
  resolver_harness h(c);
  h.start();
  ASSERT_TRUE(h.wait_names({"b1.test.com@127.0.0.2:8080"}));
  const auto stats = h.resolver().stats().servers;
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_FALSE(stats[0].discovered);
  EXPECT_TRUE(stats[1].discovered);
  EXPECT_EQ(stats[1].server, second.endpoint());
  EXPECT_GE(stats[1].records, 1u);
  EXPECT_GE(stats[0].no_records, 1u);
}

TEST(DnsKnot, KeepsTheLastKnownBackendsWhenEveryServerFails) {
  auto knot = std::make_unique<knot_server>(std::map<std::string, std::string>{
      {"test.com", "_echo._tcp 1 IN SRV 0 0 8080 b1\nb1 1 IN A 127.0.0.2\n"}});
  const auto endpoint = knot->endpoint();
  resolver_harness h(fast_config({endpoint}));
  h.start();
  ASSERT_TRUE(h.wait_names({"b1.test.com@127.0.0.2:8080"}));
  knot.reset();  // the port is now closed: queries fail at once
  const auto stopped = steady_clock::now();
  ASSERT_TRUE(wait_until(
      [&] {
        return h.count(dns_lookup_outcome::failed) >= 3 && steady_clock::now() - stopped > 2s;
      },
      10s));
  EXPECT_EQ(h.names(), std::set<std::string>{"b1.test.com@127.0.0.2:8080"});  // past its TTL
  const auto s = h.server(endpoint);
  EXPECT_GE(s.errors + s.timeouts, 3u);
}

TEST(DnsKnot, FallsBackToAPlainHostNameWhenConfigured) {
  knot_server knot("test.com", "plain 60 IN A 127.0.0.7\nplain 60 IN AAAA ::1\n");
  auto c = fast_config({knot.endpoint()});
  c.service = "plain.test.com";
  c.family = address_family::v4;
  {
    resolver_harness off(c);  // off by default
    off.start();
    ASSERT_TRUE(wait_until([&] { return off.count(dns_lookup_outcome::no_records) >= 1; }));
    EXPECT_TRUE(off.names().empty());
  }
  c.fallback_port = 9000;
  resolver_harness h(c);
  h.start();
  EXPECT_TRUE(h.wait_names({"plain.test.com@127.0.0.7:9000"}));
}

TEST(DnsKnot, StopWhileAQueryIsInFlightReturnsPromptlyAndLeavesNothing) {
  silent_udp_server silent;
  auto c = fast_config({silent.endpoint()});
  c.query_timeout = 30s;
  std::atomic<int> calls_after_stop{0};
  std::atomic<bool> stopped{false};
  c.on_lookup_done = [&](dns_lookup_outcome) {
    if (stopped) ++calls_after_stop;
  };
  resolver_harness h(c);
  h.start();
  ASSERT_TRUE(wait_until([&] { return h.server(silent.endpoint()).lookups >= 1; }));
  const auto before = steady_clock::now();
  h.resolver().stop();
  stopped = true;
  EXPECT_LT(steady_clock::now() - before, 100ms);
  // With no work guard, the io_context runs dry only once every socket
  // wait and timer of the resolver is gone: nothing is left behind.
  const auto drained_by = steady_clock::now();
  EXPECT_TRUE(h.stop(2s));
  EXPECT_LT(steady_clock::now() - drained_by, 2s);
  EXPECT_EQ(calls_after_stop, 0);
  EXPECT_EQ(h.server(silent.endpoint()).timeouts, 0u);
}

TEST(DnsKnot, LogsQueriesChangesFailuresAndStop) {
  silent_udp_server silent;
  knot_server knot("test.com", "_echo._tcp 60 IN SRV 0 0 8080 b1\nb1 60 IN A 127.0.0.2\n");
  auto out = std::make_shared<std::ostringstream>();
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*out);
  auto logger = std::make_shared<spdlog::logger>("dns-test", sink);
  logger->set_level(spdlog::level::debug);
  auto c = fast_config({silent.endpoint(), knot.endpoint()});
  c.query_timeout = 200ms;
  c.logger = logger;
  {
    resolver_harness h(c);
    h.start();
    ASSERT_TRUE(h.wait_names({"b1.test.com@127.0.0.2:8080"}));
    ASSERT_TRUE(wait_until([&] { return h.server(silent.endpoint()).timeouts >= 1; }));
  }
  logger->flush();
  const std::string log = out->str();
  for (const std::string expected :
       {"started, servers: 127.0.0.1:", "asking 127.0.0.1:", "for SRV _echo._tcp.test.com",
        "answered SRV _echo._tcp.test.com", "backends changed: +b1.test.com@127.0.0.2:8080",
        "failed (timeout)", "stopped"}) {
    EXPECT_NE(log.find(expected), std::string::npos) << expected << "\n" << log;
  }
}

}  // namespace
}  // namespace qorb::test
