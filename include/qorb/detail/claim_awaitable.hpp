// SPDX-License-Identifier: BSL-1.0
// qorb internals: async_claim with asio::use_awaitable (so co_claim too)
// throws qorb::claim_error, which names the pool, the wait and the cause,
// instead of the plain boost::system::system_error Asio's use_awaitable
// throws; and with asio::use_future, the future throws it too. (An
// asio::deferred claim co_awaited directly does not come through here:
// Asio's awaitable runs deferred operations with a handler of its own; it
// throws the plain system_error.)
//
// It is Asio's completion-token customisation point, specialised for the
// claim's signature: the same initiation is awaited with
// as_tuple(use_awaitable), which never throws, and a failure is thrown as
// claim_error built from the pool's stats. The initiation's first argument
// is the pool's core; whatever follows it (the timeout, more in future) is
// passed on as it came.
#pragma once

#include <qorb/claim.hpp>
#include <qorb/claim_error.hpp>
#include <qorb/detail/pool_core.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <exception>
#include <future>
#include <memory>
#include <tuple>
#include <utility>

namespace boost::asio {

template <class Executor, class Conn>
class async_result<use_awaitable_t<Executor>, void(qorb::error_code, qorb::handle<Conn>)> {
 public:
  using return_type = awaitable<qorb::handle<Conn>, Executor>;

  template <class Initiation, class... InitArgs>
  static return_type initiate(Initiation initiation, use_awaitable_t<Executor>,
                              std::shared_ptr<qorb::detail::pool_core> core, InitArgs... args) {
    // Read only here, on the awaitable claim's path: co_claim's served-at-
    // once path does not come through this function.
    const auto start = std::chrono::steady_clock::now();
    auto [ec, h] = co_await async_initiate<const as_tuple_t<use_awaitable_t<Executor>>&,
                                           void(qorb::error_code, qorb::handle<Conn>)>(
        std::move(initiation), as_tuple(use_awaitable_t<Executor>{}), core, std::move(args)...);
    if (ec) {
      throw qorb::claim_error(ec, core->stats(), std::chrono::steady_clock::now() - start);
    }
    co_return std::move(h);
  }
};

template <class Allocator, class Conn>
class async_result<use_future_t<Allocator>, void(qorb::error_code, qorb::handle<Conn>)> {
 public:
  using return_type = std::future<qorb::handle<Conn>>;

  template <class Initiation, class... InitArgs>
  static return_type initiate(Initiation initiation, use_future_t<Allocator>,
                              std::shared_ptr<qorb::detail::pool_core> core, InitArgs... args) {
    auto promise = std::make_shared<std::promise<qorb::handle<Conn>>>();
    return_type f = promise->get_future();
    const auto start = std::chrono::steady_clock::now();
    // Completed on the system executor, as Asio's own future handler is:
    // the future's waiter needs no thread of the pool's to wake.
    auto handler = bind_executor(
        system_executor(), [promise, core, start](qorb::error_code ec, qorb::handle<Conn> h) {
          if (!ec) return promise->set_value(std::move(h));
          try {
            throw qorb::claim_error(ec, core->stats(), std::chrono::steady_clock::now() - start);
          } catch (...) {
            promise->set_exception(std::current_exception());
          }
        });
    std::move(initiation)(std::move(handler), core, std::move(args)...);
    return f;
  }
};

}  // namespace boost::asio
