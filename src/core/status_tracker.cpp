// SPDX-License-Identifier: BSL-1.0
#include "core/status_tracker.hpp"

namespace qorb::core {

std::optional<pool_status> status_tracker::update(const policy& p, const status_inputs& in,
                                                  time_point now) noexcept {
  const pool_status before = status_;
  if (in.online > 0) {
    offline_since_.reset();
  } else if (!offline_since_) {
    offline_since_ = now;
  }
  if (in.terminated) {
    status_ = in.claims_out ? pool_status::stopping : pool_status::stopped;
  } else if (in.draining) {
    status_ = pool_status::stopping;
  } else if (in.online > 0) {
    status_ = pool_status::running;
  } else if (in.known > 0 && in.refused == in.known) {
    status_ = pool_status::failed;  // retrying will not help: at once
  } else if (status_ != pool_status::failed && now >= after(*offline_since_, p.failed_after) &&
             (in.known == 0 || in.failing == in.known)) {
    status_ = pool_status::failed;
  }
  if (status_ == before) return std::nullopt;
  return before;
}

std::optional<time_point> status_tracker::deadline(const policy& p) const noexcept {
  if (!offline_since_ || status_ == pool_status::failed || status_ == pool_status::stopping ||
      status_ == pool_status::stopped) {
    return std::nullopt;
  }
  return after(*offline_since_, p.failed_after);
}

}  // namespace qorb::core
