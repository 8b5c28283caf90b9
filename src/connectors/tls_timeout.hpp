// SPDX-License-Identifier: BSL-1.0
// qorb internals: bounding one awaitable operation by a time limit.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

namespace qorb::detail {

namespace asio = boost::asio;

template <class R, class T>
asio::awaitable<std::pair<std::exception_ptr, std::optional<R>>> captured(asio::awaitable<T> op) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(op);
      co_return std::pair<std::exception_ptr, std::optional<R>>{nullptr, R{}};
    } else {
      co_return std::pair<std::exception_ptr, std::optional<R>>{nullptr, co_await std::move(op)};
    }
  } catch (...) {
    co_return std::pair<std::exception_ptr, std::optional<R>>{std::current_exception(),
                                                              std::nullopt};
  }
}

/// Runs `op`; when `limit` (if positive) passes first, `op` is cancelled
/// (terminal cancellation: the stream it used is then in no known state)
/// and the result is empty. An exception of `op` comes out as itself (the
/// `||` of awaitables waits for the first *success*, so `op` reports its
/// failure as a value). Cancellation of the caller cancels both.
template <class T>
asio::awaitable<std::optional<std::conditional_t<std::is_void_v<T>, std::monostate, T>>> within(
    std::chrono::milliseconds limit, asio::awaitable<T> op) {
  using result = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
  if (limit <= std::chrono::milliseconds::zero()) {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(op);
      co_return result{};
    } else {
      co_return co_await std::move(op);
    }
  }
  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer timer(co_await asio::this_coro::executor, limit);
  auto outcome =
      co_await (captured<result>(std::move(op)) || timer.async_wait(asio::use_awaitable));
  if (outcome.index() == 1) co_return std::nullopt;
  auto& [error, value] = std::get<0>(outcome);
  if (error) std::rethrow_exception(error);
  co_return std::move(value);
}

}  // namespace qorb::detail
