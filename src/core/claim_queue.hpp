// SPDX-License-Identifier: BSL-1.0
// Claims that wait for a connection: first come, first served, each with a
// deadline. Claims whose on_acquire runs keep their deadline here too, so a
// deadline holds whatever on_acquire does.
#pragma once

#include <qorb/detail/core_port.hpp>

#include "core/deadline_heap.hpp"
#include "core/intrusive_list.hpp"

#include <cstddef>
#include <optional>

namespace qorb::core {

class claim_queue {
 public:
  bool empty() const noexcept { return waiting_.empty(); }
  /// Claims waiting (not those acquiring).
  std::size_t size() const noexcept { return waiting_.size(); }
  claim_node* front() const noexcept { return waiting_.front(); }

  /// At the back; `front`: at the head (a claim whose on_acquire failed
  /// goes first in line again).
  void push(claim_node& c, bool front) noexcept;
  void remove(claim_node& c) noexcept;
  claim_node* pop_front() noexcept;

  /// Deadlines of waiting and acquiring claims.
  void watch(claim_node& c) { deadlines_.schedule(c, c.deadline.at); }
  void unwatch(claim_node& c) noexcept { deadlines_.cancel(c); }
  /// A claim whose deadline is at or before `now`, or null.
  claim_node* expired(time_point now) const noexcept;
  std::optional<time_point> next_deadline() const noexcept;

 private:
  intrusive_list<claim_node, &claim_node::in_queue> waiting_;
  deadline_heap<claim_node, &claim_node::deadline> deadlines_;
};

}  // namespace qorb::core
