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
  s.set_prev = nullptr;
  s.set_next = head_;
  if (head_) head_->set_prev = &s;
  head_ = &s;
  ++size_;
  ++by_state_[std::size_t(s.state())];
}

void slot_set::forget(slot& s) noexcept {
  (s.set_prev ? s.set_prev->set_next : head_) = s.set_next;
  if (s.set_next) s.set_next->set_prev = s.set_prev;
  s.set_prev = s.set_next = nullptr;
  --size_;
  --by_state_[std::size_t(s.state())];
}

void slot_set::moved(slot& s, slot_state from) noexcept {
  --by_state_[std::size_t(from)];
  ++by_state_[std::size_t(s.state())];
  if (from == slot_state::idle) {
    (s.idle_prev ? s.idle_prev->idle_next : idle_head_) = s.idle_next;
    (s.idle_next ? s.idle_next->idle_prev : idle_tail_) = s.idle_prev;
    s.idle_prev = s.idle_next = nullptr;
  }
  if (s.state() == slot_state::idle) {
    s.idle_prev = nullptr;
    s.idle_next = idle_head_;
    (idle_head_ ? idle_head_->idle_prev : idle_tail_) = &s;
    idle_head_ = &s;
  }
}

slot* slot_set::shrink_victim() const noexcept {
  for (slot* s = head_; s; s = s->set_next) {
    if (s->state() == slot_state::backing_off || s->state() == slot_state::connecting) return s;
  }
  // Then one replacing a connection that ended normally: about to hold one
  // again, but holding none yet.
  for (slot* s = head_; s; s = s->set_next) {
    if (s->state() == slot_state::replacing) return s;
  }
  return idle_tail_;
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
  b.recent_failures = failures.count(now);
  b.online = online();
  b.removed = removed;
  return b;
}

}  // namespace qorb::core
