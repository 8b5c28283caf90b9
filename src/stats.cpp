// SPDX-License-Identifier: BSL-1.0
// qorb: the names of stats' enumerations, as /stats, /metrics and logs
// print them.
#include <qorb/stats.hpp>

namespace qorb {

const char* to_string(pool_status s) noexcept {
  switch (s) {
    case pool_status::starting:
      return "starting";
    case pool_status::running:
      return "running";
    case pool_status::failed:
      return "failed";
    case pool_status::stopping:
      return "stopping";
    case pool_status::stopped:
      return "stopped";
  }
  return "unknown";
}

const char* to_string(close_reason r) noexcept {
  switch (r) {
    case close_reason::lifetime:
      return "lifetime";
    case close_reason::idle:
      return "idle";
    case close_reason::evicted:
      return "evicted";
    case close_reason::check_failed:
      return "check_failed";
    case close_reason::recycle_failed:
      return "recycle_failed";
    case close_reason::discarded:
      return "discarded";
    case close_reason::lost:
      return "lost";
    case close_reason::ended:
      return "ended";
    case close_reason::removed:
      return "removed";
    case close_reason::resized:
      return "resized";
    case close_reason::terminated:
      return "terminated";
  }
  return "unknown";
}

}  // namespace qorb
