// SPDX-License-Identifier: BSL-1.0
// Claim sites: where in the caller's code claims are made from (the
// std::source_location every claim function takes), with how long claims
// from each waited and how long they held their connection. Bounded: the
// first `capacity` sites seen have rows of their own, later ones share the
// "other" row, so a program that claims from generated code cannot grow it.
#pragma once

#include <qorb/stats.hpp>

#include <bit>
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
    if (keyed && key(where) == last_key_) return last_row_;
    return lookup(where);
  }
  /// A claim from `where` was served at once (a wait of 0, counted apart:
  /// the claim path adds one, stats() folds them into the histogram); its
  /// row. One comparison when the site is the last one seen.
  std::uint16_t served_at_once(const std::source_location& where) {
    if (!keyed || key(where) != last_key_) lookup(where);
    ++last_->at_once;
    return last_row_;
  }
  void waited(std::uint16_t row, double seconds) noexcept { at(row).wait.record(seconds); }
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
  // A call site's identity: libstdc++ and libc++ hold one pointer to the
  // site's static record, so the pointer is the key. Elsewhere there is no
  // key: every claim looks its site up (`same`).
  static constexpr bool keyed = sizeof(std::source_location) == sizeof(const void*);
  static const void* key(const std::source_location& where) noexcept {
    if constexpr (keyed) {
      return std::bit_cast<const void*>(where);
    } else {
      return nullptr;
    }
  }
  static bool same(const std::source_location& a, const std::source_location& b) noexcept {
    // Call sites are told apart by their place; the strings of one call
    // site are the same objects, so comparing pointers is enough.
    return a.line() == b.line() && a.column() == b.column() && a.file_name() == b.file_name() &&
           a.function_name() == b.function_name();
  }
  std::uint16_t lookup(const std::source_location& where);
  entry& at(std::uint16_t i) noexcept { return i < rows_.size() ? rows_[i] : other_; }

  std::vector<entry> rows_;  // capacity() reserved at once: `last_` stays valid
  entry other_;
  // The site found last (most claims come from one site in a row): its key
  // (none yet: a value no site has), its row and its entry.
  const void* last_key_ = &last_key_;
  std::uint16_t last_row_ = other;
  entry* last_ = &other_;
};

}  // namespace qorb::core
