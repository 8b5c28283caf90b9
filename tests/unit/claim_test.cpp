// SPDX-License-Identifier: BSL-1.0
// async_claim works with every kind of asio completion token.
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <future>

#include "support/fake_connector.hpp"
#include "support/io_threads.hpp"
#include "support/wait.hpp"

namespace qorb::test {
namespace {

using namespace std::chrono_literals;

class tokens : public ::testing::Test {
 protected:
  tokens() {
    policy p;
    p.max_slots = 2;
    p.claim_timeout = 5s;
    pool_.emplace(io.executor(), "tokens",
                  std::make_shared<fixed_resolver>(
                      std::vector{asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 9)}),
                  connector, p);
  }
  io_threads io{1};
  fake_connector connector;
  std::optional<pool<fake_conn>> pool_;
};

TEST_F(tokens, callback) {
  std::promise<bool> got;
  pool_->async_claim([&](error_code ec, handle<fake_conn> h) { got.set_value(!ec && h); });
  auto f = got.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(f.get());
}

TEST_F(tokens, use_future) {
  auto f = pool_->async_claim(asio::use_future);
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(f.get()->backend, "127.0.0.1:9");
}

TEST_F(tokens, use_future_reports_errors_as_exceptions) {
  auto a = pool_->claim();
  auto b = pool_->claim();
  auto f = pool_->async_claim(20ms, asio::use_future);
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  try {
    f.get();
    ADD_FAILURE() << "expected an error";
  } catch (const boost::system::system_error& e) {
    EXPECT_EQ(e.code(), errc::all_claims_used);
  }
}

TEST_F(tokens, use_awaitable_and_as_tuple) {
  std::promise<int> got;
  asio::co_spawn(
      io.executor(),
      [&]() -> asio::awaitable<void> {
        handle<fake_conn> h = co_await pool_->async_claim(asio::use_awaitable);
        auto [ec, h2] = co_await pool_->async_claim(asio::as_tuple(asio::use_awaitable));
        got.set_value(h && !ec && h2 ? h->id + h2->id : -1);
      },
      asio::detached);
  auto f = got.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_GT(f.get(), 0);
}

TEST_F(tokens, deferred) {
  auto op = pool_->async_claim(asio::deferred);
  std::promise<bool> got;
  std::move(op)([&](error_code ec, handle<fake_conn> h) { got.set_value(!ec && h); });
  auto f = got.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(f.get());
}

// Asio's rule for every async operation: the handler never runs inside the
// initiating function, even when the result is there at once.
TEST_F(tokens, handler_never_runs_inside_async_claim) {
  ASSERT_TRUE(wait_until([&] { return pool_->stats().backends.begin()->second.unclaimed > 0; }));
  std::atomic<bool> returned{false};
  std::promise<bool> ran_inside;
  asio::post(io.executor(), [&] {
    pool_->async_claim([&](error_code ec, handle<fake_conn> h) {
      EXPECT_FALSE(ec);
      EXPECT_TRUE(h);
      ran_inside.set_value(!returned);
    });
    returned = true;
  });
  auto f = ran_inside.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_FALSE(f.get());
}

// Each claim is served at once; were its completion run inline, every
// iteration would nest a resumption of the coroutine and the stack would
// overflow long before the end.
TEST_F(tokens, coroutine_claiming_in_a_loop_keeps_a_flat_stack) {
  ASSERT_TRUE(wait_until([&] { return pool_->stats().backends.begin()->second.unclaimed > 0; }));
  constexpr int claims = 200000;
  std::promise<int> done;
  asio::co_spawn(
      io.executor(),
      [&]() -> asio::awaitable<void> {
        int n = 0;
        while (n < claims && co_await pool_->async_claim(asio::use_awaitable)) ++n;
        done.set_value(n);
      },
      asio::detached);
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(60s), std::future_status::ready);
  EXPECT_EQ(f.get(), claims);
}

TEST_F(tokens, handle_is_move_only_raii) {
  static_assert(!std::is_copy_constructible_v<handle<fake_conn>>);
  static_assert(std::is_nothrow_move_constructible_v<handle<fake_conn>>);
  auto h = pool_->claim();
  auto moved = std::move(h);
  EXPECT_FALSE(h);  // NOLINT(bugprone-use-after-move): testing moved-from state
  EXPECT_THROW(*h, std::logic_error);
  ASSERT_TRUE(moved);
  EXPECT_EQ(pool_->stats().backends.begin()->second.claimed, 1u);
  moved = handle<fake_conn>();
  EXPECT_EQ(pool_->stats().backends.begin()->second.claimed, 0u);
}

}  // namespace
}  // namespace qorb::test
