// SPDX-License-Identifier: BSL-1.0
// qtop's terminal, through curses.
#include "qtop_terminal.hpp"

#include <clocale>

#include <curses.h>

namespace qtop {

terminal::terminal() {
  std::setlocale(LC_ALL, "");
  initscr();
  cbreak();
  noecho();
  keypad(stdscr, TRUE);
  nodelay(stdscr, TRUE);
  curs_set(0);
}

terminal::~terminal() { endwin(); }

void terminal::draw(const view& v, const connection_state& c) {
  erase();
  for (const auto& line : compose(v, c, COLS, LINES, wall_clock::now())) {
    int attributes = 0;
    switch (line.style) {
      case look::plain:
        break;
      case look::bold:
        attributes = A_BOLD;
        break;
      case look::alert:
        attributes = A_BOLD | A_REVERSE;
        break;
      case look::heading:
        attributes = A_UNDERLINE;
        break;
      case look::dim:
        attributes = A_DIM;
        break;
    }
    attron(attributes);
    if (line.cut) {
      mvaddnstr(line.row, 0, line.text.c_str(), COLS - 1);
      mvaddch(line.row, COLS - 1, '>');
    } else {
      mvaddnstr(line.row, 0, line.text.c_str(), COLS);
    }
    attroff(attributes);
  }
  refresh();
}

terminal::key terminal::next_key() {
  const int k = getch();
  if (k == ERR) return key::none;
  if (k == 'q' || k == 'Q') return key::quit;
  if (k == KEY_RESIZE) return key::resize;
  return key::other;
}

}  // namespace qtop
