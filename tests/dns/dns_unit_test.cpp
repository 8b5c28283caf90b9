// SPDX-License-Identifier: BSL-1.0
// The DNS resolver's logic without I/O: wire parsing, one server's lookup,
// backend TTLs (fake clock), server order and rounds.
#include "dns_wire.hpp"
#include "resolvers/dns_lookup.hpp"
#include "resolvers/dns_message.hpp"
#include "resolvers/dns_state.hpp"

#include <gtest/gtest.h>

#include <random>
#include <set>

namespace qorb {
namespace {

using namespace std::chrono_literals;
using namespace detail::dns;
namespace w = test::dns;

const std::string service = "_echo._tcp.test.com";

std::optional<message> parse(const w::bytes& b) {
  std::string error;
  return parse_response(b, error);
}

std::string parse_error(const w::bytes& b) {
  std::string error;
  EXPECT_FALSE(parse_response(b, error).has_value());
  return error;
}

w::bytes srv_answer(std::vector<w::rr> answers, std::vector<w::rr> additional = {}) {
  w::response_spec s;
  s.answers = std::move(answers);
  s.additional = std::move(additional);
  return w::build_response(s);
}

w::bytes address_answer(const std::string& name, std::uint16_t type, std::vector<w::rr> answers,
                        std::uint8_t rcode = 0) {
  w::response_spec s;
  s.qname = name;
  s.qtype = type;
  s.rcode = rcode;
  s.answers = std::move(answers);
  return w::build_response(s);
}

w::bytes rcode_answer(std::uint8_t rcode) {
  w::response_spec s;
  s.rcode = rcode;
  return w::build_response(s);
}

// --- wire format -----------------------------------------------------------

TEST(DnsMessage, ParsesSrvAndAddressRecordsInCanonicalForm) {
  const auto m = parse(srv_answer(
      {w::srv_rr("_Echo._TCP.Test.COM", 7, 8080, "Backend1.Test.com")},
      {w::a_rr("backend1.test.com", 9, "127.0.0.2"), w::aaaa_rr("backend1.test.com", 11, "::1")}));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->id, 0x1234);
  ASSERT_EQ(m->answers.size(), 1u);
  EXPECT_EQ(m->answers[0].name, service);
  EXPECT_EQ(m->answers[0].ttl, 7u);
  EXPECT_EQ(std::get<srv_data>(m->answers[0].data), (srv_data{0, 0, 8080, "backend1.test.com"}));
  ASSERT_EQ(m->additional.size(), 2u);
  EXPECT_EQ(std::get<asio::ip::address>(m->additional[0].data),
            asio::ip::make_address("127.0.0.2"));
  EXPECT_EQ(std::get<asio::ip::address>(m->additional[1].data), asio::ip::make_address("::1"));
  EXPECT_EQ(m->additional[1].ttl, 11u);
}

TEST(DnsMessage, FollowsBackwardCompressionPointers) {
  w::response_spec s;
  auto b = w::build_response(s);  // question name at offset 12
  // One A answer whose owner is a pointer to the question name.
  b[7] = 1;
  w::bytes rr = {0xC0, 12};
  w::put16(rr, 1);
  w::put16(rr, 1);
  w::put32(rr, 30);
  w::put16(rr, 4);
  rr.insert(rr.end(), {10, 0, 0, 1});
  b.insert(b.end(), rr.begin(), rr.end());
  const auto m = parse(b);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->answers.at(0).name, service);
}

