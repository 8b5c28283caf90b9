// SPDX-License-Identifier: BSL-1.0
// A scriptable connector for unit tests of the pool's state machines: no
// sockets, every call counted, every failure and stall switchable at run
// time, every connection it makes counted while alive (to catch leaks).
#pragma once

#include <qorb/backend.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>

namespace qorb::test {

namespace asio = boost::asio;

struct fake_state {
  std::atomic<int> live{0};  // connections alive now
  std::atomic<int> connects{0}, connect_calls{0}, is_valid_calls{0}, acquire_calls{0},
      recycle_calls{0}, next_id{0};
  std::atomic<bool> fail_connect{false}, fail_is_valid{false}, fail_recycle{false},
      fail_acquire{false};
  // Stalls: the call waits until `release` is set (or it is cancelled,
  // unless `ignore_cancel`).
  std::atomic<bool> stall_connect{false}, stall_is_valid{false}, ignore_cancel{false},
      release{false};
  std::atomic<int> stalled{0};  // calls stalled right now
  // Which on_acquire calls (by call number, from 1) stall.
  std::function<bool(int)> stall_acquire = nullptr;
  // Called under `watch_mu` at the start of every connect call while set;
  // set and cleared under it too (tests/support/slot_watch.hpp).
  std::mutex watch_mu;
  std::function<void()> on_connect = nullptr;

  std::mutex mu;
  std::set<std::string> failing_backends;  // connect fails for these names
  std::set<int> in_use;                    // ids of connections claimed now
  std::map<std::string, int> live_by_backend;
  std::map<std::string, int> connect_calls_by_backend;

  int connect_calls_to(const std::string& name) {
    std::lock_guard lock(mu);
    return connect_calls_by_backend[name];
  }

  int live_to(const std::string& name) {
    std::lock_guard lock(mu);
    return live_by_backend[name];
  }

  bool backend_fails(const std::string& name) {
    std::lock_guard lock(mu);
    return failing_backends.contains(name);
  }
};

struct fake_conn {
  fake_conn(int i, std::string b, std::shared_ptr<fake_state> s)
      : id(i), backend(std::move(b)), state(std::move(s)) {
    ++state->live;
    std::lock_guard lock(state->mu);
    ++state->live_by_backend[backend];
  }
  fake_conn(fake_conn&& o) noexcept
      : id(o.id), backend(std::move(o.backend)), state(std::move(o.state)) {}
  fake_conn& operator=(fake_conn&&) = delete;
  ~fake_conn() {
    if (!state) return;
    --state->live;
    std::lock_guard lock(state->mu);
    --state->live_by_backend[backend];
  }
  int id;
  std::string backend;
  std::shared_ptr<fake_state> state;
};

// Waits (polling a 1 ms timer, so cancellation reaches it) until the state
// is released; with `ignore_cancel`, cancellation does not reach it.
inline asio::awaitable<void> stall(fake_state& st) {
  ++st.stalled;
  // Really ignoring cancellation also means not throwing at the next
  // co_await once the coroutine has been cancelled.
  if (st.ignore_cancel) co_await asio::this_coro::throw_if_cancelled(false);
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer t(ex);
  asio::cancellation_signal never;  // a slot nobody emits on
  try {
    for (int i = 0; i < 60000 && !st.release; ++i) {
      t.expires_after(std::chrono::milliseconds(1));
      if (st.ignore_cancel) {
        co_await t.async_wait(asio::bind_cancellation_slot(never.slot(), asio::use_awaitable));
      } else {
        co_await t.async_wait(asio::use_awaitable);
      }
    }
  } catch (...) {
    --st.stalled;
    throw;
  }
  --st.stalled;
}

template <bool IsValid, bool Acquire, bool Recycle>
struct basic_fake_connector {
  using connection_type = fake_conn;
  std::shared_ptr<fake_state> state = std::make_shared<fake_state>();

  asio::awaitable<fake_conn> connect(const backend& b) {
    ++state->connect_calls;
    {
      std::lock_guard lock(state->watch_mu);
      if (state->on_connect) state->on_connect();
    }
    {
      std::lock_guard lock(state->mu);
      ++state->connect_calls_by_backend[b.name];
    }
    if (state->stall_connect) co_await stall(*state);
    if (state->fail_connect || state->backend_fails(b.name)) {
      throw std::runtime_error("connection refused (fake)");
    }
    ++state->connects;
    co_return fake_conn(++state->next_id, b.name, state);
  }

  asio::awaitable<void> is_valid(fake_conn&) requires IsValid {
    ++state->is_valid_calls;
    if (state->stall_is_valid) co_await stall(*state);
    if (state->fail_is_valid) throw std::runtime_error("health check failed (fake)");
  }

  asio::awaitable<void> on_acquire(fake_conn&) requires Acquire {
    const int call = ++state->acquire_calls;
    if (state->stall_acquire && state->stall_acquire(call)) co_await stall(*state);
    if (state->fail_acquire) throw std::runtime_error("on_acquire failed (fake)");
  }

  asio::awaitable<void> on_recycle(fake_conn&) requires Recycle {
    ++state->recycle_calls;
    if (state->fail_recycle) throw std::runtime_error("on_recycle failed (fake)");
    co_return;
  }
};

using fake_connector = basic_fake_connector<false, false, false>;
using checked_fake_connector = basic_fake_connector<true, false, true>;
using acquiring_fake_connector = basic_fake_connector<false, true, false>;

}  // namespace qorb::test
