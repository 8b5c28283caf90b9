// SPDX-License-Identifier: BSL-1.0
// qorb_sim: the sans-I/O core (core::pool_state) driven through random
// schedules on a manual clock, with the pool's promises checked after every
// call into it. Everything a run does derives from its seed, so a failing
// seed replays exactly.
#pragma once

#include <qorb/policy.hpp>

#include "core/pool_state.hpp"

#include <cstdint>
#include <map>
#include <set>
#include <string>

namespace qorb::sim {

struct options {
  std::uint64_t events = 10000;  // random steps per seed, before the drain
  bool trace = false;            // print every step and what the core did
  /// Invariants whose violations are counted, not fatal (to look past a
  /// known one).
  std::set<std::string, std::less<>> skip;
};

/// What runs add up to, for the summary line.
struct totals {
  std::uint64_t seeds = 0, events = 0, calls = 0;
  std::uint64_t claims = 0, served = 0, try_served = 0;
  // Indexed by core::claim_outcome (pool_failed is the last).
  std::uint64_t by_outcome[std::size_t(core::claim_outcome::pool_failed) + 1] = {};
  std::uint64_t connects = 0, checks = 0, ops_failed = 0, ops_hung = 0, late_finishes = 0;
  std::uint64_t ops_ended = 0;                   // checks that said the connection ended normally
  std::uint64_t watches = 0, watches_ended = 0;  // watches started; ended (lost, or stale)
  std::map<std::string, std::uint64_t> skipped;  // violations of skipped invariants
  void add(const totals& t);
};

struct result {
  bool ok = true;
  std::string failure;  // the seed, the event, the event's text and the invariant
  totals counts;
};

/// One seed: a random policy and connector, then `opt.events` random
/// steps, terminate, the return of every handle and the end of every
/// operation; the invariants after each call into the core.
result run_seed(std::uint64_t seed, const options& opt);

}  // namespace qorb::sim