TEST(DnsMessage, RejectsMalformedMessages) {
  EXPECT_NE(parse_error({1, 2, 3}).find("shorter than a DNS header"), std::string::npos);

  auto query = rcode_answer(0);
  query[2] &= 0x7F;  // QR bit off
  EXPECT_EQ(parse_error(query), "not a response");

  auto counts = rcode_answer(0);
  counts[7] = 200;  // 200 answers in a 40-byte message
  EXPECT_EQ(parse_error(counts), "record counts do not fit in the message");

  // A pointer to itself, and one pointing forwards.
  for (std::uint8_t target : {std::uint8_t{12}, std::uint8_t{40}}) {
    w::bytes loop;
    w::put16(loop, 1);
    w::put16(loop, 0x8180);
    w::put16(loop, 1);
    for (int i = 0; i < 3; ++i) w::put16(loop, 0);
    loop.insert(loop.end(), {0xC0, target, 0, 1, 0, 1});
    loop.resize(64, 0);
    EXPECT_NE(parse_error(loop).find("compression pointer"), std::string::npos);
  }

  w::rr bad_a{"x.test.com", 1, 1, {1, 2, 3, 4, 5}};
  EXPECT_NE(parse_error(srv_answer({bad_a})).find("A record with 5 bytes"), std::string::npos);

  std::string long_name;
  for (int i = 0; i < 5; ++i) long_name += std::string(60, 'a') + ".";
  long_name += "com";
  EXPECT_EQ(parse_error(srv_answer({w::a_rr(long_name, 1, "1.2.3.4")})),
            "name longer than 255 bytes");
}

TEST(DnsMessage, EveryTruncationOfAnAnswerIsRejectedWithoutReadingPastTheEnd) {
  const auto full = srv_answer({w::srv_rr(service, 7, 8080, "backend1.test.com"),
                                w::srv_rr(service, 7, 8081, "b2.test.com")},
                               {w::a_rr("backend1.test.com", 9, "127.0.0.2")});
  ASSERT_TRUE(parse(full));
  for (std::size_t n = 0; n < full.size(); ++n) {
    // A copy of exactly n bytes, so ASan catches any read beyond it.
    const w::bytes prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FALSE(parse(prefix)) << n;
  }
}

TEST(DnsMessage, RandomCorruptionNeverCrashes) {
  const auto full = srv_answer({w::srv_rr(service, 7, 8080, "backend1.test.com")},
                               {w::aaaa_rr("backend1.test.com", 9, "::1")});
  std::mt19937 rng(42);
  int parsed = 0;
  for (int i = 0; i < 5000; ++i) {
    auto b = full;
    for (int flips = 0; flips < 3; ++flips) {
      b[rng() % b.size()] = static_cast<std::uint8_t>(rng());
    }
    if (parse(b)) ++parsed;
  }
  EXPECT_GT(parsed, 0);  // some corruptions (ttl, ids) are harmless
}

// --- one server's lookup ---------------------------------------------------

TEST(DnsLookup, BackendNamesAreReadableAndUniquePerAddressAndPort) {
  EXPECT_EQ(backend_name("b.test.com", asio::ip::make_address("::1"), 80), "b.test.com@[::1]:80");
  EXPECT_EQ(backend_name("b.test.com", asio::ip::make_address("10.0.0.1"), 8080),
            "b.test.com@10.0.0.1:8080");
}

TEST(DnsLookup, UsesTheAdditionalSectionAndTakesTheSmallerTtl) {
  server_lookup l(service, address_family::both, std::nullopt);
  EXPECT_EQ(l.first_question(), (question{service, rr_type::srv}));
  const auto next = l.on_answer(
      l.first_question(),
      srv_answer({w::srv_rr(service, 30, 8080, "b1.test.com")},
                 {w::a_rr("b1.test.com", 5, "127.0.0.2"), w::aaaa_rr("b1.test.com", 60, "::1"),
                  w::a_rr("b1.test.com", 5, "127.0.0.3")}));
  EXPECT_TRUE(next.empty());
  ASSERT_TRUE(l.done());
  EXPECT_EQ(l.result().status, lookup_status::records);
  EXPECT_EQ(
      l.result().backends,
      (std::vector<found_backend>{{"b1.test.com", asio::ip::make_address("::1"), 8080, 30},
                                  {"b1.test.com", asio::ip::make_address("127.0.0.2"), 8080, 5},
                                  {"b1.test.com", asio::ip::make_address("127.0.0.3"), 8080, 5}}));
}

