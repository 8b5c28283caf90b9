// SPDX-License-Identifier: BSL-1.0
#include "core/claim_queue.hpp"

namespace qorb::core {

void claim_queue::push(claim_node& c, bool front) noexcept {
  c.where = claim_node::phase::queued;
  front ? waiting_.push_front(c) : waiting_.push_back(c);
}

void claim_queue::remove(claim_node& c) noexcept {
  waiting_.remove(c);
  c.where = claim_node::phase::fresh;
}

claim_node* claim_queue::pop_front() noexcept {
  claim_node* c = waiting_.front();
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
