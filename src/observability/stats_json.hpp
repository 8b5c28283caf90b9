// SPDX-License-Identifier: BSL-1.0
// stats_json: the JSON of /stats and of the /qtop/stats pushes, from a
// snapshot of pool stats. Pure: no sockets, no clock (the time the output
// is for comes in), so it is unit-tested and fuzzed on its own.
#pragma once

#include <qorb/stats.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qorb::detail::stats_json {

/// The body of `GET /stats`: `{"pools":{NAME:{...}}}` and a newline, the
/// pools in the order given (a later one replaces an earlier of the same
/// name). A backend's last error carries "seconds_ago", counted to `now`.
std::string render_stats(const std::vector<const pool_stats*>& pools,
                         std::chrono::system_clock::time_point now);

/// What a /qtop/stats push carries besides "claims": the pool's totals and
/// its backends ("sets"), as one JSON object (docs/stats.md).
std::string render_sets(const pool_stats& pool);

/// A /qtop/stats push: `claims` (served since the previous push) followed
/// by the fields of `sets`, a `render_sets` output.
std::string push_message(std::uint64_t claims, std::string_view sets);

}  // namespace qorb::detail::stats_json
