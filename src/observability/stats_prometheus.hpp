// SPDX-License-Identifier: BSL-1.0
// stats_prometheus: the Prometheus text of /metrics, from a snapshot of
// pool stats. Pure: no sockets, no clock, so it is unit-tested and fuzzed
// on its own. `families` is the one place the metrics are defined: both
// /metrics (`render`) and the user's prometheus-cpp registry
// (include/qorb/metrics.hpp, observability/metrics.cpp) use it, so a family
// added there appears in both.
#pragma once

#include <qorb/stats.hpp>

#include <prometheus/metric_family.h>

#include <string>
#include <vector>

namespace qorb::detail::stats_prometheus {

/// The body of `GET /metrics`: the text exposition format (0.0.4), metrics
/// `qorb_*` labelled by `pool` and `backend`, for the pools given.
std::string render(const std::vector<const pool_stats*>& pools);

/// The metric families of `render`, before serialisation: every family,
/// name, help text, label and value of /metrics for the pools given (a
/// family with no series is left out).
std::vector<prometheus::MetricFamily> families(const std::vector<const pool_stats*>& pools);

}  // namespace qorb::detail::stats_prometheus