TEST(DnsLookup, AsksForWhatTheAdditionalSectionLacksPerFamily) {
  const auto answer = srv_answer(
      {w::srv_rr(service, 30, 8080, "b1.test.com"), w::srv_rr(service, 30, 8081, "b2.test.com")},
      {w::aaaa_rr("b1.test.com", 60, "::1")});
  {
    server_lookup l(service, address_family::both, std::nullopt);
    const auto next = l.on_answer(l.first_question(), answer);
    EXPECT_EQ(next, (std::vector<question>{{"b1.test.com", rr_type::a},
                                           {"b2.test.com", rr_type::aaaa},
                                           {"b2.test.com", rr_type::a}}));
    EXPECT_FALSE(l.done());
    EXPECT_TRUE(l.on_answer(next[0], address_answer("b1.test.com", 1, {}, 3)).empty());
    EXPECT_TRUE(l.on_answer(next[1], address_answer("b2.test.com", 28, {})).empty());
    EXPECT_FALSE(l.done());
    l.on_answer(next[2], address_answer("b2.test.com", 1,
                                        {w::cname_rr("b2.test.com", 100, "real.test.com"),
                                         w::a_rr("real.test.com", 20, "10.0.0.7"),
                                         w::a_rr("unrelated.test.com", 20, "10.0.0.8")}));
    ASSERT_TRUE(l.done());
    EXPECT_EQ(l.result().backends,
              (std::vector<found_backend>{
                  {"b1.test.com", asio::ip::make_address("::1"), 8080, 30},
                  {"b2.test.com", asio::ip::make_address("10.0.0.7"), 8081, 20}}));
  }
  {
    server_lookup l(service, address_family::v4, std::nullopt);
    EXPECT_EQ(l.on_answer(l.first_question(), answer),
              (std::vector<question>{{"b1.test.com", rr_type::a}, {"b2.test.com", rr_type::a}}));
  }
  {
    server_lookup l(service, address_family::v6, std::nullopt);
    EXPECT_EQ(l.on_answer(l.first_question(), answer),
              (std::vector<question>{{"b2.test.com", rr_type::aaaa}}));
  }
}

TEST(DnsLookup, NoSuchRecordsIsNotAnError) {
  for (std::uint8_t rcode : {0, 3, 4, 5}) {  // NODATA, NXDOMAIN, NOTIMP, REFUSED
    server_lookup l(service, address_family::both, std::nullopt);
    EXPECT_TRUE(l.on_answer(l.first_question(), rcode_answer(rcode)).empty());
    ASSERT_TRUE(l.done());
    EXPECT_EQ(l.result().status, lookup_status::no_records) << int{rcode};
  }
  // Targets without any address: no records either. "." means "not here".
  server_lookup l(service, address_family::v4, std::nullopt);
  const auto next = l.on_answer(
      l.first_question(),
      srv_answer({w::srv_rr(service, 30, 80, "b1.test.com"), w::srv_rr(service, 30, 80, ".")}));
  ASSERT_EQ(next.size(), 1u);
  l.on_answer(next[0], address_answer("b1.test.com", 1, {}));
  EXPECT_EQ(l.result().status, lookup_status::no_records);
}

