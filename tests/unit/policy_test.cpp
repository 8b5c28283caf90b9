// SPDX-License-Identifier: BSL-1.0
#include <qorb/error.hpp>
#include <qorb/policy.hpp>
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <future>
#include <limits>
#include <thread>

#include "support/fake_connector.hpp"
#include "support/io_threads.hpp"
#include "support/slot_watch.hpp"
#include "support/test_policy.hpp"
#include "support/wait.hpp"

namespace qorb {
namespace {

using namespace std::chrono_literals;

void expect_rejected(const std::function<void(policy&)>& change, const std::string& field) {
  policy p;
  change(p);
  try {
    validate(p);
    ADD_FAILURE() << "accepted a bad " << field;
  } catch (const invalid_policy& e) {
    EXPECT_EQ(e.field(), field);
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
  }
}

TEST(policy, defaults_are_qorbs_and_valid) {
  policy p;
  EXPECT_EQ(p.spares_wanted, 8u);
  EXPECT_EQ(p.max_slots, 16u);
  EXPECT_EQ(p.rebalance_interval, 60s);
  EXPECT_EQ(p.claim_timeout, 30s);
  EXPECT_EQ(p.set_config.max_count, 16u);
  EXPECT_EQ(p.set_config.min_connection_backoff, 20ms);
  EXPECT_EQ(p.set_config.max_connection_backoff, 30s);
  EXPECT_EQ(p.set_config.spread, 20ms);
  EXPECT_EQ(p.set_config.health_interval, duration(30s));
  EXPECT_EQ(p.set_config.health_check_timeout, 3s);
  EXPECT_NO_THROW(validate(p));
  p.set_config.health_interval = std::nullopt;  // "never" is expressible
  EXPECT_NO_THROW(validate(p));
}

TEST(policy, bad_values_are_rejected_naming_the_field) {
  expect_rejected([](policy& p) { p.max_slots = 0; }, "max_slots");
  expect_rejected([](policy& p) { p.rebalance_interval = 0s; }, "rebalance_interval");
  expect_rejected([](policy& p) { p.claim_timeout = -1s; }, "claim_timeout");
  expect_rejected([](policy& p) { p.set_config.max_count = 0; }, "set_config.max_count");
  expect_rejected([](policy& p) { p.set_config.min_connection_backoff = 0s; },
                  "set_config.min_connection_backoff");
  expect_rejected(
      [](policy& p) {
        p.set_config.min_connection_backoff = 2s;
        p.set_config.max_connection_backoff = 1s;
      },
      "set_config.max_connection_backoff");
  expect_rejected([](policy& p) { p.set_config.spread = -1ms; }, "set_config.spread");
  expect_rejected([](policy& p) { p.set_config.health_interval = 0s; },
                  "set_config.health_interval");
  expect_rejected([](policy& p) { p.set_config.health_check_timeout = 0s; },
                  "set_config.health_check_timeout");
  expect_rejected([](policy& p) { p.set_config.connect_timeout = -5s; },
                  "set_config.connect_timeout");
  expect_rejected([](policy& p) { p.hold_warning = 0s; }, "hold_warning");
  expect_rejected([](policy& p) { p.hold_warning = -1s; }, "hold_warning");
}

TEST(policy, counts_have_an_upper_bound_named_in_the_error) {
  constexpr std::size_t huge = std::numeric_limits<std::size_t>::max();
  const std::string bound = std::to_string(max_policy_count);
  const std::vector<std::pair<std::function<void(policy&)>, std::string>> cases = {
      {[&](policy& p) { p.max_slots = huge; }, "max_slots"},
      {[&](policy& p) { p.spares_wanted = huge; }, "spares_wanted"},
      {[&](policy& p) { p.set_config.max_count = huge; }, "set_config.max_count"},
      {[&](policy& p) { p.max_slots = max_policy_count + 1; }, "max_slots"},
  };
  for (const auto& [change, field] : cases) {
    expect_rejected(change, field);
    policy p;
    change(p);
    try {
      validate(p);
    } catch (const invalid_policy& e) {
      EXPECT_NE(std::string(e.what()).find("at most " + bound), std::string::npos) << e.what();
    }
  }
  policy p;
  p.max_slots = max_policy_count;
  p.spares_wanted = max_policy_count;
  p.set_config.max_count = max_policy_count;
  EXPECT_NO_THROW(validate(p));
}

TEST(policy, every_duration_may_be_forever) {
  policy p;
  p.claim_timeout = duration::max();
  p.rebalance_interval = duration::max();
  p.set_config.min_connection_backoff = duration::max();
  p.set_config.max_connection_backoff = duration::max();
  p.set_config.spread = duration::max();
  p.set_config.health_interval = duration::max();
  p.set_config.health_check_timeout = duration::max();
  p.set_config.connect_timeout = duration::max();
  EXPECT_NO_THROW(validate(p));
}

// --- "forever" and huge counts in a running pool ----------------------------

using test::fake_conn;
using claim_result = std::pair<error_code, handle<fake_conn>>;

asio::ip::tcp::endpoint local(unsigned short port) {
  return {asio::ip::make_address("127.0.0.1"), port};
}

template <class Pool>
std::future<claim_result> claim_async(Pool& p, duration timeout = duration::zero()) {
  auto done = std::make_shared<std::promise<claim_result>>();
  auto f = done->get_future();
  p.async_claim(timeout, [done](error_code ec, handle<fake_conn> h) {
    done->set_value({ec, std::move(h)});
  });
  return f;
}

class policy_pool_test : public ::testing::Test {
 protected:
  test::io_threads io{2};
  std::shared_ptr<fixed_resolver> resolver = std::make_shared<fixed_resolver>();
};

TEST_F(policy_pool_test, claim_timeout_max_waits_until_a_connection_comes) {
  auto p = test::quick_policy();
  p.claim_timeout = duration::max();  // overflowed: every claim failed after ~1 ms
  test::fake_connector c;
  pool<fake_conn> pool(io.executor(), "forever", resolver, c, p);
  auto by_policy = claim_async(pool);
  auto by_argument = claim_async(pool, duration::max());
  std::promise<error_code> blocking;
  std::thread blocked([&] {
    error_code ec;
    auto h = pool.claim(duration::max(), ec);
    blocking.set_value(ec);
  });
  auto blocking_done = blocking.get_future();
  // Nothing can be claimed yet: all three are still waiting (they failed at
  // once when the deadline overflowed).
  EXPECT_EQ(by_policy.wait_for(300ms), std::future_status::timeout);
  EXPECT_EQ(by_argument.wait_for(1ms), std::future_status::timeout);
  EXPECT_EQ(blocking_done.wait_for(1ms), std::future_status::timeout);
  resolver->set_endpoints({local(1)});
  ASSERT_EQ(by_policy.wait_for(10s), std::future_status::ready);
  ASSERT_EQ(by_argument.wait_for(10s), std::future_status::ready);
  ASSERT_EQ(blocking_done.wait_for(10s), std::future_status::ready);
  blocked.join();
  auto a = by_policy.get();
  auto b = by_argument.get();
  EXPECT_FALSE(a.first) << a.first.message();
  EXPECT_FALSE(b.first) << b.first.message();
  EXPECT_FALSE(blocking_done.get());
  pool.terminate();
}

TEST_F(policy_pool_test, endless_backoff_check_and_timeouts_do_not_overflow) {
  auto p = test::quick_policy();
  p.rebalance_interval = duration::max();
  p.set_config.max_connection_backoff = duration::max();  // 2 x this overflowed
  p.set_config.health_interval = duration::max();         // + spread overflowed
  p.set_config.health_check_timeout = duration::max();
  p.set_config.connect_timeout = duration::max();
  test::checked_fake_connector c;  // has is_valid: health checks are scheduled
  c.state->fail_connect = true;
  pool<fake_conn> pool(io.executor(), "endless", resolver, c, p);
  resolver->set_endpoints({local(1)});
  // Failures back off from 5 ms, doubling: a few tries come quickly.
  ASSERT_TRUE(test::wait_until([&] { return c.state->connect_calls >= 3; }, 10s));
  c.state->fail_connect = false;
  auto claimed = claim_async(pool, 10s);
  ASSERT_EQ(claimed.wait_for(15s), std::future_status::ready);
  auto r = claimed.get();
  EXPECT_FALSE(r.first) << r.first.message();
  r.second.reset();
  pool.terminate();
}

TEST_F(policy_pool_test, spread_max_still_connects_and_claims) {
  auto p = test::quick_policy();
  p.set_config.spread = duration::max();  // scaled(max) rounded past the end
  test::checked_fake_connector c;
  pool<fake_conn> pool(io.executor(), "spread", resolver, c, p);
  resolver->set_endpoints({local(1)});
  auto claimed = claim_async(pool, 10s);
  ASSERT_EQ(claimed.wait_for(15s), std::future_status::ready);
  auto r = claimed.get();
  EXPECT_FALSE(r.first) << r.first.message();
  r.second.reset();
  pool.terminate();
}

TEST_F(policy_pool_test, huge_spares_wanted_stays_within_max_slots) {
  auto p = test::quick_policy();
  p.spares_wanted = max_policy_count;  // claimed + spares_wanted wrapped
  p.max_slots = 4;
  p.set_config.max_count = max_policy_count;
  test::fake_connector c;
  pool<fake_conn> pool(io.executor(), "spares", resolver, c, p);
  const test::slot_watch watch(c.state, pool);  // looks at every slot opened
  resolver->set_endpoints({local(1), local(2)});
  ASSERT_TRUE(test::wait_until([&] { return c.state->live == 4; }, 10s)) << c.state->live;
  // Every slot the pool opened was looked at (one connect each): never more
  // than max_slots, and max_slots once the pool had grown.
  EXPECT_GE(watch.looks(), 4);
  EXPECT_EQ(watch.most(), 4u);
  pool.terminate();
}

TEST(errors, have_a_named_category_and_messages) {
  std::error_code ec = errc::all_claims_used;
  EXPECT_STREQ(ec.category().name(), "qorb");
  EXPECT_NE(ec.message().find("all claims used"), std::string::npos);
  EXPECT_NE(std::error_code(errc::no_backends).message(),
            std::error_code(errc::no_backends_online).message());
  EXPECT_NE(std::error_code(errc::terminated).message().find("terminated"), std::string::npos);
}

}  // namespace
}  // namespace qorb
