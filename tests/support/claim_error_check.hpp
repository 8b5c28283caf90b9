// SPDX-License-Identifier: BSL-1.0
// Claim errors as the throwing forms give them (blocking claim() and
// co_claim), and their text with times blanked: "T" for "0.4 s", "15 ms",
// "3 min" (a claim's wait and an error's age vary from run to run; the
// rest of the sentence must not).
#pragma once

#include <qorb/backend.hpp>
#include <qorb/claim_error.hpp>
#include <qorb/pool.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <exception>
#include <future>
#include <optional>
#include <regex>
#include <string>

namespace qorb::test {

/// `text` with every duration qorb prints replaced by "T".
inline std::string blank_times(const std::string& text) {
  static const std::regex time(R"([0-9]+(\.[0-9]+)? (ms|s|min|h)\b)");
  return std::regex_replace(text, time, "T");
}

/// The claim_error `f()` throws (none: a test failure, naming `form`).
template <class F>
std::optional<claim_error> claim_error_of(const char* form, F f) {
  try {
    f();
    ADD_FAILURE() << form << " did not throw";
  } catch (const claim_error& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << form << " threw another exception: " << e.what();
  }
  return std::nullopt;
}

/// The claim_error blocking `claim(timeout)` throws.
template <class Conn>
std::optional<claim_error> blocking_claim_error(pool<Conn>& p, duration timeout) {
  return claim_error_of("claim()", [&] { auto h = p.claim(timeout); });
}

/// The claim_error `co_await p.co_claim(timeout)` throws, in a coroutine on
/// the pool's executor (which some thread must run).
template <class Conn>
std::optional<claim_error> awaited_claim_error(pool<Conn>& p, duration timeout) {
  auto f = boost::asio::co_spawn(
      p.get_executor(),
      [&p, timeout]() -> boost::asio::awaitable<void> { auto h = co_await p.co_claim(timeout); },
      boost::asio::use_future);
  if (f.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    ADD_FAILURE() << "co_claim did not complete";
    return std::nullopt;
  }
  return claim_error_of("co_claim", [&] { f.get(); });
}

/// What `connector.connect(b)` fails with, said by the connector itself
/// (its exception's `what()`), run on `ex`: what a claim's error must carry
/// word for word. "connected" if it did not fail.
template <class Connector>
std::string connect_failure(boost::asio::any_io_executor ex, Connector connector, backend b) {
  auto f = boost::asio::co_spawn(
      ex,
      [c = std::move(connector),
       b = std::move(b)]() mutable -> boost::asio::awaitable<std::string> {
        try {
          auto conn = co_await c.connect(b);
        } catch (const std::exception& e) {
          co_return std::string(e.what());
        }
        co_return std::string("connected");
      },
      boost::asio::use_future);
  if (f.wait_for(std::chrono::seconds(30)) != std::future_status::ready) return "no answer";
  return f.get();
}

/// What every claim error must be: `code`, the sentence `expected` (times
/// blanked), no Boost "[category:N]" suffix, the pool's name, and an
/// explanation that agrees with the pool's own `explain()` now (times
/// blanked: the pool must not have changed in between).
template <class Conn>
void expect_claim_error(const std::optional<claim_error>& e, const pool<Conn>& p, error_code code,
                        const std::string& expected) {
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), code) << e->what();
  const std::string what = e->what();
  EXPECT_EQ(blank_times(what), expected);
  EXPECT_EQ(what.find("[std:"), std::string::npos) << what;
  EXPECT_EQ(what.find("[system:"), std::string::npos) << what;
  EXPECT_EQ(e->pool_name(), p.name());
  EXPECT_EQ(blank_times(e->explanation().text()), blank_times(p.explain().text()));
  EXPECT_EQ(e->explanation().text().find("[system:"), std::string::npos);
}

}  // namespace qorb::test
