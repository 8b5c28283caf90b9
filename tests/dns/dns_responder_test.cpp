// SPDX-License-Identifier: BSL-1.0
// A misbehaving DNS server (malformed, truncated, oversized answers, wrong
// ids): the resolver survives, counts the failures, and uses other servers.
#include "dns_wire.hpp"
#include "knot_server.hpp"
#include "resolver_harness.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace qorb::test {
namespace {

enum class misbehaviour {
  malformed_records,  // counts promise records that are not there
  compression_loop,   // an answer whose name points at itself
  truncated,          // TC set; the TCP retry finds nobody listening
  servfail,
  oversized,  // a 30000-byte datagram full of records
  wrong_id,   // answers to a query nobody asked
  too_short,  // fewer bytes than a DNS header
};

std::string name_of(misbehaviour m) {
  switch (m) {
    case misbehaviour::malformed_records:
      return "malformed_records";
    case misbehaviour::compression_loop:
      return "compression_loop";
    case misbehaviour::truncated:
      return "truncated";
    case misbehaviour::servfail:
      return "servfail";
    case misbehaviour::oversized:
      return "oversized";
    case misbehaviour::wrong_id:
      return "wrong_id";
    case misbehaviour::too_short:
      return "too_short";
  }
  return "?";
}

// Answers every query on 127.0.0.1 from its own thread, badly.
class bad_dns_server {
 public:
  explicit bad_dns_server(misbehaviour how) : how_(how) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("bad_dns_server: bind");
    }
    port_ = ntohs(addr.sin_port);
    timeval tv{0, 20000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    thread_ = std::thread([this] { serve(); });
  }
  ~bad_dns_server() {
    done_ = true;
    thread_.join();
    ::close(fd_);
  }
  bad_dns_server(const bad_dns_server&) = delete;
  bad_dns_server& operator=(const bad_dns_server&) = delete;

  asio::ip::udp::endpoint endpoint() const { return {asio::ip::address_v4::loopback(), port_}; }
  int queries() const { return queries_; }

 private:
  void serve() {
    while (!done_) {
      std::uint8_t buf[1500];
      sockaddr_in from{};
      socklen_t from_len = sizeof from;
      const auto n =
          ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
      if (n <= 0) continue;
      const auto q = dns::read_query(buf, static_cast<std::size_t>(n));
      if (!q.ok) continue;
      ++queries_;
      const auto answer = respond(q);
      ::sendto(fd_, answer.data(), answer.size(), 0, reinterpret_cast<sockaddr*>(&from), from_len);
    }
  }

  dns::bytes respond(const dns::query_info& q) const {
    dns::response_spec s;
    s.id = q.id;
    s.qname = q.qname;
    s.qtype = q.qtype;
    switch (how_) {
      case misbehaviour::malformed_records: {
        s.answers = {dns::srv_rr(q.qname, 60, 80, "b1.test.com")};
        auto b = dns::build_response(s);
        b[7] = 3;  // three answers promised, one there (and cut short)
        b.resize(b.size() - 4);
        b.resize(b.size() + 30, 0xFF);
        return b;
      }
      case misbehaviour::compression_loop: {
        auto b = dns::build_response(s);
        b[7] = 1;
        const auto self = static_cast<std::uint8_t>(b.size());
        b.insert(b.end(), {0xC0, self, 0, 33, 0, 1, 0, 0, 0, 60, 0, 7, 0, 0, 0, 0, 0, 80, 0});
        return b;
      }
      case misbehaviour::truncated:
        s.truncated = true;
        return dns::build_response(s);
      case misbehaviour::servfail:
        s.rcode = 2;
        return dns::build_response(s);
      case misbehaviour::oversized: {
        for (int i = 0; s.answers.size() < 700; ++i) {
          s.answers.push_back(dns::srv_rr(q.qname, 60, 80, "t" + std::to_string(i) + ".test.com"));
        }
        auto b = dns::build_response(s);
        b.resize(30000, 0);
        return b;
      }
      case misbehaviour::wrong_id:
        s.id = static_cast<std::uint16_t>(q.id + 1);
        s.answers = {dns::srv_rr(q.qname, 60, 80, "b1.test.com")};
        return dns::build_response(s);
      case misbehaviour::too_short:
        return {static_cast<std::uint8_t>(q.id >> 8),
                static_cast<std::uint8_t>(q.id),
                0x81,
                0x80,
                0,
                1,
                0};
    }
    return {};
  }

  misbehaviour how_;
  int fd_ = -1;
  unsigned short port_ = 0;
  std::atomic<bool> done_{false};
  std::atomic<int> queries_{0};
  std::thread thread_;
};

dns_resolver_config config_for(std::vector<asio::ip::udp::endpoint> servers) {
  dns_resolver_config c;
  c.service = "_echo._tcp.test.com";
  c.servers = std::move(servers);
  c.query_interval = 200ms;
  c.query_retry_if_no_records_found = 50ms;
  c.query_timeout = 200ms;
  c.logger = nullptr;
  return c;
}

class DnsBadServer : public ::testing::TestWithParam<misbehaviour> {};

TEST_P(DnsBadServer, EveryBadAnswerCountsAsAFailureOfThatServer) {
  bad_dns_server bad(GetParam());
  resolver_harness h(config_for({bad.endpoint()}));
  h.start();
  ASSERT_TRUE(wait_until([&] { return h.count(dns_lookup_outcome::failed) >= 3; }, 10s));
  EXPECT_GE(bad.queries(), 3);
  const auto s = h.server(bad.endpoint());
  EXPECT_GE(s.errors + s.timeouts, 3u);
  EXPECT_EQ(s.records + s.no_records, 0u);
  EXPECT_FALSE(s.last_error.empty());
  const bool silent_for_cares =
      GetParam() == misbehaviour::wrong_id || GetParam() == misbehaviour::too_short;
  // c-ares drops answers it cannot match to a query: they look like silence.
  EXPECT_EQ(s.timeouts > 0, silent_for_cares) << s.last_error;
  EXPECT_TRUE(h.names().empty());
  EXPECT_TRUE(h.stop());
}

TEST_P(DnsBadServer, AnotherServerStillProvidesTheBackends) {
  bad_dns_server bad(GetParam());
  knot_server knot("test.com", "_echo._tcp 60 IN SRV 0 0 8080 b1\nb1 60 IN A 127.0.0.2\n");
  auto c = config_for({bad.endpoint(), knot.endpoint()});
  c.max_dns_concurrency = 1;
  resolver_harness h(c);
  h.start();
  ASSERT_TRUE(h.wait_names({"b1.test.com@127.0.0.2:8080"}));
  EXPECT_GE(bad.queries(), 1);
  const auto s = h.server(bad.endpoint());
  EXPECT_EQ(s.errors + s.timeouts, 1u);
}

INSTANTIATE_TEST_SUITE_P(Misbehaviours, DnsBadServer,
                         ::testing::Values(misbehaviour::malformed_records,
                                           misbehaviour::compression_loop, misbehaviour::truncated,
                                           misbehaviour::servfail, misbehaviour::oversized,
                                           misbehaviour::wrong_id, misbehaviour::too_short),
                         [](const auto& test_info) { return name_of(test_info.param); });

}  // namespace
}  // namespace qorb::test
