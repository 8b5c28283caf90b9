// SPDX-License-Identifier: BSL-1.0
// The pool's observations as a pool_observer's events: numbered under the
// pool's lock, delivered in that order by one thread at a time with no lock
// held (as the status callbacks in lifecycle.cpp), each hook's exception
// logged and dropped.
#include <qorb/observer.hpp>

#include "core/claim_outcomes.hpp"
#include "pool/pool_driver.hpp"

#include <boost/asio/error.hpp>

#include <exception>
#include <type_traits>

namespace qorb::detail {

namespace {

using kind = core::observation::kind;
using steady_time = std::chrono::steady_clock::time_point;

std::string_view name_of(const core::observation& o) {
  return o.set ? std::string_view(o.set->name) : std::string_view();
}
std::string_view address_of(const core::observation& o) {
  return o.set ? std::string_view(o.set->address) : std::string_view();
}

// An event of type Event, from what the core observed.
template <class Event>
Event event_of(std::string_view pool, steady_time at, const core::observation& o) {
  Event e;
  e.pool = pool;
  e.at = at;
  if constexpr (std::is_base_of_v<claim_event, Event>) {
    e.claim = o.claim;
    e.site = o.site;
  } else if constexpr (std::is_same_v<Event, status_changed_event>) {
    e.from = o.status_from;
    e.to = o.status_to;
  } else {
    e.backend = name_of(o);
    e.address = address_of(o);
    if constexpr (std::is_same_v<Event, backend_event>) {
      e.online_backends = o.count;
    } else {
      e.slot = o.slot;
    }
  }
  return e;
}

}  // namespace

void pool_driver::set_observer(std::shared_ptr<pool_observer> o) {
  // Under mu_: an event after this call is numbered with the new observer
  // in place (and records the per-claim observations for it).
  std::lock_guard lock(mu_);
  std::lock_guard l(observer_mu_);
  observing_.store(o != nullptr, std::memory_order_relaxed);
  observer_ = std::move(o);
}

// Whichever thread finds the next number delivers it, and every later one
// already there; the others leave theirs to it. The observer is read at
// delivery: once removed, nothing more reaches it.
void pool_driver::deliver_observed(core::effects& fx, const observed_batch& batch) noexcept {
  std::unique_lock lock(observer_mu_);
  observed_pending_.emplace(batch.seq, std::make_pair(batch.at, std::move(fx.seen)));
  if (observed_delivering_) return;
  observed_delivering_ = true;
  for (auto it = observed_pending_.find(observed_next_); it != observed_pending_.end();
       it = observed_pending_.find(observed_next_)) {
    auto [at, seen] = std::move(it->second);
    observed_pending_.erase(it);
    ++observed_next_;
    const std::shared_ptr<pool_observer> o = observer_;
    if (!o) continue;
    lock.unlock();
    for (const auto& one : seen) call_user("an observer's hook", [&] { notify(*o, one, at); });
    lock.lock();
  }
  observed_delivering_ = false;
}

void pool_driver::notify(pool_observer& o, const core::observation& seen, steady_time at) const {
  const std::string_view pool = name_;
  switch (seen.what) {
    case kind::claim_started:
      return o.on_claim_started(event_of<claim_started_event>(pool, at, seen));
    case kind::claim_served: {
      auto e = event_of<claim_served_event>(pool, at, seen);
      e.backend = name_of(seen);
      e.address = address_of(seen);
      e.slot = seen.slot;
      return o.on_claim_served(e);
    }
    case kind::claim_failed: {
      auto e = event_of<claim_failed_event>(pool, at, seen);
      // A reason instead of an outcome: try_claim found no idle connection.
      e.error = seen.reason.empty() ? to_error(core::claim_outcome(seen.count))
                                    : error_code(asio::error::would_block);
      return o.on_claim_failed(e);
    }
    case kind::handle_returned:
      // A discard is heard as `discarded`, with its reason, next.
      if (!seen.flag) o.on_released(event_of<released_event>(pool, at, seen));
      return;
    case kind::discarded: {
      auto e = event_of<discarded_event>(pool, at, seen);
      e.reason = seen.reason;
      return o.on_discarded(e);
    }
    case kind::op_started:
      if (seen.op != core::op_kind::connect) return;
      return o.on_connect_started(event_of<connect_started_event>(pool, at, seen));
    case kind::op_succeeded:
      if (seen.op != core::op_kind::connect) return;
      return o.on_connect_succeeded(event_of<connect_succeeded_event>(pool, at, seen));
    case kind::op_failed: {
      if (seen.op != core::op_kind::connect) return;
      auto e = event_of<connect_failed_event>(pool, at, seen);
      e.error = seen.flag ? std::string_view("timed out") : std::string_view(seen.reason);
      e.timed_out = seen.flag;
      e.permanent = seen.count == 1;
      e.retry_in = seen.delay;
      return o.on_connect_failed(e);
    }
    case kind::closed: {
      auto e = event_of<connection_closed_event>(pool, at, seen);
      e.reason = seen.closed_for;
      return o.on_connection_closed(e);
    }
    case kind::set_online:
      // (Also observed, traced, when only "has an unclaimed slot" flips.)
      if (seen.first) o.on_backend_online(event_of<backend_event>(pool, at, seen));
      return;
    case kind::set_offline:
      if (seen.first) o.on_backend_offline(event_of<backend_event>(pool, at, seen));
      return;
    case kind::status_changed:
      return o.on_status_changed(event_of<status_changed_event>(pool, at, seen));
    default:
      return;  // not an observer's event (queued, states, rebalances, ...)
  }
}

}  // namespace qorb::detail
