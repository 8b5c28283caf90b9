// SPDX-License-Identifier: BSL-1.0
#include "core/claim_queue.hpp"

namespace qorb::core {

void claim_queue::push(claim_node& c, bool front) noexcept {
  c.where = claim_node::phase::queued;
  if (front) {
    c.prev = nullptr;
    c.next = head_;
    (head_ ? head_->prev : tail_) = &c;
    head_ = &c;
  } else {
    c.next = nullptr;
    c.prev = tail_;
    (tail_ ? tail_->next : head_) = &c;
    tail_ = &c;
  }
  ++size_;
}

void claim_queue::remove(claim_node& c) noexcept {
  (c.prev ? c.prev->next : head_) = c.next;
  (c.next ? c.next->prev : tail_) = c.prev;
  c.prev = c.next = nullptr;
  c.where = claim_node::phase::fresh;
  --size_;
}

claim_node* claim_queue::pop_front() noexcept {
  claim_node* c = head_;
  if (c) remove(*c);
  return c;
}

claim_node* claim_queue::expired(time_point now) const noexcept {
  claim_node* c = deadlines_.top();
  return c && c->deadline.at <= now ? c : nullptr;
}

std::optional<time_point> claim_queue::next_deadline() const noexcept {
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.top_time();
}

}  // namespace qorb::core