TEST(DnsLookup, BadAnswersAndFailedQueriesFailTheServer) {
  const auto fails = [](const w::bytes& answer, const std::string& why) {
    server_lookup l(service, address_family::both, std::nullopt);
    l.on_answer(l.first_question(), answer);
    ASSERT_TRUE(l.done());
    EXPECT_EQ(l.result().status, lookup_status::error);
    EXPECT_NE(l.result().reason.find(why), std::string::npos) << l.result().reason;
  };
  fails(rcode_answer(2), "SERVFAIL");
  fails(rcode_answer(1), "FORMERR");
  fails({0x12, 0x34, 0x81}, "malformed answer");
  w::response_spec tc;
  tc.truncated = true;
  fails(w::build_response(tc), "truncated");
  std::vector<w::rr> many;
  for (int i = 0; i < 300; ++i) {
    // Appended, not "t" + ...: GCC 12 -O3 flags that as an overlapping copy.
    std::string target = "t";
    target += std::to_string(i);
    many.push_back(w::srv_rr(service, 1, 80, target));
  }
  fails(srv_answer(many), "answer too large");

  // A follow-up query that times out fails the whole lookup, and answers
  // arriving afterwards change nothing.
  server_lookup l(service, address_family::both, std::nullopt);
  const auto next =
      l.on_answer(l.first_question(), srv_answer({w::srv_rr(service, 30, 80, "b1.test.com")}));
  ASSERT_EQ(next.size(), 2u);
  l.on_failure(next[0], {true, "Timeout while contacting DNS servers"});
  ASSERT_TRUE(l.done());
  EXPECT_EQ(l.result().status, lookup_status::timeout);
  EXPECT_EQ(l.result().reason, "AAAA b1.test.com: Timeout while contacting DNS servers");
  EXPECT_TRUE(
      l.on_answer(next[1], address_answer("b1.test.com", 1, {w::a_rr("b1.test.com", 1, "1.1.1.1")}))
          .empty());
  EXPECT_EQ(l.result().status, lookup_status::timeout);
  EXPECT_TRUE(l.result().backends.empty());
}

TEST(DnsLookup, FallsBackToTheHostNameOnlyWhenConfigured) {
  {
    server_lookup l("plain.test.com", address_family::v4, std::nullopt);
    l.on_answer(l.first_question(), rcode_answer(3));
    EXPECT_EQ(l.result().status, lookup_status::no_records);
  }
  server_lookup l("plain.test.com", address_family::v4, std::uint16_t{9000});
  const auto next = l.on_answer(l.first_question(), rcode_answer(3));
  ASSERT_EQ(next, (std::vector<question>{{"plain.test.com", rr_type::a}}));
  l.on_answer(next[0],
              address_answer("plain.test.com", 1, {w::a_rr("plain.test.com", 42, "10.1.1.1")}));
  ASSERT_TRUE(l.done());
  EXPECT_EQ(l.result().backends,
            (std::vector<found_backend>{
                {"plain.test.com", asio::ip::make_address("10.1.1.1"), 9000, 42}}));
}

// --- backend TTLs (fake clock: plain time points) --------------------------

std::set<std::string> names_of_table(const backend_table& t) {
  std::set<std::string> out;
  for (const auto& [name, b] : t.backends()) out.insert(name);
  return out;
}

found_backend fb(const std::string& target, const char* ip, std::uint32_t ttl) {
  return {target, asio::ip::make_address(ip), 80, ttl};
}

TEST(DnsBackendTable, BackendsExpireOneByOneUnlessRefreshed) {
  backend_table t;
  const clock::time_point t0{};
  EXPECT_TRUE(t.merge({fb("a", "10.0.0.1", 1), fb("b", "10.0.0.2", 3)}, t0, std::nullopt));
  EXPECT_FALSE(t.merge({fb("a", "10.0.0.1", 1)}, t0, std::nullopt));  // no change: no publish
  EXPECT_EQ(t.next_expiry(), t0 + 1s);
  EXPECT_FALSE(t.expire(t0 + 999ms));
  EXPECT_TRUE(t.expire(t0 + 1s));
  EXPECT_EQ(names_of_table(t), std::set<std::string>{"b@10.0.0.2:80"});
  // A refresh extends b from t0+3s to t0+2s+3s.
  t.merge({fb("b", "10.0.0.2", 3)}, t0 + 2s, std::nullopt);
  EXPECT_FALSE(t.expire(t0 + 4s));
  EXPECT_TRUE(t.expire(t0 + 5s));
  EXPECT_EQ(t.size(), 0u);
  EXPECT_FALSE(t.next_expiry());
}

TEST(DnsBackendTable, HardcodedTtlOverridesAndTtlZeroGoesAtOnce) {
  backend_table t;
  const clock::time_point t0{};
  t.merge({fb("a", "10.0.0.1", 1)}, t0, std::chrono::milliseconds(30s));
  EXPECT_FALSE(t.expire(t0 + 29s));
  EXPECT_TRUE(t.expire(t0 + 30s));

  EXPECT_TRUE(t.merge({fb("z", "10.0.0.9", 0)}, t0, std::nullopt));
  EXPECT_EQ(t.next_expiry(), t0);
  EXPECT_TRUE(t.expire(t0));
  EXPECT_TRUE(t.merge({fb("z", "10.0.0.9", 0)}, t0 + 1s, std::nullopt));  // appears again
}

