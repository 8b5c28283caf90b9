// SPDX-License-Identifier: BSL-1.0
#include "core/slot_set.hpp"

namespace qorb::core {

slot_set::slot_set(std::uint16_t id, backend b, duration failure_span)
    : failures(failure_span),
      id_(id),
      backend_(std::move(b)),
      label_(std::make_shared<backend_label>(
          backend_label{backend_.name, qorb::to_string(backend_.address)})) {}

std::uint64_t slot_set::next_slot_id() noexcept {
  return (std::uint64_t(id_) << 48) | (next_slot_++ & 0xffffffffffffULL);
}

void slot_set::adopt(slot& s) noexcept {
  slots_.push_front(s);
  ++by_state_[std::size_t(s.state())];
}

void slot_set::forget(slot& s) noexcept {
  slots_.remove(s);
  --by_state_[std::size_t(s.state())];
}

void slot_set::moved(slot& s, slot_state from) noexcept {
  --by_state_[std::size_t(from)];
  ++by_state_[std::size_t(s.state())];
  if (from == slot_state::idle) idle_.remove(s);
  if (s.state() == slot_state::idle) idle_.push_front(s);
}

slot* slot_set::shrink_victim() const noexcept {
  for (slot* s = slots_.front(); s; s = slots_.next(*s)) {
    if (s->state() == slot_state::backing_off || s->state() == slot_state::connecting) return s;
  }
  // Then one replacing a connection that ended normally: about to hold one
  // again, but holding none yet.
  for (slot* s = slots_.front(); s; s = slots_.next(*s)) {
    if (s->state() == slot_state::replacing) return s;
  }
  return idle_.back();  // unused the longest
}

set_counts slot_set::counts() const noexcept {
  return {connecting(), unclaimed(), checking(), claimed(), total_claims};
}

backend_stats slot_set::stats(time_point now) const {
  backend_stats b;
  b.address = backend_.address;
  b.connecting = connecting();
  b.unclaimed = unclaimed();
  b.checking = checking();
  b.claimed = claimed();
  b.total_claims = total_claims;
  b.connect_failures = connect_failures;
  b.check_failures = check_failures;
  b.discards = discards;
  b.failures_reported = failures_reported;
  b.connections = connections;
  b.recent_failures = failures.count(now);
  b.online = online();
  b.removed = removed;
  b.failed_permanently = connect_refused;
  if (!b.online) b.offline_for = now - offline_since;
  // Backing off: the soonest retry of a slot waiting to reconnect.
  for (const slot* s = slots_.front(); s; s = slots_.next(*s)) {
    if (s->state() != slot_state::backing_off) continue;
    const auto at = s->wake_at();
    if (!at) continue;
    const duration left = *at > now ? *at - now : duration::zero();
    if (!b.retry_in || left < *b.retry_in) b.retry_in = left;
  }
  return b;
}

}  // namespace qorb::core
