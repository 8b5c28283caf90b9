// SPDX-License-Identifier: BSL-1.0
// qorb: the connector concept (how a pool talks to one backend).
#pragma once

#include <qorb/backend.hpp>

#include <boost/asio/awaitable.hpp>

#include <concepts>

namespace qorb {

/// A connector is the user's code that knows how to talk to one backend.
/// Every hook and its exact signature: docs/connectors.md.
///
/// Required:
///   using connection_type = Conn;                // move-constructible
///   asio::awaitable<Conn> connect(const backend& b);
///
/// Optional (detected at compile time; absent means "nothing to do"):
///   asio::awaitable<void> is_valid(Conn& c);    // periodic health check of
///                                               // an idle connection
///   asio::awaitable<void> on_acquire(Conn& c);  // as a connection is being
///                                               // claimed, per claim
///   asio::awaitable<void> on_recycle(Conn& c);  // after a claim returns;
///                                               // default: is_valid
///   asio::awaitable<void> watch(Conn& c);       // runs while the connection
///                                               // is idle; completes when
///                                               // it is no longer usable
///
/// Failure is reported by throwing (any exception; `std::system_error` with
/// a meaningful code is best, it shows in stats and logs). The pool counts
/// every failure against the backend, drops a connection that failed a
/// check, and reconnects with backoff. `connect` must not be lazy: a
/// connection it returns should pass `is_valid`.
///
/// A normal end is not a failure: when a hook finds that the server ended
/// the connection in the ordinary course (closed it while idle, as HTTP
/// servers do after their keep-alive timeout; asked to close it after a
/// whole response), it throws `std::system_error` (or
/// `boost::system::system_error`) whose code is `qorb::errc::connection_ended`.
/// The pool then closes the connection and connects again at once, without
/// counting a failure or backing off; the backend stays online meanwhile
/// and a claim whose `on_acquire` said so is served by another connection.
/// A connection that `is_valid` or `on_acquire` finds so ended within
/// `min(1 s, max_connection_backoff)` of its connect still counts as a
/// failure and backs off, so a backend that ends every connection at once
/// is not hammered (`on_recycle` runs after a claim: its ends are bounded
/// by the claims and never count). A close in the middle of an exchange is
/// a failure: throw any other error.
///
/// Context: every call runs in a coroutine on a strand of the pool's
/// executor (`co_await asio::this_coro::executor` gives it), never inside
/// the pool's critical section. Each call may be cancelled (timeout, slot
/// removed, pool terminated) through asio per-operation cancellation; the
/// pool never waits for a cancelled call, and destroys the connection it
/// was given once the call has finished. The connector object is shared by
/// all calls and must tolerate concurrent calls.
///
/// `watch` runs on the connection's strand while it is idle, and ends (by
/// returning or throwing: both mean "lost") when the connection is no
/// longer usable; the pool then closes it, counts a failure for the
/// backend (none for `errc::connection_ended`) and connects again. A claim,
/// a health check, a close or terminate cancels it (terminal per-operation
/// cancellation) and does not wait for it: a cancelled watch must end
/// without touching the connection again, and without an `on_acquire`
/// hook (which runs on the same strand, so never beside a step of the
/// watch) it must only wait and peek, never read or write the connection,
/// which a claimer may already use. See docs/connectors.md.
///
/// A member named like an optional hook (or like a misspelt one, such as
/// `on_aquire`) that does not have the hook's exact signature is a compile
/// error at the pool's constructor, saying what was expected: the pool
/// would never call it.
template <class C>
concept connector = requires(C& c, const backend& b) {
  typename C::connection_type;
  requires std::move_constructible<typename C::connection_type>;
  { c.connect(b) } -> std::same_as<asio::awaitable<typename C::connection_type>>;
};

/// A connector with an `is_valid` hook of the right signature.
template <class C>
concept connector_with_is_valid = connector<C> &&
    requires(C& c, typename C::connection_type& conn) {
  { c.is_valid(conn) } -> std::same_as<asio::awaitable<void>>;
};

/// A connector with an `on_acquire` hook of the right signature.
template <class C>
concept connector_with_on_acquire = connector<C> &&
    requires(C& c, typename C::connection_type& conn) {
  { c.on_acquire(conn) } -> std::same_as<asio::awaitable<void>>;
};

/// A connector with an `on_recycle` hook of the right signature.
template <class C>
concept connector_with_on_recycle = connector<C> &&
    requires(C& c, typename C::connection_type& conn) {
  { c.on_recycle(conn) } -> std::same_as<asio::awaitable<void>>;
};

/// A connector with a `watch` hook of the right signature.
template <class C>
concept connector_with_watch = connector<C> && requires(C& c, typename C::connection_type& conn) {
  { c.watch(conn) } -> std::same_as<asio::awaitable<void>>;
};

}  // namespace qorb
