// SPDX-License-Identifier: BSL-1.0
// A backend's recent failures: its badness score.
#pragma once

#include <qorb/detail/core_port.hpp>

#include <array>
#include <cstddef>
#include <cstdint>

namespace qorb::core {

/// Failures over a sliding window of `span`, kept in 10 buckets, so the
/// count forgets old failures a bucket at a time and costs no allocation.
class failure_window {
 public:
  static constexpr std::size_t bucket_count = 10;
  explicit failure_window(duration span) noexcept;
  void add(time_point now) noexcept;
  std::size_t count(time_point now) const noexcept;

 private:
  std::int64_t bucket_index(time_point now) const noexcept;
  duration bucket_width_;
  std::array<std::uint32_t, bucket_count> counts_{};
  std::array<std::int64_t, bucket_count> index_{};  // which bucket-time each holds
};

}  // namespace qorb::core
