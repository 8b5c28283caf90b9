// SPDX-License-Identifier: BSL-1.0
// The etcd component's pure parts: base64, key ranges, values, URLs,
// replies of the gateway, retry delays and the settings' bounds.
#include "resolvers/etcd_codec.hpp"
#include "resolvers/etcd_http.hpp"

#include <qorb/resolvers/etcd.hpp>
#include <qorb/resolvers/etcd_registration.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>

namespace {

using namespace qorb::detail::etcd;
using namespace std::chrono_literals;

TEST(EtcdCodec, Base64RoundTripsEveryLengthAndByte) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (std::size_t n = 0; n <= all.size(); n += 1) {
    const auto text = all.substr(0, n);
    const auto decoded = base64_decode(base64_encode(text));
    ASSERT_TRUE(decoded) << n;
    EXPECT_EQ(*decoded, text) << n;
  }
  EXPECT_EQ(base64_encode("/services/echo/a"), "L3NlcnZpY2VzL2VjaG8vYQ==");
  EXPECT_EQ(base64_decode("MTI3LjAuMC4xOjc="), "127.0.0.1:7");
  EXPECT_EQ(base64_decode("MTI3LjAuMC4xOjc"), "127.0.0.1:7");  // unpadded
  EXPECT_FALSE(base64_decode("not base64!"));
  EXPECT_FALSE(base64_decode("A"));
}

TEST(EtcdCodec, PrefixEndIncrementsTheLastByteThatCan) {
  EXPECT_EQ(prefix_end("/services/echo/"), "/services/echo0");
  EXPECT_EQ(prefix_end("a\xff"), "b");
  EXPECT_EQ(prefix_end("\xff\xff"), std::string(1, '\0'));
}

