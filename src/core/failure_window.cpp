// SPDX-License-Identifier: BSL-1.0
#include "core/failure_window.hpp"

#include <algorithm>

namespace qorb::core {

failure_window::failure_window(duration span) noexcept
    : bucket_width_(std::max(duration(1), span / std::int64_t(bucket_count))) {
  index_.fill(-1);
}

std::int64_t failure_window::bucket_index(time_point now) const noexcept {
  return now.time_since_epoch() / bucket_width_;
}

void failure_window::add(time_point now) noexcept {
  const auto index = bucket_index(now);
  auto& count = counts_[std::size_t(index) % bucket_count];
  auto& held = index_[std::size_t(index) % bucket_count];
  if (held != index) {
    held = index;
    count = 0;
  }
  if (count < UINT32_MAX) ++count;
}

std::size_t failure_window::count(time_point now) const noexcept {
  const auto current = bucket_index(now);
  std::size_t total = 0;
  for (std::size_t i = 0; i < bucket_count; ++i) {
    if (index_[i] > current - std::int64_t(bucket_count) && index_[i] <= current)
      total += counts_[i];
  }
  return total;
}

}  // namespace qorb::core
