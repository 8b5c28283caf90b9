// SPDX-License-Identifier: BSL-1.0
// qtop: a live view of a qorb pool, one row per backend, fed by the
// WebSocket /qtop/stats of a qorb::stats_server. Like cueball's cbtop.
// Its arguments (qtop_args), feed (qtop_feed), view model (qtop_view, what
// the screen shows) and terminal (qtop_terminal, curses) are apart; here,
// the two modes.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <variant>

#include "qtop_args.hpp"
#include "qtop_feed.hpp"
#include "qtop_terminal.hpp"
#include "qtop_view.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace qtop;

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

// Once: the first update, then (for the table) the first one at least
// --interval after it, for the rates.
int run_once(const options& o) {
  asio::io_context io;
  std::optional<std::string> first, second;
  clock_type::time_point first_at{}, second_at{};
  std::string failure;
  int interrupted = 0;
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int signal) {
    if (ec) return;
    interrupted = signal;
    io.stop();
  });
  asio::steady_timer deadline(io, 5s + (o.json ? 0ms : o.interval));
  deadline.async_wait([&](boost::system::error_code ec) {
    if (!ec) {
      failure = first ? "no second update within --interval + 5 s" : "no update within 5 s";
      io.stop();
    }
  });
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        failure = co_await run_feed(
            o,
            [&](std::string text) {
              const auto now = clock_type::now();
              if (!first) {
                first = std::move(text);
                first_at = now;
                if (o.json) io.stop();
              } else if (now - first_at >= o.interval) {
                second = std::move(text);
                second_at = now;
                io.stop();
              }
            },
            [] {});
        io.stop();
      },
      asio::detached);
  io.run();
  if (interrupted != 0) {
    std::cerr << "qtop: interrupted (" << (interrupted == SIGINT ? "SIGINT" : "SIGTERM")
              << ") before the updates came\n";
    return 128 + interrupted;
  }
  if (!first || (!o.json && !second)) {
    std::cerr << "qtop: " << o.url.shown << ": " << failure << "\n";
    return 1;
  }
  if (o.json) {
    std::cout << *first << "\n";
    return 0;
  }
  view v(o.interval);
  const auto wall_now = wall_clock::now();
  if (!v.update(*first, first_at, wall_now) || !v.update(*second, second_at, wall_now)) {
    std::cerr << "qtop: " << o.url.shown << ": not a qtop update: " << *first << "\n";
    return 1;
  }
  for (const auto& line : once_report(v, wall_clock::now())) std::cout << line << "\n";
  return 0;
}

int run_interactive(const options& o) {
  asio::io_context io;
  terminal term;
  view v;
  connection_state state{o.url.shown, "connecting to " + o.url.shown + " ...", false};
  const auto redraw = [&] { term.draw(v, state); };
  redraw();

  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer pause(co_await asio::this_coro::executor);
        auto backoff = 250ms;
        for (;;) {
          const std::string why = co_await run_feed(
              o,
              [&](std::string text) {
                if (v.update(text, clock_type::now(), wall_clock::now())) backoff = 250ms;
                redraw();
              },
              [&] {
                state.connected = true;
                v.reconnected();
                state.status.clear();
                redraw();
              });
          const bool was_connected = state.connected;
          state.connected = false;
          const auto seconds = std::chrono::duration<double>(backoff).count();
          char retry[64];
          std::snprintf(retry, sizeof retry, " -- retrying every %.1f s", seconds);
          state.status = std::string(was_connected ? "ENDPOINT WENT AWAY: " : "UNREACHABLE: ") +
                         o.url.shown + ": " + why + retry;
          redraw();
          pause.expires_after(backoff);
          co_await pause.async_wait(use_nothrow);
          backoff = std::min<std::chrono::milliseconds>(backoff * 2, 4s);
        }
      },
      asio::detached);

  // SIGINT and SIGTERM end it as q does (ncurses's own handlers, replaced
  // here, would exit without this function's cleanup).
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int) {
    if (!ec) io.stop();
  });

  // Keys, and KEY_RESIZE (which ncurses reports after SIGWINCH), polled.
  asio::steady_timer keys(io);
  std::function<void()> poll_keys = [&] {
    for (auto k = term.next_key(); k != terminal::key::none; k = term.next_key()) {
      if (k == terminal::key::quit) {
        io.stop();
        return;
      }
      if (k == terminal::key::resize) redraw();
    }
    keys.expires_after(50ms);
    keys.async_wait([&](boost::system::error_code ec) {
      if (!ec) poll_keys();
    });
  };
  poll_keys();
  io.run();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
    std::cout << qtop::usage;
    return 0;
  }
  auto parsed = qtop::parse(argc, argv);
  if (auto* error = std::get_if<std::string>(&parsed)) {
    std::cerr << "qtop: " << *error << "\n\n" << qtop::usage;
    return 2;
  }
  const auto& o = std::get<qtop::options>(parsed);
  return o.once ? run_once(o) : run_interactive(o);
}
