// SPDX-License-Identifier: BSL-1.0
#include "core/backoff.hpp"

#include "core/environment.hpp"

#include <algorithm>

namespace qorb::core {

duration backoff::next(const set_config& cfg, double random01) noexcept {
  if (failures_ < 64) ++failures_;
  duration delay = cfg.min_connection_backoff;
  for (unsigned i = 1; i < failures_ && delay < cfg.max_connection_backoff; ++i) {
    if (delay > cfg.max_connection_backoff / 2) {
      delay = cfg.max_connection_backoff;  // doubling would pass it (or overflow)
      break;
    }
    delay *= 2;
  }
  delay = std::min(delay, cfg.max_connection_backoff);
  const duration extra = scaled(cfg.spread, random01);
  // Saturate: a policy may set the maximum to duration::max().
  if (delay > duration::max() - extra) return duration::max();
  return delay + extra;
}

}  // namespace qorb::core
