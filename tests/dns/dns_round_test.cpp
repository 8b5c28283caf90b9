// SPDX-License-Identifier: BSL-1.0
// The end of a DNS round, decided without I/O on a manual clock (plain time
// points): which backends are added, kept or removed, how TTLs bound them,
// when the next round comes, and what is logged as a change.
#include "resolvers/dns_state.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <set>

namespace qorb {
namespace {

using namespace std::chrono_literals;
using namespace detail::dns;

const clock::time_point t0{};

found_backend answer_backend(const char* target, const char* ip, std::uint32_t ttl) {
  return {target, asio::ip::make_address(ip), 80, ttl};
}

std::optional<lookup_result> records(std::vector<found_backend> backends) {
  lookup_result r;
  r.status = lookup_status::records;
  r.backends = std::move(backends);
  return r;
}

std::set<std::string> names(const backend_table& t) {
  std::set<std::string> out;
  for (const auto& [name, b] : t.backends()) out.insert(name);
  return out;
}

dns_resolver_config settings() {
  dns_resolver_config c;
  c.service = "_echo._tcp.test.com";
  c.query_interval = 60s;
  c.query_retry_if_no_records_found = 10s;
  return c;
}

TEST(DnsRoundEnd, AnAnswerWithTtlTKeepsItsBackendUntilT) {
  backend_table t;
  const auto d = end_round(t, dns_lookup_outcome::records,
                           records({answer_backend("a", "10.0.0.1", 30)}), settings(), t0);
  EXPECT_TRUE(d.changed);
  EXPECT_EQ(names(t), std::set<std::string>{"a@10.0.0.1:80"});
  EXPECT_EQ(t.next_expiry(), t0 + 30s);
  EXPECT_FALSE(t.expire(t0 + 30s - 1ms));
  EXPECT_TRUE(t.expire(t0 + 30s));
}

TEST(DnsRoundEnd, ABackendMissingFromOneRoundStaysWithinItsTtl) {
  backend_table t;
  const auto both =
      records({answer_backend("a", "10.0.0.1", 10), answer_backend("b", "10.0.0.2", 10)});
  EXPECT_TRUE(end_round(t, dns_lookup_outcome::records, both, settings(), t0).changed);
  // b is not in the next answer: it is kept until its TTL runs out.
  const auto only_a = records({answer_backend("a", "10.0.0.1", 10)});
  EXPECT_FALSE(end_round(t, dns_lookup_outcome::records, only_a, settings(), t0 + 5s).changed);
  EXPECT_EQ(names(t), (std::set<std::string>{"a@10.0.0.1:80", "b@10.0.0.2:80"}));
  EXPECT_EQ(t.next_expiry(), t0 + 10s);
  // Then b goes; a, refreshed at t0 + 5s, stays until t0 + 15s.
  EXPECT_TRUE(t.expire(t0 + 10s));
  EXPECT_EQ(names(t), std::set<std::string>{"a@10.0.0.1:80"});
  EXPECT_EQ(t.next_expiry(), t0 + 15s);
}

TEST(DnsRoundEnd, AFailedRoundKeepsTheTableUntilARoundGetsAnAnswer) {
  backend_table t;
  end_round(t, dns_lookup_outcome::records, records({answer_backend("a", "10.0.0.1", 1)}),
            settings(), t0);
  const auto failed = end_round(t, dns_lookup_outcome::failed, std::nullopt, settings(), t0 + 5s);
  EXPECT_FALSE(failed.changed);
  EXPECT_EQ(failed.next_round, 10s);  // query_retry_if_no_records_found
  EXPECT_TRUE(t.held());
  EXPECT_FALSE(t.next_expiry());
  EXPECT_FALSE(t.expire(t0 + 1h));
  EXPECT_EQ(t.size(), 1u);
  // A server answering "no records" ends the hold: the expired backend goes.
  const auto none = end_round(t, dns_lookup_outcome::no_records, std::nullopt, settings(), t0 + 2h);
  EXPECT_TRUE(none.changed);
  EXPECT_FALSE(t.held());
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(none.next_round, 10s);
}

TEST(DnsRoundEnd, NoRecordsRemovesOnlyTheBackendsThatAreDue) {
  backend_table t;
  end_round(t, dns_lookup_outcome::records,
            records({answer_backend("a", "10.0.0.1", 10), answer_backend("b", "10.0.0.2", 20)}),
            settings(), t0);
  EXPECT_FALSE(
      end_round(t, dns_lookup_outcome::no_records, std::nullopt, settings(), t0 + 9s).changed);
  EXPECT_EQ(t.size(), 2u);
  EXPECT_TRUE(
      end_round(t, dns_lookup_outcome::no_records, std::nullopt, settings(), t0 + 10s).changed);
  EXPECT_EQ(names(t), std::set<std::string>{"b@10.0.0.2:80"});
}

TEST(DnsRoundEnd, TheNextRoundComesBeforeTheShortestTtlRunsOut) {
  backend_table t;
  const auto d =
      end_round(t, dns_lookup_outcome::records,
                records({answer_backend("a", "10.0.0.1", 100), answer_backend("b", "10.0.0.2", 8)}),
                settings(), t0);
  EXPECT_EQ(d.next_round, 6s);  // 3/4 of b's 8 s
  // A hardcoded TTL replaces the answer's, for the expiry and the schedule.
  auto c = settings();
  c.hardcoded_ttl = 30s;
  backend_table h;
  const auto hd = end_round(h, dns_lookup_outcome::records,
                            records({answer_backend("a", "10.0.0.1", 1)}), c, t0);
  EXPECT_EQ(hd.next_round, 22500ms);
  EXPECT_EQ(h.next_expiry(), t0 + 30s);
}

TEST(DnsRoundEnd, TtlZeroAndHugeTtlsAreBounded) {
  // TTL 0: published, due at once, and the schedule stays at query_interval.
  backend_table z;
  const auto zd = end_round(z, dns_lookup_outcome::records,
                            records({answer_backend("z", "10.0.0.9", 0)}), settings(), t0);
  EXPECT_TRUE(zd.changed);
  EXPECT_EQ(zd.next_round, 60s);
  EXPECT_EQ(z.next_expiry(), t0);
  EXPECT_TRUE(z.expire(t0));

  // The largest TTL DNS allows: at most query_interval until the next round.
  backend_table big;
  const auto bd = end_round(big, dns_lookup_outcome::records,
                            records({answer_backend("b", "10.0.0.2", 0x7FFFFFFF)}), settings(), t0);
  EXPECT_EQ(bd.next_round, 60s);
  EXPECT_EQ(big.next_expiry(), t0 + std::chrono::seconds(0x7FFFFFFF));
  // Near the end of the clock it saturates to never instead of wrapping.
  backend_table late;
  end_round(late, dns_lookup_outcome::records,
            records({answer_backend("b", "10.0.0.2", 0x7FFFFFFF)}), settings(),
            clock::time_point::max() - 1s);
  EXPECT_FALSE(late.next_expiry());
  EXPECT_EQ(late.size(), 1u);

  // hardcoded_ttl = milliseconds::max(): never expires, asked every query_interval.
  auto c = settings();
  c.hardcoded_ttl = std::chrono::milliseconds::max();
  backend_table forever;
  const auto fd = end_round(forever, dns_lookup_outcome::records,
                            records({answer_backend("a", "10.0.0.1", 5)}), c, t0);
  EXPECT_EQ(fd.next_round, 60s);
  EXPECT_FALSE(forever.next_expiry());
  EXPECT_FALSE(forever.expire(clock::time_point::max() - 1s));
}

TEST(DnsRoundEnd, TheLimitsOfTheSettingsAreBounded) {
  auto c = settings();
  EXPECT_EQ(limits_of(c).max_ttl, 86400u);  // the default max_ttl: a day
  EXPECT_EQ(limits_of(c).max_backends, 4096u);
  c.max_ttl = std::chrono::seconds::max();
  EXPECT_EQ(limits_of(c).max_ttl, 0x7FFFFFFFu);  // RFC 2181
  c.max_ttl = -1s;
  EXPECT_EQ(limits_of(c).max_ttl, 0u);
  c.max_backends_per_answer = 0;
  EXPECT_EQ(limits_of(c).max_backends, 1u);
}

backend_map map_of(std::initializer_list<const char*> names) {
  backend_map out;
  for (const char* n : names) out.emplace(n, backend{n, asio::ip::tcp::endpoint()});
  return out;
}

TEST(DnsRoundEnd, AChangeIsLoggedAsTheBackendsAddedThenThoseRemoved) {
  EXPECT_EQ(describe_change(map_of({"a", "b"}), map_of({"b", "c", "d"})), " +c +d -a");
  EXPECT_EQ(describe_change(map_of({}), map_of({"a"})), " +a");
  EXPECT_EQ(describe_change(map_of({"a"}), map_of({})), " -a");
  EXPECT_EQ(describe_change(map_of({"a"}), map_of({"a"})), "");
}

}  // namespace
}  // namespace qorb
