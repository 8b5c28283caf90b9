// SPDX-License-Identifier: BSL-1.0
// qorb internals: the initiations of pool<Conn>'s lifecycle operations
// (async_wait_ready, async_drain). The driver completes a type-erased
// handler on the pool's executor; the wrapper made here then runs the
// user's handler on its own associated executor.
#pragma once

#include <qorb/detail/pool_core.hpp>
#include <qorb/error.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

#include <cstddef>
#include <memory>
#include <utility>

namespace qorb::detail {

/// `handler` as a type-erased handler that runs it on its associated
/// executor (`fallback` if it has none).
template <class... Args, class Handler>
asio::any_completion_handler<void(Args...)> on_own_executor(Handler handler,
                                                            const asio::any_io_executor& fallback) {
  auto ex = asio::get_associated_executor(handler, fallback);
  return [h = std::move(handler), ex](Args... args) mutable {
    asio::dispatch(ex, [h = std::move(h), args...]() mutable { std::move(h)(args...); });
  };
}

/// For a moved-from pool: `handler(args...)`, posted to its own executor.
template <class Handler, class... Args>
void complete_without_pool(Handler handler, Args... args) {
  auto ex = asio::get_associated_executor(handler);
  asio::post(ex, [h = std::move(handler), args...]() mutable { std::move(h)(args...); });
}

struct initiate_wait_ready {
  template <class Handler>
  void operator()(Handler handler, std::shared_ptr<pool_core> core, std::size_t min_online,
                  duration timeout) const {
    if (!core) return complete_without_pool(std::move(handler), error_code(errc::terminated));
    const auto& ex = core->executor();
    core->wait_ready(min_online, timeout, on_own_executor<error_code>(std::move(handler), ex));
  }
};

struct initiate_drain {
  template <class Handler>
  void operator()(Handler handler, std::shared_ptr<pool_core> core, duration timeout) const {
    if (!core) {
      return complete_without_pool(std::move(handler), error_code(errc::terminated),
                                   std::size_t(0));
    }
    const auto& ex = core->executor();
    core->drain(timeout, on_own_executor<error_code, std::size_t>(std::move(handler), ex));
  }
};

}  // namespace qorb::detail
