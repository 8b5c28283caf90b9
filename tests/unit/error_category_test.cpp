// SPDX-License-Identifier: BSL-1.0
// The error category template every qorb category is made of
// (src/detail/error_category.hpp), and the core's category built from it.
#include <qorb/error.hpp>

#include "detail/error_category.hpp"

#include <gtest/gtest.h>

#include <string>
#include <system_error>

namespace qorb {
namespace {

enum class sample_errc { first = 1, second = 2 };

const char* sample_message(sample_errc e) noexcept {
  switch (e) {
    case sample_errc::first:
      return "the first thing went wrong";
    case sample_errc::second:
      return "the second thing went wrong";
  }
  return nullptr;
}

TEST(error_category_template, gives_its_name_and_a_message_per_value) {
  const detail::error_category<sample_errc> category(
      "qorb.sample", sample_message, "unknown sample", detail::unknown_value::omitted);
  EXPECT_STREQ(category.name(), "qorb.sample");
  EXPECT_EQ(category.message(1), "the first thing went wrong");
  EXPECT_EQ(category.message(2), "the second thing went wrong");
  // Codes of it compare by category and value.
  const std::error_code a(1, category), b(1, category), c(2, category);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(a.message(), "the first thing went wrong");
}

TEST(error_category_template, an_unknown_value_gets_the_unknown_message_with_or_without_it) {
  const detail::error_category<sample_errc> omitted(
      "qorb.sample", sample_message, "unknown sample error", detail::unknown_value::omitted);
  const detail::error_category<sample_errc> appended(
      "qorb.sample", sample_message, "unknown sample error", detail::unknown_value::appended);
  EXPECT_EQ(omitted.message(0), "unknown sample error");
  EXPECT_EQ(omitted.message(42), "unknown sample error");
  EXPECT_EQ(appended.message(42), "unknown sample error 42");
  EXPECT_EQ(appended.message(-7), "unknown sample error -7");
}

TEST(error_category_template, the_core_category_keeps_its_name_messages_and_unknown_message) {
  const auto& category = qorb::category();
  EXPECT_STREQ(category.name(), "qorb");
  EXPECT_EQ(&category, &qorb::category());  // one instance
  EXPECT_EQ(std::error_code(errc::terminated).message(), "the pool is terminated");
  EXPECT_EQ(std::error_code(errc::connection_ended).message(),
            "the server ended the connection normally");
  EXPECT_EQ(category.message(999), "unknown qorb error 999");
  // Only its own errc values are equivalent to its codes.
  EXPECT_EQ(std::error_code(errc::terminated), errc::terminated);
  EXPECT_NE(std::error_code(errc::terminated), std::errc::operation_canceled);
}

}  // namespace
}  // namespace qorb
