// SPDX-License-Identifier: BSL-1.0
#include "common/workload_view.hpp"

#include <curses.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <clocale>
#include <cstdio>
#include <thread>

namespace qorb::examples {

using namespace std::chrono_literals;

namespace {

double seconds_between(steady_clock::time_point from, steady_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

std::uint64_t claims_of(const workload_snapshot& s) {
  std::uint64_t n = 0;
  for (const auto& [name, b] : s.backends) n += b.claims;
  return n;
}

// Rates are claims handed out per second, as qtop counts them (the
// pool's total_claims), whether the echo then worked or not.
std::string summary_line(const workload_snapshot& now, const workload_snapshot* before) {
  double rate = 0;
  if (before != nullptr && now.taken > before->taken) {
    const auto claims = claims_of(now), was = claims_of(*before);
    rate = static_cast<double>(claims >= was ? claims - was : 0) /
           seconds_between(before->taken, now.taken);
  }
  return fmt::format(
      "{:.1f} claims/s   ok {}   server failures {}   claim failures {}   waiting {}   "
      "claimers {}",
      rate, now.ok, now.server_failures, now.claim_failures, now.claims_waiting,
      now.claimers.size());
}

std::string claimer_header() {
  return fmt::format("    {:<7} {:<7} {:>8} {:>10} {:>15} {:>14}", "CLAIMER", "CLAIMED", "HOLD ms",
                     "SUCCESSES", "SERVER-FAILURES", "CLAIM-FAILURES");
}

std::string claimer_line(const claimer_info& c, bool selected) {
  return fmt::format("{:<3} {:<7} {:<7} {:>8} {:>10} {:>15} {:>14}", selected ? ">>" : "", c.id,
                     c.claimed ? "yes" : "", c.hold.count(), c.ok, c.server_failures,
                     c.claim_failures);
}

}  // namespace

bool have_terminal() { return ::isatty(STDIN_FILENO) == 1 && ::isatty(STDOUT_FILENO) == 1; }

std::string time_label(const echo_workload& w, steady_clock::time_point at) {
  return fmt::format("[t={:6.1f}s] ", seconds_between(w.started(), at));
}

std::vector<std::string> backend_table(const workload_snapshot& now,
                                       const workload_snapshot* before) {
  std::size_t width = 7;
  for (const auto& [name, b] : now.backends) width = std::max(width, name.size());
  // The table fits 100 columns with names of up to 40 (longer ones are cut).
  width = std::min<std::size_t>(width, 40);
  // The pool's words (backend_stats, qtop, /stats): connecting, unclaimed,
  // checking, claimed; connect and check failures are the pool's counts,
  // the ones its "offline (N connect and M check failures so far)" events
  // give; server failures are the claimers' (the write or the echo failed).
  // Abbreviated as qtop's narrow columns are, so that the table fits 100
  // columns: CONN connecting, UNCL unclaimed, CHCK checking, CLMD claimed;
  // failures: FCONN connect, FCHK check, FSRV server.
  std::vector<std::string> lines;
  lines.push_back(fmt::format("{:<{}} {:<7} {:>4} {:>4} {:>4} {:>4} {:>7} {:>8} {:>5} {:>5} {:>5}",
                              "BACKEND", width, "STATE", "CONN", "UNCL", "CHCK", "CLMD", "OK",
                              "CLAIMS/S", "FCONN", "FCHK", "FSRV"));
  for (const auto& [name, b] : now.backends) {
    double rate = 0;
    if (before != nullptr && now.taken > before->taken) {
      const auto it = before->backends.find(name);
      const auto was = it == before->backends.end() ? 0 : it->second.claims;
      rate = static_cast<double>(b.claims >= was ? b.claims - was : 0) /
             seconds_between(before->taken, now.taken);
    }
    const char* state = !b.listed ? "gone" : b.pool.online ? "online" : "offline";
    lines.push_back(fmt::format(
        "{:<{}.{}} {:<7} {:>4} {:>4} {:>4} {:>4} {:>7} {:>8.1f} {:>5} {:>5} {:>5}", name, width,
        width, state, b.pool.connecting, b.pool.unclaimed, b.pool.checking, b.pool.claimed, b.ok,
        rate, b.pool.connect_failures, b.pool.check_failures, b.server_failures));
  }
  return lines;
}

struct workload_view::impl {
  impl(echo_workload& w, view_config c) : workload(w), cfg(std::move(c)) {}

  echo_workload& workload;
  view_config cfg;
  bool open = false;
  SCREEN* screen = nullptr;
  std::size_t selected = 0;
  std::size_t events_seen = 0;
  std::vector<workload_event> recent;  // interactive: the newest events
  workload_snapshot previous;          // for the rates
  bool have_previous = false;
  steady_clock::time_point next_output = steady_clock::now();

  // --- plain text ---------------------------------------------------------------

  void plain_step() {
    for (const auto& e : workload.events(events_seen)) {
      ++events_seen;
      std::printf("%s* %s\n", time_label(workload, e.at).c_str(), e.text.c_str());
    }
    const auto now = steady_clock::now();
    if (now >= next_output) {
      next_output = now + cfg.plain_period;
      const auto snap = workload.snapshot();
      const auto* before = have_previous ? &previous : nullptr;
      std::printf("%s%s\n%*s%s\n", time_label(workload, snap.taken).c_str(),
                  summary_line(snap, before).c_str(), 4, "", snap.dns.c_str());
      for (const auto& line : backend_table(snap, before)) std::printf("    %s\n", line.c_str());
      previous = snap;
      have_previous = true;
    }
    std::fflush(stdout);
  }

