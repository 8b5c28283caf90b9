// SPDX-License-Identifier: BSL-1.0
// The resolver on a real 3-member etcd cluster: the member it watches on is
// killed (the other two keep quorum) while changes go on; none is lost and
// none applied twice.
#include "etcd_harness.hpp"

#include <gtest/gtest.h>

namespace {

using namespace qorb::test;

// "k3", "127.0.0.1:7003" (appended: GCC 12 -O3 misjudges "literal" + temporary).
std::string key(int i) { return std::string("k").append(std::to_string(i)); }
std::string address(int i) { return std::string("127.0.0.1:").append(std::to_string(7000 + i)); }

const std::string prefix = "/services/echo/";

TEST(EtcdCluster, WatchFailsOverToAnotherMemberWithoutLosingAChange) {
  QORB_REQUIRE_ETCD();
  etcd_cluster etcd(3);
  for (int i = 0; i < 3; ++i) {
    etcd.put(prefix + key(i), address(i));
  }
  etcd_harness h(etcd_config(etcd.clients(), prefix));
  h.start();
  std::set<std::string> expected;
  for (int i = 0; i < 3; ++i) {
    expected.insert(key(i) + "@" + address(i));
  }
  ASSERT_TRUE(h.wait_for(expected)) << etcd.logs();
  ASSERT_TRUE(wait_until([&] { return h.stats().watching; }));

  // Kill the member the watch is on.
  const auto on = h.stats().member;
  std::size_t victim = 0;
  for (std::size_t i = 0; i < etcd.size(); ++i) {
    if (etcd.client(i) == on) victim = i;
  }
  etcd.kill(victim);
  // The survivors keep quorum; when the victim led, they elect a leader
  // first (a write before that can time out, and a timed-out write may
  // still be applied, so it is not retried).
  ASSERT_TRUE(wait_until(
      [&] {
        for (std::size_t i = 0; i < etcd.size(); ++i) {
          if (i != victim && !etcd.healthy(i)) return false;
        }
        return true;
      },
      30s))
      << etcd.logs();

  // Changes right after, through the surviving members: new keys, deletes,
  // and a key that changes several times.
  for (int i = 3; i < 13; ++i) {
    etcd.put(prefix + key(i), address(i));
    expected.insert(key(i) + "@" + address(i));
  }
  etcd.del(prefix + "k0");
  expected.erase("k0@127.0.0.1:7000");
  for (int v = 0; v < 5; ++v) {
    etcd.put(prefix + "moving", std::string("127.0.0.2:").append(std::to_string(8000 + v)));
  }
  expected.insert("moving@127.0.0.2:8004");

  ASSERT_TRUE(h.wait_for(expected, 30s)) << h.stats().last_error;
  ASSERT_TRUE(wait_until([&] { return h.stats().watching; }));
  const auto s = h.stats();
  EXPECT_NE(s.member, on);
  EXPECT_EQ(s.reads, 1U);    // resumed, not re-read
  EXPECT_EQ(s.events, 16U);  // 10 puts, 1 delete, 5 moves: each once
  EXPECT_GE(s.failures, 1U);
  EXPECT_EQ(s.revision, etcd.revision());

  // Every published set is one the store really went through: names only
  // ever gained in order, k0 went once, "moving" went through each value.
  std::size_t moving_values = 0;
  std::string last_moving;
  for (const auto& set : h.sets()) {
    for (const auto& [name, b] : set) {
      if (name.starts_with("moving@") && name != last_moving) {
        last_moving = name;
        ++moving_values;
      }
    }
  }
  EXPECT_LE(moving_values, 5U);
  EXPECT_EQ(last_moving, "moving@127.0.0.2:8004");

  // And it keeps following changes on the new member.
  etcd.put(prefix + "after", "127.0.0.3:1");
  expected.insert("after@127.0.0.3:1");
  ASSERT_TRUE(h.wait_for(expected));
  EXPECT_TRUE(h.stop());
}

}  // namespace