TEST(DnsBackendTable, NothingExpiresWhileHeld) {
  backend_table t;
  const clock::time_point t0{};
  t.merge({fb("a", "10.0.0.1", 1)}, t0, std::nullopt);
  t.hold(true);
  EXPECT_FALSE(t.next_expiry());
  EXPECT_FALSE(t.expire(t0 + 1h));
  EXPECT_EQ(t.size(), 1u);
  t.hold(false);
  EXPECT_TRUE(t.expire(t0 + 1h));
}

// --- servers and rounds ----------------------------------------------------

lookup_result result(lookup_status s) {
  lookup_result r;
  r.status = s;
  if (s == lookup_status::records) r.backends.push_back(fb("a", "10.0.0.1", 1));
  if (s == lookup_status::timeout || s == lookup_status::error) r.reason = "boom";
  return r;
}

asio::ip::udp::endpoint server(unsigned short port) {
  return {asio::ip::address_v4::loopback(), port};
}

TEST(DnsServers, FailingServersAreAskedLastAndEveryOutcomeIsCounted) {
  server_registry r;
  EXPECT_EQ(r.add(server(1), false), (std::pair<std::size_t, bool>{0, true}));
  EXPECT_EQ(r.add(server(2), false), (std::pair<std::size_t, bool>{1, true}));
  EXPECT_EQ(r.add(server(3), true), (std::pair<std::size_t, bool>{2, true}));
  EXPECT_EQ(r.add(server(2), true), (std::pair<std::size_t, bool>{1, false}));
  EXPECT_EQ(r.ask_order(), (std::vector<std::size_t>{0, 1, 2}));
  r.lookup_started(0);
  r.lookup_finished(0, result(lookup_status::timeout));
  r.lookup_started(0);
  r.lookup_finished(0, result(lookup_status::error));
  r.lookup_started(1);
  r.lookup_finished(1, result(lookup_status::error));
  EXPECT_EQ(r.ask_order(), (std::vector<std::size_t>{2, 1, 0}));
  r.lookup_finished(0, result(lookup_status::no_records));  // answering resets
  EXPECT_EQ(r.ask_order(), (std::vector<std::size_t>{0, 2, 1}));
  const auto s = r.stats(0);
  EXPECT_EQ(s.lookups, 2u);
  EXPECT_EQ(s.timeouts, 1u);
  EXPECT_EQ(s.errors, 1u);
  EXPECT_EQ(s.no_records, 1u);
  EXPECT_EQ(s.last_error, "boom");
  EXPECT_TRUE(r.stats(2).discovered);
}

