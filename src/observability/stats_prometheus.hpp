// SPDX-License-Identifier: BSL-1.0
// stats_prometheus: the Prometheus text of /metrics, from a snapshot of
// pool stats. Pure: no sockets, no clock, so it is unit-tested and fuzzed
// on its own.
#pragma once

#include <qorb/stats.hpp>

#include <string>
#include <vector>

namespace qorb::detail::stats_prometheus {

/// The body of `GET /metrics`: the text exposition format (0.0.4), metrics
/// `qorb_*` labelled by `pool` and `backend`, for the pools given.
std::string render(const std::vector<const pool_stats*>& pools);

}  // namespace qorb::detail::stats_prometheus