  // --- interactive -----------------------------------------------------------------

  // False when the terminal cannot be used (e.g. TERM unset or unknown,
  // where initscr would exit the process).
  bool start_terminal() {
    std::setlocale(LC_ALL, "");
    screen = newterm(nullptr, stdout, stdin);
    if (screen == nullptr) return false;
    cbreak();  // Ctrl-C still raises SIGINT
    noecho();
    keypad(stdscr, TRUE);
    curs_set(0);
    open = true;
    return true;
  }

  static void put(int row, const std::string& text, int attributes = 0) {
    if (row < 0 || row >= LINES) return;
    attron(attributes);
    mvaddnstr(row, 0, text.c_str(), std::max(0, COLS));
    attroff(attributes);
  }

  void draw() {
    const auto snap = workload.snapshot();
    for (auto& e : workload.events(events_seen)) {
      ++events_seen;
      recent.push_back(std::move(e));
    }
    if (recent.size() > 200) recent.erase(recent.begin(), recent.end() - 200);
    if (!snap.claimers.empty()) selected = std::min(selected, snap.claimers.size() - 1);

    erase();
    int row = 0;
    put(row++, cfg.title + "   " + time_label(workload, snap.taken), A_BOLD);
    put(row++, summary_line(snap, have_previous ? &previous : nullptr));
    put(row++, snap.dns, A_DIM);
    ++row;
    const auto backends = backend_table(snap, have_previous ? &previous : nullptr);
    for (std::size_t i = 0; i < backends.size(); ++i) {
      put(row++, backends[i], i == 0 ? A_UNDERLINE : 0);
    }
    if (snap.backends.empty()) put(row++, "(no backends yet: waiting for DNS)", A_DIM);
    ++row;

    // What is left is shared by the claimers and the events, above the help.
    const int help_rows = 2;
    const int free_rows = std::max(0, LINES - row - help_rows - 1);
    const int claimer_rows =
        std::min<int>(static_cast<int>(snap.claimers.size()) + 1, std::max(2, free_rows / 2));
    put(row++, claimer_header(), A_UNDERLINE);
    // Scroll so the selected claimer stays visible.
    const int shown = std::max(0, claimer_rows - 1);
    std::size_t first = 0;
    if (shown > 0 && selected >= static_cast<std::size_t>(shown)) {
      first = selected - static_cast<std::size_t>(shown) + 1;
    }
    for (std::size_t i = first; i < snap.claimers.size() && i < first + shown; ++i) {
      put(row++, claimer_line(snap.claimers[i], i == selected), i == selected ? A_REVERSE : 0);
    }
    if (snap.claimers.empty()) put(row++, "(no claimers: press Tab to add one)", A_DIM);
    ++row;
    const int event_rows = LINES - row - help_rows - 1;
    if (event_rows > 0) {
      put(row++, "EVENTS", A_UNDERLINE);
      const auto count = std::min<std::size_t>(recent.size(), static_cast<std::size_t>(event_rows));
      for (auto it = recent.end() - static_cast<std::ptrdiff_t>(count); it != recent.end(); ++it) {
        put(row++, time_label(workload, it->at) + it->text);
      }
    }
    put(LINES - 2, "Tab: add a claimer   Shift-Tab: remove one   Up/Down: select", A_DIM);
    put(LINES - 1, "Left/Right: hold time -/+ 100 ms   q: quit", A_DIM);
    refresh();
    // Rates over a second or more: a redraw every 250 ms would make them jump.
    if (!have_previous || snap.taken - previous.taken >= 1s) {
      previous = snap;
      have_previous = true;
    }
  }

  // Acts on one key; false for q.
  bool key(int k) {
    switch (k) {
      case 'q':
      case 'Q':
        return false;
      case '\t':
        workload.add_claimer();
        break;
      case KEY_BTAB:
        workload.remove_claimer();
        break;
      case KEY_UP:
        if (selected > 0) --selected;
        break;
      case KEY_DOWN:
        ++selected;  // clamped when drawn
        break;
      case KEY_LEFT:
        workload.change_hold(selected, -100ms);
        break;
      case KEY_RIGHT:
        workload.change_hold(selected, 100ms);
        break;
      default:
        break;
    }
    return true;
  }

  bool interactive_step(std::chrono::milliseconds wait) {
    timeout(static_cast<int>(wait.count()));
    bool redraw_now = false;
    for (int k = getch(); k != ERR; k = getch()) {
      if (!key(k)) return false;
      redraw_now = true;
      timeout(0);  // take every key already typed, then draw
    }
    const auto now = steady_clock::now();
    if (redraw_now || now >= next_output) {
      next_output = now + 250ms;
      draw();
    }
    return true;
  }
};

workload_view::workload_view(echo_workload& workload, view_config config)
    : impl_(std::make_unique<impl>(workload, std::move(config))) {
  if (!impl_->cfg.interactive || !impl_->start_terminal()) {
    std::printf("%s\n", impl_->cfg.title.c_str());
  }
}

workload_view::~workload_view() { close(); }

bool workload_view::step(std::chrono::milliseconds wait) {
  if (impl_->open) return impl_->interactive_step(wait);
  std::this_thread::sleep_for(wait);  // the pace of the view; the workload runs on its own
  impl_->plain_step();
  return true;
}

void workload_view::close() {
  if (!impl_->open) return;
  endwin();
  delscreen(impl_->screen);
  impl_->screen = nullptr;
  impl_->open = false;
}

}  // namespace qorb::examples
