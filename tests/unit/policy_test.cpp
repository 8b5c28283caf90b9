#include <qorb/error.hpp>
#include <qorb/policy.hpp>

#include <gtest/gtest.h>

#include <functional>

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
