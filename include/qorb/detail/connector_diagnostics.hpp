// SPDX-License-Identifier: BSL-1.0
// qorb internals: one compile error, in one line, for each of the commonest
// mistakes in a connector handed to a pool, naming what to write. Without
// this the constructor's constraints fail with a page of concept notes.
#pragma once

#include <qorb/connector.hpp>
#include <qorb/detail/typed_connector.hpp>

#include <concepts>
#include <memory>
#include <type_traits>

namespace qorb::detail {

template <class C>
concept has_connection_type = requires {
  typename C::connection_type;
};

template <class C>
concept has_any_connect = requires(C& c, const backend& b) {
  c.connect(b);
};

template <class C>
concept has_member_named_connect = requires {
  &C::connect;
};

template <class>
inline constexpr bool always_false = false;

// The checks run in order and only the first that fails is instantiated
// (`if constexpr`), so the user sees one static_assert, not a cascade.
template <class Conn, class C>
std::unique_ptr<connector_ops> make_connector_ops(C connector_value) {
  if constexpr (!has_connection_type<C>) {
    static_assert(always_false<C>,
                  "qorb connector: no `connection_type`; write `using connection_type = "
                  "YourConnection;` in the connector (see docs/connectors.md)");
    return nullptr;
  } else if constexpr (!std::move_constructible<typename C::connection_type>) {
    static_assert(always_false<C>,
                  "qorb connector: `connection_type` must be move-constructible (a pool moves "
                  "connections in and out of its slots)");
    return nullptr;
  } else if constexpr (!has_any_connect<C> && !has_member_named_connect<C>) {
    static_assert(always_false<C>,
                  "qorb connector: no `connect`; write `asio::awaitable<connection_type> "
                  "connect(const qorb::backend& b)` (see docs/connectors.md)");
    return nullptr;
  } else if constexpr (!connector<C>) {
    static_assert(always_false<C>,
                  "qorb connector: `connect` does not have the hook's signature; expected "
                  "`asio::awaitable<connection_type> connect(const qorb::backend& b)`, a "
                  "coroutine that throws on failure (see docs/connectors.md)");
    return nullptr;
  } else if constexpr (!std::same_as<typename C::connection_type, Conn>) {
    static_assert(always_false<C>,
                  "qorb::pool<Conn>: the connector's `connection_type` is not the pool's `Conn`; "
                  "write `qorb::pool<YourConnector::connection_type>`, or give the connector "
                  "`using connection_type = Conn;`");
    return nullptr;
  } else {
    return std::make_unique<typed_connector_ops<C>>(std::move(connector_value));
  }
}

}  // namespace qorb::detail
