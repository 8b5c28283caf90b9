// SPDX-License-Identifier: BSL-1.0
// The slot, continued: losing a connection (a discard, a failed check, the
// watch's end) and how soon the slot connects again.
//
//   idle --watch ends--> closed connection, counted against the backend -->
//        connecting at once (it was up for max_connection_backoff) or
//        backing_off (the streak of failures goes on)
#include "core/slot.hpp"

namespace qorb::core {

// A connection that stayed up for max_connection_backoff is replaced at
// once; one lost sooner continues the backoff streak, so a backend that
// accepts and then drops every connection is not hammered.
duration slot::loss_delay(slot_port& port) {
  const time_point now = port.now();
  const duration up = now - up_since_;
  up_since_ = now;
  if (up >= port.rules().cfg->max_connection_backoff) {
    retry_.reset();
    return duration::zero();
  }
  return retry_.next(*port.rules().cfg, port.random01());
}

void slot::reconnect_after_loss(slot_port& port) { reconnect_in(port, loss_delay(port)); }

// An idle connection's watch said it is gone: dropped and counted against
// the backend, then connected again (at once if it had been up long, else
// continuing the backoff streak).
slot_result slot::lost(slot_port& port, const std::string& why) {
  disarm(slot_timer::step);
  disarm(slot_timer::idle);
  port.close(std::move(conn_));
  port.closed(*this, close_reason::lost);
  port.dropped(*this, false, why);
  reconnect_after_loss(port);
  return {};
}

}  // namespace qorb::core
