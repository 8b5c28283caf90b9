// SPDX-License-Identifier: BSL-1.0
// Hostile and absurd DNS answers, without I/O: the N x N answer is capped
// and costs work in proportion to the cap, port 0 is skipped, absurd TTLs
// are clamped, long CNAME and compression-pointer chains are cut, and
// "never expire" (hardcoded_ttl = milliseconds::max()) does not overflow.
#include "dns_wire.hpp"
#include "resolvers/dns_lookup.hpp"
#include "resolvers/dns_message.hpp"
#include "resolvers/dns_state.hpp"
#include "tcp_dns_server.hpp"

#include <gtest/gtest.h>

#include <set>

namespace qorb {
namespace {

using namespace std::chrono_literals;
using namespace detail::dns;
namespace w = test::dns;

const std::string service = "_echo._tcp.test.com";

w::query_info srv_query() { return {0x1234, service, 33, true}; }

w::bytes srv_answer(std::vector<w::rr> answers, std::vector<w::rr> additional = {}) {
  w::response_spec s;
  s.answers = std::move(answers);
  s.additional = std::move(additional);
  return w::build_response(s);
}

std::set<std::string> names_of(const std::vector<found_backend>& backends) {
  std::set<std::string> out;
  for (const auto& b : backends) out.insert(backend_name(b.target, b.address, b.port));
  return out;
}

TEST(DnsLimits, TheNByNAnswerIsCappedAtMaxBackendsKeepingTheFirstInAnswerOrder) {
  const auto answer = w::n_by_n_answer(srv_query(), 800);  // 640,000 pairs, ~60 KB
  ASSERT_LE(answer.size(), 65535u);
  server_lookup l(service, address_family::v4, std::nullopt);
  EXPECT_TRUE(l.on_answer(l.first_question(), answer).empty());
  ASSERT_TRUE(l.done());
  const auto& r = l.result();
  EXPECT_EQ(r.status, lookup_status::records);
  EXPECT_TRUE(r.capped);
  ASSERT_EQ(r.backends.size(), lookup_limits{}.max_backends);
  EXPECT_EQ(lookup_limits{}.max_backends, 4096u);  // the documented default
  EXPECT_EQ(names_of(r.backends).size(), r.backends.size());
  // The first address with every port, then the next address...
  EXPECT_EQ(r.backends.front(),
            (found_backend{"t.test.com", asio::ip::make_address("127.1.0.1"), 1, 60}));
  EXPECT_EQ(r.backends[799].port, 800);
  EXPECT_EQ(r.backends[800].address, asio::ip::make_address("127.1.0.2"));
  EXPECT_EQ(r.backends.back().address, asio::ip::make_address("127.1.0.6"));  // 4096 = 5*800+96
  EXPECT_EQ(r.backends.back().port, 96);
}

TEST(DnsLimits, TheCapIsTheConfiguredOneAndAnAnswerUnderItIsWhole) {
  {
    server_lookup l(service, address_family::v4, std::nullopt, {.max_backends = 10});
    l.on_answer(l.first_question(), w::n_by_n_answer(srv_query(), 800));
    ASSERT_TRUE(l.done());
    EXPECT_TRUE(l.result().capped);
    EXPECT_EQ(l.result().backends.size(), 10u);
  }
  server_lookup l(service, address_family::v4, std::nullopt);
  l.on_answer(l.first_question(), w::n_by_n_answer(srv_query(), 30));
  ASSERT_TRUE(l.done());
  EXPECT_FALSE(l.result().capped);
  EXPECT_EQ(l.result().backends.size(), 900u);
  EXPECT_EQ(names_of(l.result().backends).size(), 900u);
}

TEST(DnsLimits, DuplicateRecordsAreOneBackendAtTheSmallerTtl) {
  w::response_spec s;
  for (int i = 0; i < 500; ++i) {
    s.answers.push_back(w::srv_rr(service, 100 + static_cast<std::uint32_t>(i), 80, "b.test.com"));
    s.additional.push_back(w::a_rr("b.test.com", 50 + static_cast<std::uint32_t>(i), "10.0.0.1"));
  }
  server_lookup l(service, address_family::v4, std::nullopt);
  l.on_answer(l.first_question(), w::build_response(s));
  ASSERT_TRUE(l.done());
  EXPECT_EQ(l.result().backends,
            (std::vector<found_backend>{
                {"b.test.com", asio::ip::make_address("10.0.0.1"), 80, 50}}));
}

TEST(DnsLimits, SrvPortZeroIsNotABackendAndIsCounted) {
  server_lookup l(service, address_family::v4, std::nullopt);
  l.on_answer(l.first_question(),
              srv_answer({w::srv_rr(service, 60, 0, "b1.test.com"),
                                             w::srv_rr(service, 60, 0, "b2.test.com"),
                                             w::srv_rr(service, 60, 8080, "b1.test.com")},
                                 {w::a_rr("b1.test.com", 60, "10.0.0.1"),
                                                w::a_rr("b2.test.com", 60, "10.0.0.2")}));
  ASSERT_TRUE(l.done());
  EXPECT_EQ(l.result().port_zero, 2u);
  EXPECT_EQ(l.result().backends,
            (std::vector<found_backend>{
                {"b1.test.com", asio::ip::make_address("10.0.0.1"), 8080, 60}}));

  // Only port 0: the name has SRV records, none usable; no fallback either.
  server_lookup only_zero(service, address_family::v4, std::uint16_t{9000});
  EXPECT_TRUE(only_zero
                  .on_answer(only_zero.first_question(),
                             srv_answer({w::srv_rr(service, 60, 0, "b1.test.com")}))
                  .empty());
  ASSERT_TRUE(only_zero.done());
  EXPECT_EQ(only_zero.result().status, lookup_status::no_records);
  EXPECT_EQ(only_zero.result().port_zero, 1u);
}

TEST(DnsLimits, AbsurdTtlsAreClampedToMaxTtl) {
  const auto answer = srv_answer(
      {w::srv_rr(service, 0x7FFFFFFF, 80, "b1.test.com"), w::srv_rr(service, 30, 81, "b1.test.com")},
       {w::a_rr("b1.test.com", 0x7FFFFFFF, "10.0.0.1")});
  server_lookup l(service, address_family::v4, std::nullopt);
  l.on_answer(l.first_question(), answer);
  ASSERT_TRUE(l.done());
  EXPECT_EQ(l.result().backends,
            (std::vector<found_backend>{
                {"b1.test.com", asio::ip::make_address("10.0.0.1"), 80, 86400},
                {"b1.test.com", asio::ip::make_address("10.0.0.1"), 81, 30}}));
  EXPECT_EQ(l.result().ttls_clamped, 1u);

  server_lookup small(service, address_family::v4, std::nullopt, {.max_ttl = 10});
  small.on_answer(small.first_question(), answer);
  ASSERT_TRUE(small.done());
  EXPECT_EQ(small.result().backends.front().ttl, 10u);
  EXPECT_EQ(small.result().backends.back().ttl, 10u);
  EXPECT_EQ(small.result().ttls_clamped, 2u);
}

TEST(DnsLimits, CnameChainsAreFollowedOnlySoFar) {
  // b1 -> c1 -> c2 -> ... -> c2000, which has the address: too far to
  // follow from the Additional section, so the lookup asks for b1's A.
  w::response_spec s;
  s.answers = {w::srv_rr(service, 60, 80, "b1.test.com")};
  std::string from = "b1.test.com";
  for (int i = 1; i <= 2000; ++i) {
    const std::string to = std::string("c").append(std::to_string(i)).append(".test.com");
    s.additional.push_back(w::cname_rr(from, 60, to));
    from = to;
  }
  s.additional.push_back(w::a_rr(from, 60, "10.0.0.1"));
  // ...and a short chain is followed.
  s.answers.push_back(w::srv_rr(service, 60, 81, "b2.test.com"));
  s.additional.push_back(w::cname_rr("b2.test.com", 60, "d1.test.com"));
  s.additional.push_back(w::cname_rr("d1.test.com", 60, "d2.test.com"));
  s.additional.push_back(w::a_rr("d2.test.com", 60, "10.0.0.2"));
  server_lookup l(service, address_family::v4, std::nullopt);
  const auto next = l.on_answer(l.first_question(), w::build_response(s));
  EXPECT_EQ(next, (std::vector<question>{{"b1.test.com", rr_type::a}}));
  w::response_spec none;
  none.qname = "b1.test.com";
  none.qtype = 1;
  l.on_answer(next[0], w::build_response(none));
  ASSERT_TRUE(l.done());
  EXPECT_EQ(l.result().backends,
            (std::vector<found_backend>{
                {"b2.test.com", asio::ip::make_address("10.0.0.2"), 81, 60}}));
}

TEST(DnsLimits, ALongChainOfCompressionPointersIsRejected) {
  // A TXT record whose data is a root name and 200 pointers, each to the
  // one before; then an A record named by the last pointer.
  w::response_spec s;
  auto b = w::build_response(s);
  b[7] = 2;  // two answers
  for (const std::uint8_t x : {0, 0, 16, 0, 1, 0, 0, 0, 60}) b.push_back(x);  // ".", TXT, IN, 60
  w::put16(b, 1 + 2 * 200);
  std::size_t previous = b.size();
  b.push_back(0);
  for (int i = 0; i < 200; ++i) {
    const std::size_t here = b.size();
    b.push_back(static_cast<std::uint8_t>(0xC0 | (previous >> 8)));
    b.push_back(static_cast<std::uint8_t>(previous & 0xFF));
    previous = here;
  }
  b.push_back(static_cast<std::uint8_t>(0xC0 | (previous >> 8)));
  b.push_back(static_cast<std::uint8_t>(previous & 0xFF));
  for (const std::uint8_t x : {0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1}) b.push_back(x);
  std::string error;
  EXPECT_FALSE(parse_response(b, error).has_value());
  EXPECT_EQ(error, "too many compression pointers in one name");
}

TEST(DnsLimits, HardcodedTtlOfMillisecondsMaxMeansNeverExpire) {
  backend_table t;
  const clock::time_point t0 = clock::now();
  EXPECT_TRUE(t.merge({{"a", asio::ip::make_address("10.0.0.1"), 80, 1}}, t0,
                      std::chrono::milliseconds::max()));
  ASSERT_EQ(t.info().size(), 1u);
  EXPECT_EQ(t.info().front().expires, clock::time_point::max());
  EXPECT_FALSE(t.next_expiry().has_value());  // nothing to wait for
  EXPECT_FALSE(t.expire(t0 + std::chrono::hours(24 * 365 * 100)));
  EXPECT_EQ(t.size(), 1u);
  // Near the end of time, any lifetime saturates.
  EXPECT_EQ(expiry_after(clock::time_point::max() - 1s, 2s), clock::time_point::max());
  EXPECT_EQ(expiry_after(t0, 1500ms), t0 + 1500ms);
  EXPECT_EQ(expiry_after(t0, -5ms), t0);
}

TEST(DnsLimits, TheNextRoundOfAnEndlessTtlIsTheQueryInterval) {
  using std::chrono::milliseconds;
  EXPECT_EQ(delay_after(dns_lookup_outcome::records, 60s, 10s, milliseconds::max()), 60s);
  EXPECT_EQ(delay_after(dns_lookup_outcome::records, milliseconds::max(), 10s, milliseconds::max()),
            milliseconds::max() - milliseconds::max() / 4);
  EXPECT_EQ(delay_after(dns_lookup_outcome::records, 60s, 10s, 8s), 6s);
}

}  // namespace
}  // namespace qorb
