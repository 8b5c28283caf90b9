// SPDX-License-Identifier: BSL-1.0
#include "core/priority_list.hpp"

namespace qorb::core {

// A set's score lives in the heap while it is in the list, and in its hook
// (priority.score) while it is not; the hook is kept in step on each change.

void priority_list::insert(slot_set& set) {
  if (heap::contains(set)) return;
  heap_.push(set, set.priority.score);
}

void priority_list::remove(slot_set& set) noexcept {
  if (!heap::contains(set)) return;
  set.priority.score = heap_.erase(set);
}

void priority_list::served(slot_set& set) noexcept {
  set.priority.score += serve_penalty;
  if (heap::contains(set)) heap_.raise(set, set.priority.score);
}

void priority_list::exhausted(slot_set& set) noexcept {
  remove(set);
  set.priority.score += exhausted_penalty;
}

void priority_list::rescored() noexcept {
  heap_.rekey_all([](const slot_set& set) { return set.priority.score; });
}

}  // namespace qorb::core
