// SPDX-License-Identifier: BSL-1.0
// The driver's part of a pool's life: the status (and its callbacks, in
// order), the ready gate, a drain, a new policy, evict_all. The core
// decides each; this carries out what it says, outside the pool's lock.
#include <qorb/claim_error.hpp>
#include <qorb/error.hpp>

#include "pool/pool_driver.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>

#include <exception>

namespace qorb::detail {

namespace {

// Completions are posted to the pool's executor: never run inside the
// call that decided them. (pool<Conn> wraps each handler so that it then
// runs on its own associated executor.)
template <class Handler, class... Args>
void post_completion(const asio::any_io_executor& ex, Handler&& h, Args... args) {
  asio::post(ex, [h = std::forward<Handler>(h), args...]() mutable { std::move(h)(args...); });
}

}  // namespace

pool_status pool_driver::status() const {
  std::lock_guard lock(mu_);
  return state_.status();
}

void pool_driver::on_status_change(std::function<void(pool_status, pool_status)> f) {
  std::uint64_t seq = 0;
  {
    std::lock_guard lock(mu_);
    seq = state_.status_seq();
  }
  std::lock_guard lock(status_mu_);
  status_callbacks_.push_back({seq, std::move(f)});
}

void pool_driver::after_lifecycle(const core::effects& fx) noexcept {
  using kind = core::observation::kind;
  for (const auto& o : fx.seen) {
    switch (o.what) {
      case kind::status_changed:
        deliver_status(o.seq, o.status_from, o.status_to);
        check_ready_waiters(0, o.status_to);
        break;
      case kind::set_online:
        if (o.first) check_ready_waiters(o.count, pool_status::running);
        break;
      case kind::drained: {
        end_drain({}, 0);
        break;
      }
      default:
        break;
    }
  }
}

// Effects are applied by whichever thread ran the event, outside the lock:
// two threads may carry status changes at once. Each has its number; the
// one delivering calls the callbacks for every change in order, and the
// others leave theirs to it. Callbacks run without a lock held (they may
// call the pool, or add a callback).
void pool_driver::deliver_status(std::uint64_t seq, pool_status from, pool_status to) noexcept {
  std::unique_lock lock(status_mu_);
  status_pending_.emplace(seq, std::make_pair(from, to));
  if (status_delivering_) return;
  status_delivering_ = true;
  for (auto it = status_pending_.find(status_next_); it != status_pending_.end();
       it = status_pending_.find(status_next_)) {
    const auto [f, t] = it->second;
    const std::uint64_t n = status_next_++;
    status_pending_.erase(it);
    std::vector<std::function<void(pool_status, pool_status)>> calls;
    for (const auto& cb : status_callbacks_) {
      if (cb.after_seq < n) calls.push_back(cb.f);
    }
    lock.unlock();
    for (const auto& call : calls) call_user("a status callback", [&] { call(f, t); });
    lock.lock();
  }
  status_delivering_ = false;
}

void pool_driver::wait_ready(std::size_t min_online, duration timeout,
                             asio::any_completion_handler<void(error_code)> h) {
  std::size_t online = 0;
  pool_status st = pool_status::starting;
  {
    std::lock_guard lock(mu_);
    online = state_.online_backends();
    st = state_.status();
  }
  // (0 backends asked for: ready now, whatever the status.)
  if (online >= min_online && (min_online == 0 || st == pool_status::running))
    return post_completion(ex_, std::move(h), error_code());
  if (st == pool_status::failed)
    return post_completion(ex_, std::move(h), error_code(errc::pool_failed));
  if (st == pool_status::stopping || st == pool_status::stopped) {
    return post_completion(ex_, std::move(h), error_code(errc::terminated));
  }
  std::lock_guard lock(life_mu_);
  const std::uint64_t id = ++waiter_ids_;
  ready_waiter w{id, min_online, std::move(h), nullptr};
  if (timeout != duration::max()) {
    w.timer = std::make_unique<asio::steady_timer>(ex_, timeout);
    std::weak_ptr<pool_core> weak = weak_from_this();
    w.timer->async_wait([weak, id](const boost::system::error_code& ec) {
      if (ec == asio::error::operation_aborted) return;
      auto self = weak.lock();
      if (!self) return;
      auto& d = static_cast<pool_driver&>(*self);
      std::optional<ready_waiter> gone;
      {
        std::lock_guard l(d.life_mu_);
        auto it = std::find_if(d.ready_waiters_.begin(), d.ready_waiters_.end(),
                               [&](const ready_waiter& x) { return x.id == id; });
        if (it == d.ready_waiters_.end()) return;
        gone.emplace(std::move(*it));
        d.ready_waiters_.erase(it);
      }
      post_completion(d.ex_, std::move(gone->handler), error_code(asio::error::timed_out));
    });
  }
  ready_waiters_.push_back(std::move(w));
  // A change between the read above and now would have found no waiter:
  // check again with what the pool says now.
  std::size_t now_online = 0;
  pool_status now_status = pool_status::starting;
  {
    std::lock_guard l(mu_);
    now_online = state_.online_backends();
    now_status = state_.status();
  }
  if (now_online != online || now_status != st) {
    // Not under life_mu_: check_ready_waiters takes it.
    asio::post(ex_, [weak = weak_from_this(), now_online, now_status] {
      if (auto self = weak.lock())
        static_cast<pool_driver&>(*self).check_ready_waiters(now_online, now_status);
    });
  }
}

// `online`: backends online now (0 when only the status changed).
void pool_driver::check_ready_waiters(std::size_t online, pool_status status) noexcept {
  std::vector<std::pair<ready_waiter, error_code>> done;
  {
    std::lock_guard lock(life_mu_);
    if (ready_waiters_.empty()) return;
    for (auto it = ready_waiters_.begin(); it != ready_waiters_.end();) {
      error_code ec;
      bool finished = false;
      if (status == pool_status::failed) {
        ec = errc::pool_failed;
        finished = true;
      } else if (status == pool_status::stopping || status == pool_status::stopped) {
        ec = errc::terminated;
        finished = true;
      } else if (online > 0 && online >= it->min_online) {
        finished = true;
      }
      if (!finished) {
        ++it;
        continue;
      }
      done.emplace_back(std::move(*it), ec);
      it = ready_waiters_.erase(it);
    }
  }
  for (auto& [w, ec] : done) {
    if (w.timer) w.timer->cancel();
    post_completion(ex_, std::move(w.handler), ec);
  }
}

void pool_driver::drain(duration timeout,
                        asio::any_completion_handler<void(error_code, std::size_t)> h) {
  {
    std::unique_lock lock(life_mu_);
    bool terminated = false;
    std::size_t out = 0;
    {
      std::lock_guard l(mu_);
      terminated = state_.terminated();
      out = state_.claims_out();
    }
    if (drain_ || terminated) {
      lock.unlock();
      return post_completion(ex_, std::move(h), error_code(errc::terminated), out);
    }
    drain_.emplace(drain_state{std::move(h), nullptr});
    if (timeout != duration::max()) {
      drain_->timer = std::make_unique<asio::steady_timer>(ex_, timeout);
      drain_->timer->async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
        if (ec == asio::error::operation_aborted) return;
        if (auto self = weak.lock()) {
          auto& d = static_cast<pool_driver&>(*self);
          std::size_t still = 0;
          {
            std::lock_guard l(d.mu_);
            still = d.state_.claims_out();
          }
          d.end_drain(asio::error::timed_out, still);
        }
      });
    }
  }
  begin_drain();
}

// The drain's handler once (its end or its timeout, whichever comes
// first), then the pool terminates.
void pool_driver::end_drain(error_code ec, std::size_t still_claimed) noexcept {
  std::optional<drain_state> d;
  {
    std::lock_guard lock(life_mu_);
    if (!drain_ || !drain_->handler) return;
    d.emplace(std::move(*drain_));
    drain_->handler = {};
  }
  if (d->timer) d->timer->cancel();
  terminate();
  post_completion(ex_, std::move(d->handler), ec, still_claimed);
}

}  // namespace qorb::detail
