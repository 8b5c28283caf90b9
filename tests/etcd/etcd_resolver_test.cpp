// SPDX-License-Identifier: BSL-1.0
// The etcd resolver against a real single-member etcd on loopback: reads,
// watch events, bad values, compaction, an etcd that comes up late, one
// that goes away.
#include "etcd_harness.hpp"

#include <gtest/gtest.h>

namespace {

using namespace qorb::test;
using names = std::set<std::string>;

const std::string prefix = "/services/echo/";

TEST(EtcdResolver, ReadsThePrefixThenFollowsPutsDeletesAndChanges) {
  QORB_REQUIRE_ETCD();
  etcd_cluster etcd;
  etcd.put(prefix + "a", "127.0.0.1:6001");
  etcd.put(prefix + "b", "[::1]:6002");
  etcd.put("/services/echoes/x", "127.0.0.1:1");  // outside the prefix
  etcd.put("/services/echo", "127.0.0.1:2");      // the prefix without its slash
  etcd_harness h(etcd_config(etcd.clients(), prefix));
  h.start();
  ASSERT_TRUE(h.wait_for({"a@127.0.0.1:6001", "b@[::1]:6002"})) << etcd.logs();
  const auto first = h.sets().back();
  EXPECT_EQ(qorb::to_string(first.at("b@[::1]:6002").address), "[::1]:6002");

  etcd.put(prefix + "c", R"({"address": "127.0.0.3", "port": 6003})");
  ASSERT_TRUE(h.wait_for({"a@127.0.0.1:6001", "b@[::1]:6002", "c@127.0.0.3:6003"}));
  etcd.del(prefix + "a");
  ASSERT_TRUE(h.wait_for({"b@[::1]:6002", "c@127.0.0.3:6003"}));
  etcd.put(prefix + "b", "127.0.0.2:7002");  // moved: one removed, one added
  ASSERT_TRUE(h.wait_for({"b@127.0.0.2:7002", "c@127.0.0.3:6003"}));
  etcd.put("/services/echoes/y", "127.0.0.1:3");  // not ours: nothing published
  etcd.put(prefix + "c", R"({"address": "127.0.0.3", "port": 6003})");  // same value again

  // Every event after the read was applied once, and the set was published
  // only when it changed: initial, +c, -a, b moved.
  etcd.put(prefix + "d", "127.0.0.4:1");
  ASSERT_TRUE(h.wait_for({"b@127.0.0.2:7002", "c@127.0.0.3:6003", "d@127.0.0.4:1"}));
  const auto s = h.stats();
  EXPECT_EQ(s.reads, 1U);
  EXPECT_EQ(s.watches, 1U);
  EXPECT_EQ(s.events, 5U);  // +c, -a, b, c again, +d
  EXPECT_EQ(s.revision, etcd.revision());
  EXPECT_EQ(h.publications(), 5U);
  EXPECT_TRUE(s.watching);
  EXPECT_TRUE(h.stop());
}

TEST(EtcdResolver, BadValuesAreSkippedCountedAndNeverFatal) {
  QORB_REQUIRE_ETCD();
  etcd_cluster etcd;
  etcd.put(prefix + "good", "127.0.0.1:6001");
  etcd.put(prefix + "words", "not an address");
  etcd.put(prefix + "noport", "127.0.0.1");
  etcd.put(prefix + "json", R"({"address": "127.0.0.1", "port": 99999})");
  etcd.put(prefix + "binary", std::string("\x01\x02\xff", 3));
  etcd_harness h(etcd_config(etcd.clients(), prefix));
  h.start();
  ASSERT_TRUE(h.wait_for({"good@127.0.0.1:6001"}));
  ASSERT_TRUE(wait_until([&] { return h.stats().bad_values == 4; }));
  // A good key that turns bad has no backend; turning good brings it back.
  etcd.put(prefix + "good", "{broken json");
  ASSERT_TRUE(h.wait_for({}));
  EXPECT_EQ(h.stats().bad_values, 5U);
  etcd.put(prefix + "words", "127.0.0.9:9");
  ASSERT_TRUE(h.wait_for({"words@127.0.0.9:9"}));
  EXPECT_TRUE(h.stats().watching);
  EXPECT_EQ(h.stats().failures, 0U);
  EXPECT_TRUE(h.stop());
}

TEST(EtcdResolver, StartsWatchingWhenEtcdComesUpLate) {
  QORB_REQUIRE_ETCD();
  etcd_cluster etcd(1, /*start_now=*/false);
  etcd_harness h(etcd_config(etcd.clients(), prefix));
  h.start();
  // Nothing answers: attempts fail and are counted, nothing is published.
  ASSERT_TRUE(wait_until([&] { return h.stats().failures >= 3; }));
  EXPECT_EQ(h.publications(), 0U);
  EXPECT_NE(h.stats().last_error.find("connect"), std::string::npos) << h.stats().last_error;
  etcd.start();
  etcd.put(prefix + "a", "127.0.0.1:6001");
  ASSERT_TRUE(h.wait_for({"a@127.0.0.1:6001"})) << etcd.logs();
  ASSERT_TRUE(wait_until([&] { return h.stats().watching; }));
  etcd.put(prefix + "b", "127.0.0.1:6002");
  ASSERT_TRUE(h.wait_for({"a@127.0.0.1:6001", "b@127.0.0.1:6002"}));
  EXPECT_TRUE(h.stop());
}

TEST(EtcdResolver, KeepsTheLastKnownSetWhileNoMemberAnswers) {
  QORB_REQUIRE_ETCD();
  etcd_cluster etcd;
  etcd.put(prefix + "a", "127.0.0.1:6001");
  etcd_harness h(etcd_config(etcd.clients(), prefix));
  h.start();
  ASSERT_TRUE(h.wait_for({"a@127.0.0.1:6001"}));
  ASSERT_TRUE(wait_until([&] { return h.stats().watching; }));
  const auto before = h.stats().failures;
  etcd.kill(0);
  ASSERT_TRUE(wait_until([&] { return h.stats().failures >= before + 3; }));
  EXPECT_FALSE(h.stats().watching);
  EXPECT_EQ(h.names(), names({"a@127.0.0.1:6001"}));
  EXPECT_EQ(h.publications(), 1U);
  EXPECT_TRUE(h.stop());
}

TEST(EtcdResolver, ResumesAfterABrokenStreamWithoutLosingOrReplayingEvents) {
  QORB_REQUIRE_ETCD();
  etcd_cluster etcd;
  cut_proxy proxy(etcd.client(0));
  etcd.put(prefix + "a", "127.0.0.1:6001");
  etcd_harness h(etcd_config({proxy.endpoint()}, prefix));
  h.start();
  ASSERT_TRUE(h.wait_for({"a@127.0.0.1:6001"}));
  ASSERT_TRUE(wait_until([&] { return h.stats().watching; }));
  proxy.cut();
  ASSERT_TRUE(wait_until([&] { return !h.stats().watching; }));
  // Changes while the resolver cannot see them: it resumes from the
  // revision after the last one it saw.
  etcd.put(prefix + "b", "127.0.0.1:6002");
  etcd.del(prefix + "a");
  etcd.put(prefix + "c", "127.0.0.1:6003");
  proxy.restore();
  ASSERT_TRUE(h.wait_for({"b@127.0.0.1:6002", "c@127.0.0.1:6003"}));
  const auto s = h.stats();
  EXPECT_EQ(s.reads, 1U);   // no re-read: the watch resumed
  EXPECT_EQ(s.events, 3U);  // each change once
  EXPECT_GE(s.watches, 2U);
  EXPECT_EQ(s.compactions, 0U);
  EXPECT_TRUE(h.stop());
}

TEST(EtcdResolver, ReadsAgainWhenItsRevisionWasCompacted) {
  QORB_REQUIRE_ETCD();
  etcd_cluster etcd;
  cut_proxy proxy(etcd.client(0));
  etcd.put(prefix + "a", "127.0.0.1:6001");
  etcd.put(prefix + "b", "127.0.0.1:6002");
  etcd_harness h(etcd_config({proxy.endpoint()}, prefix));
  h.start();
  ASSERT_TRUE(h.wait_for({"a@127.0.0.1:6001", "b@127.0.0.1:6002"}));
  ASSERT_TRUE(wait_until([&] { return h.stats().watching; }));
  proxy.cut();
  ASSERT_TRUE(wait_until([&] { return !h.stats().watching; }));
  etcd.del(prefix + "a");
  etcd.put(prefix + "c", "127.0.0.1:6003");
  etcd.put(prefix + "c", "127.0.0.1:7003");
  etcd.compact(etcd.revision());
  proxy.restore();
  ASSERT_TRUE(h.wait_for({"b@127.0.0.1:6002", "c@127.0.0.1:7003"}));
  ASSERT_TRUE(wait_until([&] { return h.stats().watching; }));
  const auto s = h.stats();
  EXPECT_EQ(s.compactions, 1U);
  EXPECT_EQ(s.reads, 2U);
  // Watching again from the re-read's revision: new changes still arrive.
  etcd.put(prefix + "d", "127.0.0.1:6004");
  ASSERT_TRUE(h.wait_for({"b@127.0.0.1:6002", "c@127.0.0.1:7003", "d@127.0.0.1:6004"}));
  EXPECT_TRUE(h.stop());
}

TEST(EtcdResolver, StopEndsTheWatchAndLeavesNothingBehind) {
  QORB_REQUIRE_ETCD();
  etcd_cluster etcd;
  etcd.put(prefix + "a", "127.0.0.1:6001");
  etcd_harness h(etcd_config(etcd.clients(), prefix));
  h.start();
  ASSERT_TRUE(h.wait_for({"a@127.0.0.1:6001"}));
  ASSERT_TRUE(wait_until([&] { return h.stats().watching; }));
  EXPECT_TRUE(h.stop());  // the io_context runs out of work: no stream, no timer
  const auto published = h.publications();
  etcd.put(prefix + "b", "127.0.0.1:6002");
  EXPECT_EQ(h.publications(), published);
}

TEST(EtcdResolver, StopWhileRetryingAMissingMember) {
  QORB_REQUIRE_ETCD();
  auto config = etcd_config({{qorb::asio::ip::make_address("127.0.0.1"), free_port()}}, prefix);
  config.retry_min = config.retry_max = std::chrono::minutes(5);
  etcd_harness h(config);
  h.start();
  ASSERT_TRUE(wait_until([&] { return h.stats().failures >= 1; }));
  EXPECT_TRUE(h.stop());  // the 5 min wait is cancelled
}

}  // namespace
