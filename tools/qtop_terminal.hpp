// SPDX-License-Identifier: BSL-1.0
// qtop's terminal, through curses: it draws what the view model composed
// (qtop_view.hpp) and reads the keys; curses stays in qtop_terminal.cpp.
#pragma once

#include "qtop_view.hpp"

namespace qtop {

class terminal {
 public:
  enum class key { none, quit, resize, other };

  terminal();
  ~terminal();
  terminal(const terminal&) = delete;
  terminal& operator=(const terminal&) = delete;

  // The whole screen, at the terminal's size now.
  void draw(const view& v, const connection_state& c);

  // The next key (q or Q: quit; a resize of the terminal), or none when
  // none is waiting.
  key next_key();
};

}  // namespace qtop
