// SPDX-License-Identifier: BSL-1.0
// The slot, continued: its named timers, a connection's lifetime and
// eviction, and the names of its states and operations.
//
//   timer fires --> lifetime due: idle --> closed and replaced (replacing: still online)
//                                 else --> replaced when next ready (never while claimed)
//               --> idle due:     idle --> the pool closes it if it holds more idle
//                                          connections than it keeps; else re-armed
//               --> step due:     what the state waited for (slot.cpp: timed_out)
#include "core/environment.hpp"
#include "core/slot.hpp"

#include <algorithm>

namespace qorb::core {

std::optional<duration> draw_lifetime(const set_config& cfg, double random01) noexcept {
  if (!cfg.max_lifetime) return std::nullopt;
  const duration max = *cfg.max_lifetime;
  const duration jitter = cfg.max_lifetime_jitter ? *cfg.max_lifetime_jitter : max / 10;
  return max - scaled(std::min(jitter, max), random01);
}

std::optional<time_point> slot::wake_at() const noexcept {
  const time_point t = *std::min_element(timers_.begin(), timers_.end());
  if (t == never) return std::nullopt;
  return t;
}

bool slot::holds_connection() const noexcept {
  switch (state_) {
    case slot_state::idle:
    case slot_state::checking:
    case slot_state::acquiring:
    case slot_state::abandoned:
    case slot_state::claimed:
    case slot_state::recycling:
    case slot_state::cooling:
    case slot_state::ready:
      return true;
    default:
      return false;
  }
}

bool slot::due(slot_timer t, time_point now) noexcept {
  if (timers_[std::size_t(t)] > now) return false;
  disarm(t);
  return true;
}

slot_result slot::on_timer(slot_port& port) {
  const time_point now = port.now();
  if (due(slot_timer::lifetime, now) && state_ == slot_state::idle) return retire(port);
  if (due(slot_timer::idle, now) && state_ == slot_state::idle) {
    if (port.idle_expired(*this)) return {};  // the pool closed the slot
    wake(port, after(now, *port.rules().cfg->idle_timeout), slot_timer::idle);
  }
  if (due(slot_timer::step, now)) return timed_out(port);
  return {};
}

// The connection goes, counted for why; a new one comes at once (the slot
// stays online meanwhile, as for a normal end: the backend did nothing
// wrong), unless the slot was to hold it for a backoff after a failed
// on_acquire: then it waits that out first, as any reconnect would.
slot_result slot::retire(slot_port& port) {
  unwatch(port);
  disarm(slot_timer::step);
  if (conn_) port.close(std::move(conn_));
  port.closed(*this, retire_why_);
  if (hold_until_ != time_point{} && hold_until_ > port.now()) {
    reconnect_in(port, hold_until_ - port.now());
    return {};
  }
  hold_until_ = {};
  begin_connect(port, slot_state::replacing);
  return {};
}

slot_result slot::evict(slot_port& port) {
  if (!holds_connection()) return {};
  retire_why_ = close_reason::evicted;
  retire_at_ = time_point::min();
  if (state_ == slot_state::idle) return retire(port);
  return {};  // when it is next ready (ready() and recycle() check)
}

const char* to_string(slot_state s) noexcept {
  switch (s) {
    case slot_state::backing_off:
      return "backing_off";
    case slot_state::connecting:
      return "connecting";
    case slot_state::idle:
      return "unclaimed";
    case slot_state::checking:
      return "checking";
    case slot_state::acquiring:
      return "acquiring";
    case slot_state::abandoned:
      return "abandoned";
    case slot_state::claimed:
      return "claimed";
    case slot_state::recycling:
      return "recycling";
    case slot_state::cooling:
      return "cooling";
    case slot_state::replacing:
      return "replacing";
    case slot_state::ready:
      return "ready";
    case slot_state::closed:
    case slot_state::count_:
      break;
  }
  return "closed";
}

const char* to_string(op_kind k) noexcept {
  switch (k) {
    case op_kind::connect:
      return "connect";
    case op_kind::is_valid:
      return "health check";
    case op_kind::on_acquire:
      return "on_acquire";
    case op_kind::on_recycle:
      return "on_recycle";
    case op_kind::watch:
      return "watch";
  }
  return "operation";
}

}  // namespace qorb::core
