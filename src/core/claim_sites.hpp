// SPDX-License-Identifier: BSL-1.0
// Claim sites: where in the caller's code claims are made from (the
// std::source_location every claim function takes), with how long claims
// from each waited and how long they held their connection. Bounded: the
// first `capacity` sites seen have rows of their own, later ones share the
// "other" row, so a program that claims from generated code cannot grow it.
#pragma once

#include <qorb/stats.hpp>

#include <cstdint>
#include <source_location>
#include <vector>

namespace qorb::core {

class claim_sites {
 public:
  static constexpr std::uint16_t capacity = 32;
  /// The index of the row shared by sites beyond `capacity`.
  static constexpr std::uint16_t other = capacity;

  /// The row of `where` (a new one while fewer than `capacity` are used).
  std::uint16_t index(const std::source_location& where) {
    if (last_ < rows_.size() && same(rows_[last_].where, where)) return last_;
    return lookup(where);
  }
  void waited(std::uint16_t row, double seconds) noexcept { at(row).wait.record(seconds); }
  /// A claim served at once (a wait of 0, counted apart: the claim path
  /// adds one, stats() folds them into the histogram).
  void served_at_once(std::uint16_t row) noexcept { ++at(row).at_once; }
  void held(std::uint16_t row, double seconds) noexcept { at(row).hold.record(seconds); }
  /// The site of row `row`, for observers.
  std::source_location where(std::uint16_t row) const noexcept {
    return row < rows_.size() ? rows_[row].where : std::source_location{};
  }
  /// Row `row` as people read it ("other" for the shared row).
  claim_site site_of(std::uint16_t row) const {
    if (row < rows_.size()) return describe(rows_[row].where);
    claim_site out;
    out.file = "other";
    return out;
  }
  /// Every row with a claim, busiest first ("other" last).
  std::vector<claim_site_stats> stats() const;
  /// `where` as people and metrics read it.
  static claim_site describe(const std::source_location& where);

 private:
  struct entry {
    std::source_location where;
    claim_wait_histogram wait;
    claim_wait_histogram hold;
    std::uint64_t at_once = 0;
  };
  static bool same(const std::source_location& a, const std::source_location& b) noexcept {
    // Call sites are told apart by their place; the strings of one call
    // site are the same objects, so comparing pointers is enough.
    return a.line() == b.line() && a.column() == b.column() && a.file_name() == b.file_name() &&
           a.function_name() == b.function_name();
  }
  std::uint16_t lookup(const std::source_location& where);
  entry& at(std::uint16_t i) noexcept { return i < rows_.size() ? rows_[i] : other_; }

  std::vector<entry> rows_;
  entry other_;
  std::uint16_t last_ = 0;  // the row found last: most claims come from one site in a row
};

}  // namespace qorb::core
