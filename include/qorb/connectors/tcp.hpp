// qorb: a connector for plain TCP connections.
#pragma once

#include <qorb/backend.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <functional>
#include <optional>

namespace qorb {

struct tcp_connector_config {
  /// SO_KEEPALIVE on every connection; with `keepalive_idle`, the idle time
  /// before the first probe (TCP_KEEPIDLE).
  bool keepalive = true;
  std::optional<std::chrono::seconds> keepalive_idle = std::nullopt;
  /// TCP_NODELAY on every connection.
  bool no_delay = true;
  /// Health check run for `is_valid` (and so on every return of a claim):
  /// throw to fail. Without one, the check is that the peer has not closed
  /// the connection (a non-blocking peek).
  std::function<asio::awaitable<void>(asio::ip::tcp::socket&)> health_check = nullptr;
};

/// Connects an `asio::ip::tcp::socket` to each backend.
class tcp_connector {
 public:
  using connection_type = asio::ip::tcp::socket;

  explicit tcp_connector(tcp_connector_config config = {}) : config_(std::move(config)) {}

  asio::awaitable<asio::ip::tcp::socket> connect(const backend& b);
  asio::awaitable<void> is_valid(asio::ip::tcp::socket& socket);

 private:
  tcp_connector_config config_;
};

}  // namespace qorb
