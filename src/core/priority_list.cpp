// SPDX-License-Identifier: BSL-1.0
#include "core/priority_list.hpp"

#include <utility>

namespace qorb::core {

void priority_list::place(std::size_t i, entry e) noexcept {
  heap_[i] = e;
  e.set->priority.pos = i;
}

void priority_list::insert(slot_set& set) {
  if (set.priority.pos != priority_hook::absent) return;
  heap_.push_back({set.priority.score, &set});
  set.priority.pos = heap_.size() - 1;
  up(heap_.size() - 1);
}

void priority_list::remove(slot_set& set) noexcept {
  const std::size_t pos = set.priority.pos;
  if (pos == priority_hook::absent) return;
  set.priority.score = heap_[pos].score;
  set.priority.pos = priority_hook::absent;
  const entry last = heap_.back();
  heap_.pop_back();
  if (pos == heap_.size()) return;
  place(pos, last);
  up(pos);
  down(last.set->priority.pos);
}

void priority_list::served(slot_set& set) noexcept {
  const std::size_t pos = set.priority.pos;
  if (pos == priority_hook::absent) {
    set.priority.score += serve_penalty;
    return;
  }
  heap_[pos].score += serve_penalty;
  set.priority.score = heap_[pos].score;
  down(pos);
}

void priority_list::exhausted(slot_set& set) noexcept {
  remove(set);
  set.priority.score += exhausted_penalty;
}

void priority_list::rescored() noexcept {
  for (auto& e : heap_) e.score = e.set->priority.score;
  for (std::size_t i = heap_.size() / 2; i-- > 0;) down(i);
}

void priority_list::up(std::size_t i) noexcept {
  const entry e = heap_[i];
  while (i > 0) {
    const std::size_t parent = (i - 1) / 2;
    if (!(e.score < heap_[parent].score)) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, e);
}

void priority_list::down(std::size_t i) noexcept {
  const entry e = heap_[i];
  const std::size_t n = heap_.size();
  for (;;) {
    std::size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && heap_[child + 1].score < heap_[child].score) ++child;
    if (!(heap_[child].score < e.score)) break;
    place(i, heap_[child]);
    i = child;
  }
  place(i, e);
}

}  // namespace qorb::core
