// SPDX-License-Identifier: BSL-1.0
#include "core/claim_sites.hpp"

#include <algorithm>
#include <string_view>

namespace qorb::core {

std::uint16_t claim_sites::lookup(const std::source_location& where) {
  std::size_t i = 0;
  while (i < rows_.size() && !same(rows_[i].where, where)) ++i;
  if (i == rows_.size() && rows_.size() < capacity) {
    if (rows_.empty()) rows_.reserve(capacity);
    rows_.push_back({.where = where, .wait = {}, .hold = {}, .at_once = 0});
  }
  last_key_ = key(where);
  last_row_ = i < rows_.size() ? std::uint16_t(i) : other;
  last_ = &at(last_row_);
  return last_row_;
}

claim_site claim_sites::describe(const std::source_location& where) {
  claim_site out;
  out.file = where.file_name();
  out.line = where.line();
  out.function = where.function_name();
  return out;
}

std::vector<claim_site_stats> claim_sites::stats() const {
  std::vector<claim_site_stats> out;
  out.reserve(rows_.size() + 1);
  // Waits of 0 were counted apart: into the first bucket.
  const auto waits = [](const entry& r) {
    claim_wait_histogram h = r.wait;
    h.counts[0] += r.at_once;
    h.count += r.at_once;
    return h;
  };
  for (const entry& r : rows_) {
    if (r.wait.count == 0 && r.hold.count == 0 && r.at_once == 0) continue;
    out.push_back({.site = describe(r.where), .other = false, .wait = waits(r), .hold = r.hold});
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.wait.count > b.wait.count; });
  if (other_.wait.count != 0 || other_.hold.count != 0 || other_.at_once != 0) {
    out.push_back(
        {.site = site_of(other), .other = true, .wait = waits(other_), .hold = other_.hold});
  }
  return out;
}

}  // namespace qorb::core