TEST(EtcdCodec, ValuesAreAddressesOrSmallJsonObjects) {
  std::string error;
  EXPECT_EQ(qorb::to_string(*parse_value("127.0.0.1:6001", error)), "127.0.0.1:6001");
  EXPECT_EQ(qorb::to_string(*parse_value("[::1]:6001\n", error)), "[::1]:6001");
  EXPECT_EQ(qorb::to_string(*parse_value(R"({"address": "127.0.0.2", "port": 80})", error)),
            "127.0.0.2:80");
  EXPECT_EQ(qorb::to_string(*parse_value(R"({"address": "::1", "port": 81})", error)), "[::1]:81");
  EXPECT_EQ(qorb::to_string(*parse_value(R"({"address": "127.0.0.3:82"})", error)), "127.0.0.3:82");
  for (const char* bad :
       {"", "garbage", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "host.example:80", "{",
        R"({"port": 80})", R"({"address": 5})", R"({"address": "127.0.0.1", "port": 0})",
        R"({"address": "127.0.0.1", "port": 65536})", R"({"address": "127.0.0.1", "port": "80"})",
        R"({"address": "nohost", "port": 80})", "[1, 2]"}) {
    error.clear();
    EXPECT_FALSE(parse_value(bad, error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

TEST(EtcdCodec, RepliesOfTheGateway) {
  const auto range =
      parse_reply(R"({"header":{"revision":"7"},"kvs":[{"key":"L3NlcnZpY2VzL2VjaG8vYQ==",)"
                  R"("mod_revision":"2","value":"MTI3LjAuMC4xOjc="}],"count":"1"})");
  EXPECT_TRUE(range.error.empty()) << range.error;
  EXPECT_EQ(range.revision, 7);
  ASSERT_EQ(range.kvs.size(), 1U);
  EXPECT_EQ(range.kvs[0].key, "/services/echo/a");
  EXPECT_EQ(range.kvs[0].value, "127.0.0.1:7");
  EXPECT_EQ(range.kvs[0].mod_revision, 2);

  const auto watch =
      parse_reply(R"({"result":{"header":{"revision":"9"},"events":[{"type":"DELETE","kv":)"
                  R"({"key":"L3NlcnZpY2VzL2VjaG8vYQ==","mod_revision":"9"}}]}})");
  ASSERT_EQ(watch.events.size(), 1U);
  EXPECT_TRUE(watch.events[0].deleted);
  EXPECT_EQ(watch.events[0].kv.mod_revision, 9);
  EXPECT_TRUE(watch.events[0].kv.value.empty());

  const auto compacted =
      parse_reply(R"({"result":{"header":{},"canceled":true,"compact_revision":"12"}})");
  EXPECT_TRUE(compacted.canceled);
  EXPECT_EQ(compacted.compact_revision, 12);

  const auto lease = parse_reply(R"({"result":{"header":{},"ID":"694d77aa9e38260f","TTL":"5"}})");
  EXPECT_EQ(lease.lease_id, "694d77aa9e38260f");
  EXPECT_EQ(lease.ttl, 5);
  EXPECT_EQ(parse_reply(R"({"result":{"header":{},"ID":"1"}})").ttl, 0);  // lease gone

  EXPECT_EQ(parse_reply(R"({"error":"bad","message":"bad thing","code":3})").error,
            "etcd: bad thing");
  EXPECT_FALSE(parse_reply("not json").error.empty());
  EXPECT_FALSE(parse_reply(R"({"kvs":[{"key":"!!!"}]})").error.empty());
}

TEST(EtcdCodec, RevisionsAreNeverNegativeNorWrapped) {
  const auto error_of_reply = [](const std::string& body) { return parse_reply(body).error; };
  EXPECT_NE(error_of_reply(R"({"header":{"revision":"-1"}})").find("header.revision"),
            std::string::npos);
  EXPECT_NE(error_of_reply(R"({"header":{"revision":-1}})").find("header.revision"),
            std::string::npos);
  EXPECT_NE(
      error_of_reply(R"({"header":{"revision":"-9223372036854775809"}})").find("header.revision"),
      std::string::npos);
  EXPECT_NE(error_of_reply(R"({"header":{"revision":"12x"}})").find("header.revision"),
            std::string::npos);
  EXPECT_NE(error_of_reply(R"({"kvs":[{"key":"YQ==","value":"Yg==","mod_revision":"-2"}]})")
                .find("kv.mod_revision"),
            std::string::npos);
  EXPECT_NE(
      error_of_reply(
          R"({"result":{"events":[{"kv":{"key":"YQ==","mod_revision":"-9223372036854775808"}}]}})")
          .find("kv.mod_revision"),
      std::string::npos);
  EXPECT_NE(error_of_reply(R"({"result":{"canceled":true,"compact_revision":"-3"}})")
                .find("compact_revision"),
            std::string::npos);
  // Beyond int64: saturated, never wrapped into a negative number.
  EXPECT_EQ(parse_reply(R"({"header":{"revision":"9223372036854775808"}})").revision, INT64_MAX);
  EXPECT_EQ(parse_reply(R"({"header":{"revision":18446744073709551615}})").revision, INT64_MAX);
  EXPECT_EQ(parse_reply(R"({"TTL":"99999999999999999999"})").ttl, INT64_MAX);
  EXPECT_EQ(parse_reply(R"({"header":{"revision":"9223372036854775807"}})").revision, INT64_MAX);
  EXPECT_EQ(next_revision(INT64_MAX), INT64_MAX);
  EXPECT_EQ(next_revision(INT64_MAX - 1), INT64_MAX);
  EXPECT_EQ(next_revision(0), 1);
  EXPECT_EQ(next_revision(41), 42);
}

TEST(EtcdCodec, RequestsEncodeKeysAndRanges) {
  EXPECT_EQ(range_request("/a/"), R"({"key":"L2Ev","range_end":"L2Ew"})");
  EXPECT_EQ(watch_request("/a/", 5),
            R"({"create_request":{"key":"L2Ev","range_end":"L2Ew","start_revision":"5"}})");
  EXPECT_EQ(put_request("k", "v", "42"), R"({"key":"aw==","value":"dg==","lease":"42"})");
}

TEST(EtcdUrl, ListsOfClientUrlsWithAnOptionalPrefix) {
  std::string error;
  const auto one = qorb::parse_etcd_url("http://127.0.0.1:2379/services/echo/", error);
  ASSERT_TRUE(one) << error;
  ASSERT_EQ(one->endpoints.size(), 1U);
  EXPECT_EQ(qorb::to_string(one->endpoints[0]), "127.0.0.1:2379");
  EXPECT_EQ(one->prefix, "/services/echo/");

  const auto many = qorb::parse_etcd_url("http://localhost:1,http://[::1]:2", error);
  ASSERT_TRUE(many) << error;
  ASSERT_EQ(many->endpoints.size(), 2U);
  EXPECT_EQ(qorb::to_string(many->endpoints[0]), "127.0.0.1:1");
  EXPECT_EQ(qorb::to_string(many->endpoints[1]), "[::1]:2");
  EXPECT_TRUE(many->prefix.empty());

  for (const char* bad :
       {"", "127.0.0.1:2379", "https://127.0.0.1:2379", "http://etcd:2379", "http://127.0.0.1",
        "http://127.0.0.1:0", "http://127.0.0.1:1/a/,http://127.0.0.1:2/b/"}) {
    error.clear();
    EXPECT_FALSE(qorb::parse_etcd_url(bad, error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

TEST(EtcdRetry, EachMemberOnceThenDoublingWaits) {
  EXPECT_EQ(retry_delay(1, 3, 100ms, 1s), 0ms);  // the next member at once
  EXPECT_EQ(retry_delay(2, 3, 100ms, 1s), 0ms);
  EXPECT_EQ(retry_delay(3, 3, 100ms, 1s), 100ms);  // all three failed
  EXPECT_EQ(retry_delay(6, 3, 100ms, 1s), 200ms);
  EXPECT_EQ(retry_delay(9, 3, 100ms, 1s), 400ms);
  EXPECT_EQ(retry_delay(300, 3, 100ms, 1s), 1s);
  EXPECT_EQ(retry_delay(1, 1, 100ms, 1s), 100ms);
}

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(EtcdConfig, OutOfBoundsSettingsAreRefusedByName) {
  const qorb::asio::ip::tcp::endpoint member(qorb::asio::ip::make_address("127.0.0.1"), 2379);
  qorb::etcd_resolver_config r;
  r.prefix = "/p/";
  EXPECT_NE(error_of([&] { qorb::etcd_resolver x(r); }).find("endpoints"), std::string::npos);
  r.endpoints = {member};
  r.prefix.clear();
  EXPECT_NE(error_of([&] { qorb::etcd_resolver x(r); }).find("prefix"), std::string::npos);
  r.prefix = "/p/";
  r.request_timeout = 0ms;
  EXPECT_NE(error_of([&] { qorb::etcd_resolver x(r); }).find("request_timeout"), std::string::npos);
  r.request_timeout = 1s;
  r.retry_min = 2s;
  r.retry_max = 1s;
  EXPECT_NE(error_of([&] { qorb::etcd_resolver x(r); }).find("retry_min"), std::string::npos);
  r.retry_min = 1ms;
  EXPECT_EQ(error_of([&] { qorb::etcd_resolver x(r); }), "");

  qorb::etcd_registration_config g;
  g.endpoints = {member};
  g.key = "/p/a";
  g.value = "127.0.0.1:1";
  g.ttl = 0s;
  EXPECT_NE(error_of([&] { qorb::etcd_registration x(g); }).find("ttl"), std::string::npos);
  g.ttl = 10s;
  g.value.clear();
  EXPECT_NE(error_of([&] { qorb::etcd_registration x(g); }).find("value"), std::string::npos);
  g.value = "127.0.0.1:1";
  EXPECT_EQ(error_of([&] { qorb::etcd_registration x(g); }), "");
}

TEST(EtcdRegistration, StopBeforeStartCallsDoneAtOnce) {
  qorb::etcd_registration_config g;
  g.endpoints = {{qorb::asio::ip::make_address("127.0.0.1"), 2379}};
  g.key = "/p/a";
  g.value = "127.0.0.1:1";
  qorb::etcd_registration registration(g);
  int calls = 0;
  bool revoked = true;
  registration.stop([&](bool r) {
    ++calls;
    revoked = r;
  });
  registration.stop([&](bool) { ++calls; });
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(revoked);
}

}  // namespace
