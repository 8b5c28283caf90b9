// SPDX-License-Identifier: BSL-1.0
// Every claim outcome in one table: the name it is counted and printed by,
// the text logs and probes give as its reason, the stats counter it adds
// to, and the qorb::errc a claimer gets. The core's counters, the driver's
// error codes, the log's reasons and the simulator read it; adding an
// outcome is the enum (effects.hpp), a row here and its counter.
#pragma once

#include <qorb/error.hpp>
#include <qorb/stats.hpp>

#include "core/effects.hpp"

#include <array>
#include <cstddef>
#include <cstdint>

namespace qorb::core {

struct claim_outcome_info {
  claim_outcome outcome;
  const char* name;    // as counted and printed: "all_claims_used"
  const char* reason;  // in logs and probes: "all claims used"
  /// The claim_failure_stats counter it adds to; none for served.
  std::uint64_t claim_failure_stats::*counter;
  /// What the claimer gets: a qorb::errc, none (served), or
  /// operation_aborted (cancelled, as Asio's own operations complete).
  enum class code_kind : std::uint8_t { none, errc_value, aborted } kind;
  errc code;
};

using ck = claim_outcome_info::code_kind;
inline constexpr std::array<claim_outcome_info, 8> claim_outcomes{{
    {claim_outcome::served, "served", "served", nullptr, ck::none, errc{}},
    {claim_outcome::no_backends, "no_backends", "no backends", &claim_failure_stats::no_backends,
     ck::errc_value, errc::no_backends},
    {claim_outcome::no_backends_online, "no_backends_online", "no backends online",
     &claim_failure_stats::no_backends_online, ck::errc_value, errc::no_backends_online},
    {claim_outcome::all_claims_used, "all_claims_used", "all claims used",
     &claim_failure_stats::all_claims_used, ck::errc_value, errc::all_claims_used},
    {claim_outcome::terminated, "terminated", "pool terminated", &claim_failure_stats::terminated,
     ck::errc_value, errc::terminated},
    {claim_outcome::cancelled, "cancelled", "cancelled", &claim_failure_stats::cancelled,
     ck::aborted, errc{}},
    {claim_outcome::acquire_failed, "acquire_failed", "on_acquire failed",
     &claim_failure_stats::acquire_failed, ck::errc_value, errc::acquire_failed},
    {claim_outcome::pool_failed, "pool_failed", "pool failed", &claim_failure_stats::pool_failed,
     ck::errc_value, errc::pool_failed},
}};

/// The row of `o`.
constexpr const claim_outcome_info& info(claim_outcome o) noexcept {
  return claim_outcomes[std::size_t(o)];
}

constexpr bool rows_in_enum_order() noexcept {
  for (std::size_t i = 0; i < claim_outcomes.size(); ++i) {
    if (std::size_t(claim_outcomes[i].outcome) != i) return false;
  }
  return true;
}
static_assert(rows_in_enum_order(), "one row per claim_outcome, in the enum's order");
static_assert(std::size_t(claim_outcome::pool_failed) + 1 == claim_outcomes.size(),
              "a row for every claim_outcome");

}  // namespace qorb::core
