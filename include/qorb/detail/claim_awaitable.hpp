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
// claim's signature: the same initiation runs with a handler that turns a
// failure into a claim_error built from the pool's stats, completing Asio's
// own awaitable handler for (std::exception_ptr, handle), which throws it.
// The initiation's first argument is the pool's core; whatever follows it
// (the timeout, more in future) is passed on as it came.
#pragma once

#include <qorb/claim.hpp>
#include <qorb/claim_error.hpp>
#include <qorb/detail/pool_core.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
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

namespace qorb::detail {

// Wraps a claim's initiation: the handler it is given takes
// (std::exception_ptr, handle) and gets a claim_error for a failure. The
// wrapper handed to the real initiation keeps that handler's executor and
// cancellation slot, so the claim completes and cancels as before.
template <class Conn, class Initiation>
struct explaining_initiation {
  Initiation initiation;

  template <class Handler, class... Rest>
  void operator()(Handler handler, std::shared_ptr<pool_core> core, Rest&&... rest) {
    // Read only on a claim made with a token that throws (use_awaitable,
    // co_claim's waiting path): one clock read, for the wait's length.
    const auto start = std::chrono::steady_clock::now();
    auto executor = boost::asio::get_associated_executor(handler);
    auto slot = boost::asio::get_associated_cancellation_slot(handler);
    auto done = [h = std::move(handler), core, start](error_code ec, handle<Conn> c) mutable {
      if (!ec) return std::move(h)(std::exception_ptr(), std::move(c));
      std::move(h)(std::make_exception_ptr(
                       claim_error(ec, core->stats(), std::chrono::steady_clock::now() - start)),
                   handle<Conn>());
    };
    std::move(initiation)(
        boost::asio::bind_cancellation_slot(
            slot, boost::asio::bind_executor(std::move(executor), std::move(done))),
        std::move(core), std::forward<Rest>(rest)...);
  }
};

}  // namespace qorb::detail

namespace boost::asio {

// A claim's use_awaitable completion is Asio's own, for the signature
// (std::exception_ptr, handle): one coroutine frame, as before; a failure
// arrives as the claim_error the wrapper made.
template <class Executor, class Conn>
class async_result<use_awaitable_t<Executor>, void(qorb::error_code, qorb::handle<Conn>)> {
  using throwing =
      async_result<use_awaitable_t<Executor>, void(std::exception_ptr, qorb::handle<Conn>)>;

 public:
  using return_type = typename throwing::return_type;

  template <class Initiation, class... InitArgs>
  static return_type initiate(Initiation initiation, use_awaitable_t<Executor> token,
                              std::shared_ptr<qorb::detail::pool_core> core, InitArgs... args) {
    return throwing::initiate(
        qorb::detail::explaining_initiation<Conn, Initiation>{std::move(initiation)}, token,
        std::move(core), std::move(args)...);
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
