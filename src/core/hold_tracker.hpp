// SPDX-License-Identifier: BSL-1.0
// Who holds the pool's connections: every claimed slot in claim order
// (oldest first), when it was claimed and where from, and which holds have
// outlived policy::hold_warning (HikariCP's leak detection). A handle is
// never lost in C++ (RAII returns it), but one kept for minutes is the
// real leak: this finds it.
#pragma once

#include <qorb/detail/core_port.hpp>

#include "core/intrusive_list.hpp"
#include "core/slot.hpp"

#include <cstddef>
#include <optional>

namespace qorb::core {

class hold_tracker {
 public:
  /// `s` was handed to its claim (s.held has its id and site) at `at`.
  void begin(slot& s, time_point at) noexcept {
    s.held.since = at;
    s.held.timed = true;
    s.held.warned = false;
    held_.push_back(s);
    if (unwarned_ == nullptr) unwarned_ = &s;
  }
  /// `s` came back (or closed while claimed). Returns how long it was held.
  duration end(slot& s, time_point at) noexcept {
    if (!held_.contains(s)) return duration::zero();
    if (unwarned_ == &s) unwarned_ = held_.next(s);
    held_.remove(s);
    return at > s.held.since ? at - s.held.since : duration::zero();
  }
  bool holds(const slot& s) const noexcept { return held_.contains(s); }
  std::size_t size() const noexcept { return held_.size(); }

  /// When the oldest hold not warned about outlives `limit` (none: no hold
  /// waits for a warning).
  std::optional<time_point> next_warning(std::optional<duration> limit) const noexcept {
    if (!limit || unwarned_ == nullptr) return std::nullopt;
    return after(unwarned_->held.since, *limit);
  }
  /// Calls `f(slot&)` once for each hold older than `limit` at `now` not
  /// warned about yet, oldest first.
  template <class F>
  void warn_due(time_point now, std::optional<duration> limit, F&& f) {
    while (limit && unwarned_ != nullptr && after(unwarned_->held.since, *limit) <= now) {
      slot& s = *unwarned_;
      s.held.warned = true;
      unwarned_ = held_.next(s);
      f(s);
    }
  }
  /// The limit changed: holds not warned about are looked at again.
  void rewind() noexcept {
    unwarned_ = held_.front();
    while (unwarned_ != nullptr && unwarned_->held.warned) unwarned_ = held_.next(*unwarned_);
  }
  /// Calls `f(const slot&)` on every hold, oldest first, until it returns
  /// false.
  template <class F>
  void each(F&& f) const {
    for (const slot* s = held_.front(); s != nullptr; s = held_.next(*s)) {
      if (!f(*s)) return;
    }
  }

 private:
  intrusive_list<slot, &slot::in_held> held_;
  slot* unwarned_ = nullptr;  // the oldest hold not warned about yet
};

}  // namespace qorb::core
