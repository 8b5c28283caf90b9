// SPDX-License-Identifier: BSL-1.0
// A live view of an echo_workload: an interactive terminal view (ncurses)
// like the original's, or plain text lines when there is no terminal.
//
// Interactive keys: Tab adds a claimer, Shift-Tab removes one, Up/Down
// select a claimer, Left/Right change its hold time by 100 ms, q quits.
#pragma once

#include "common/echo_workload.hpp"

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace qorb::examples {

struct view_config {
  /// The first line of the view.
  std::string title;
  /// ncurses when true (plain text after all when the terminal cannot be
  /// used, e.g. TERM unset); plain text lines otherwise.
  bool interactive = true;
  /// Plain mode: how often the table is printed (events print at once).
  std::chrono::milliseconds plain_period{std::chrono::seconds(1)};
};

/// Whether standard input and output are both terminals.
bool have_terminal();

/// The backend table: a header line, then one line per backend, with its
/// claims per second since `before` (none when it is null).
std::vector<std::string> backend_table(const workload_snapshot& now,
                                       const workload_snapshot* before);

/// "[t=  12.3s] " for a time point of the workload.
std::string time_label(const echo_workload& w, steady_clock::time_point at);

class workload_view {
 public:
  /// Interactive: takes over the terminal until `close` or destruction.
  workload_view(echo_workload& workload, view_config config);
  ~workload_view();
  workload_view(const workload_view&) = delete;
  workload_view& operator=(const workload_view&) = delete;

  /// Waits up to `wait` for a key (interactive; plain mode just waits),
  /// acts on it, and redraws or prints what is due. Returns false once the
  /// user pressed q.
  bool step(std::chrono::milliseconds wait = std::chrono::milliseconds(50));

  /// Gives the terminal back (interactive). Idempotent.
  void close();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace qorb::examples
