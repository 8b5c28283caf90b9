// SPDX-License-Identifier: BSL-1.0
// The demo's story (when the kill, the DNS change and the etcd steps
// happened) and its summary at the end: the table per backend and the
// figures that say whether the pool behaved.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/backend_state_log.hpp"
#include "common/echo_workload.hpp"
#include "servers.hpp"

namespace qorb::demo {

using steady_clock = std::chrono::steady_clock;

inline double seconds(steady_clock::time_point from, steady_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

inline long long millis(steady_clock::time_point from, steady_clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

struct story {
  steady_clock::time_point start;
  std::optional<steady_clock::time_point> killed, dns_changed;
  bool dns_attempted = false;
  bool etcd = false;  // dns_changed is then when echo004 started registering
  std::optional<steady_clock::time_point> stopped_clean;  // etcd: echo003's SIGTERM
  std::optional<steady_clock::time_point> registered;     // etcd: echo004 said `registered`
  std::string failure;                                    // why a step could not be done
  // When the pool logged a backend online or offline, heard as it logged it.
  std::shared_ptr<examples::backend_state_log> pool_said;
};

// A claim handed a connection more than this after the kill, whose write or
// echo then failed, met a dead connection the pool could have known about:
// a dead-connection claim (issue 20). Failures of claims handed out before
// the kill are connections that died while claimed, not counted.
constexpr std::chrono::milliseconds dead_grace{20};

// Prints the table and the figures (the headline figures' lines also go
// into `headlines`, for the picture); returns the reasons the story did not
// happen (empty: it did).
std::vector<std::string> summarize(const examples::workload_snapshot& s,
                                   const std::vector<echo_process>& echo, const story& st,
                                   std::vector<std::string>& headlines);

}  // namespace qorb::demo