TEST(DnsRound, AsksAtMostMaxConcurrencyAndTheFirstWithRecordsWins) {
  lookup_round round({0, 1, 2, 3, 4, 5, 6}, 5);
  EXPECT_EQ(round.start(), (std::vector<std::size_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(round.finished(2, result(lookup_status::no_records)), (std::vector<std::size_t>{5}));
  EXPECT_EQ(round.finished(0, result(lookup_status::timeout)), (std::vector<std::size_t>{6}));
  EXPECT_FALSE(round.done());
  EXPECT_TRUE(round.finished(4, result(lookup_status::records)).empty());
  ASSERT_TRUE(round.done());
  EXPECT_EQ(round.outcome(), dns_lookup_outcome::records);
  EXPECT_EQ(round.winner()->backends.size(), 1u);
  // Stragglers are not the round's business any more.
  EXPECT_TRUE(round.finished(1, result(lookup_status::records)).empty());
  EXPECT_TRUE(round.add({9}).empty());
}

TEST(DnsRound, NoRecordsOnlyCountsWhenNobodyHasRecords) {
  {
    lookup_round round({0, 1}, 1);
    EXPECT_EQ(round.start(), (std::vector<std::size_t>{0}));
    EXPECT_EQ(round.finished(0, result(lookup_status::no_records)), (std::vector<std::size_t>{1}));
    round.finished(1, result(lookup_status::records));
    EXPECT_EQ(round.outcome(), dns_lookup_outcome::records);
  }
  {
    lookup_round round({0, 1}, 5);
    round.start();
    round.finished(1, result(lookup_status::error));
    round.finished(0, result(lookup_status::no_records));
    ASSERT_TRUE(round.done());
    EXPECT_EQ(round.outcome(), dns_lookup_outcome::no_records);
  }
  {
    lookup_round round({0, 1}, 5);
    round.start();
    round.finished(1, result(lookup_status::error));
    round.finished(0, result(lookup_status::timeout));
    ASSERT_TRUE(round.done());
    EXPECT_EQ(round.outcome(), dns_lookup_outcome::failed);
  }
  lookup_round empty({}, 5);
  EXPECT_TRUE(empty.start().empty());
  EXPECT_TRUE(empty.done());
  EXPECT_EQ(empty.outcome(), dns_lookup_outcome::failed);
}

TEST(DnsRound, ServersDiscoveredMidRoundJoinIt) {
  lookup_round round({0}, 2);
  EXPECT_EQ(round.start(), (std::vector<std::size_t>{0}));
  EXPECT_EQ(round.add({0, 1, 2}), (std::vector<std::size_t>{1}));
  EXPECT_EQ(round.finished(0, result(lookup_status::no_records)), (std::vector<std::size_t>{2}));
  round.finished(1, result(lookup_status::no_records));
  EXPECT_FALSE(round.done());
  round.finished(2, result(lookup_status::records));
  EXPECT_EQ(round.outcome(), dns_lookup_outcome::records);
}

TEST(DnsSchedule, RetriesSoonerWhenNothingWasFound) {
  EXPECT_EQ(delay_after(dns_lookup_outcome::records, 60s, 10s), 60s);
  EXPECT_EQ(delay_after(dns_lookup_outcome::no_records, 60s, 10s), 10s);
  EXPECT_EQ(delay_after(dns_lookup_outcome::failed, 60s, 10s), 10s);
  // Backends that would expire before the next round are refreshed first...
  EXPECT_EQ(delay_after(dns_lookup_outcome::records, 60s, 10s, 8s), 6s);
  EXPECT_EQ(delay_after(dns_lookup_outcome::records, 60s, 10s, 2s), 1500ms);
  EXPECT_EQ(delay_after(dns_lookup_outcome::records, 5s, 10s, 3600s), 5s);
  EXPECT_EQ(delay_after(dns_lookup_outcome::records, 60s, 10s, 1s), 750ms);
  // (a cache's answers near their end: not sooner than every 250 ms)
  EXPECT_EQ(delay_after(dns_lookup_outcome::records, 60s, 10s, 100ms), 250ms);
  // ...except with TTL 0, which means "seen, then gone".
  EXPECT_EQ(delay_after(dns_lookup_outcome::records, 60s, 10s, 0s), 60s);
  EXPECT_EQ(delay_after(dns_lookup_outcome::no_records, 60s, 10s, 8s), 10s);
}

TEST(DnsServerAddress, ParsesIpAndPort) {
  EXPECT_EQ(parse_dns_server("127.0.0.1:5353"), server(5353));
  EXPECT_EQ(parse_dns_server("127.0.0.1"), server(53));
  EXPECT_EQ(parse_dns_server("[::1]:15353"),
            asio::ip::udp::endpoint(asio::ip::address_v6::loopback(), 15353));
  EXPECT_EQ(parse_dns_server("::1"), asio::ip::udp::endpoint(asio::ip::address_v6::loopback(), 53));
  for (const char* bad : {"", "localhost:53", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:70000",
                          "127.0.0.1:5x", "[::1", "[::1]x", "[::1]:"}) {
    EXPECT_FALSE(parse_dns_server(bad)) << bad;
  }
}

}  // namespace
}  // namespace qorb
