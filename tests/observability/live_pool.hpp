// SPDX-License-Identifier: BSL-1.0
// A live pool over the fake connector with a stats_server watching it, for
// the observability tests.
#pragma once

#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>
#include <qorb/stats_server.hpp>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "support/fake_connector.hpp"
#include "support/io_threads.hpp"
#include "support/wait.hpp"

namespace qorb::test {

inline policy observed_policy() {
  policy p;
  p.claim_timeout = std::chrono::seconds(5);
  p.spares_wanted = 4;
  p.max_slots = 8;
  p.rebalance_interval = std::chrono::milliseconds(100);
  p.set_config.min_connection_backoff = std::chrono::milliseconds(5);
  p.set_config.max_connection_backoff = std::chrono::milliseconds(50);
  p.set_config.spread = std::chrono::milliseconds(2);
  return p;
}

/// Endpoints 127.0.0.1:1..n: the fake connector never dials them.
inline std::vector<asio::ip::tcp::endpoint> fake_endpoints(unsigned short n) {
  std::vector<asio::ip::tcp::endpoint> out;
  for (unsigned short i = 1; i <= n; ++i) out.emplace_back(asio::ip::make_address("127.0.0.1"), i);
  return out;
}

/// Whether every backend of `p` is connected, with no slot still connecting.
template <class Pool>
bool settled(const Pool& p, std::size_t backends) {
  const auto s = p.stats();
  if (s.backends.size() != backends) return false;
  std::size_t idle = 0;
  for (const auto& [name, b] : s.backends) {
    if (b.connecting != 0) return false;
    idle += b.unclaimed;
  }
  return idle > 0;
}

/// Whether backend 127.0.0.1:1 of `p` is connected and 127.0.0.1:2 has
/// failed a connect (a pool made with `failing` {"127.0.0.1:2"}).
template <class Pool>
bool first_up_second_failing(const Pool& p) {
  const auto s = p.stats();
  return s.backends.size() == 2 && s.backends.at("127.0.0.1:1").unclaimed > 0 &&
         s.backends.at("127.0.0.1:2").connect_failures > 0;
}

struct observed_pool {
  /// `failing`: backends (by name, "127.0.0.1:N") whose connects fail
  /// from the start.
  explicit observed_pool(unsigned short backends = 2, stats_server_config config = quiet(),
                         const std::set<std::string>& failing = {}) {
    fake_connector connector;
    fake = connector.state;
    fake->failing_backends = failing;
    pool = std::make_unique<qorb::pool<fake_conn>>(
        io.executor(), "web", std::make_shared<fixed_resolver>(fake_endpoints(backends)),
        std::move(connector), observed_policy(), nullptr);
    server = std::make_unique<stats_server>(io.executor(), std::move(config));
    server->attach(*pool);
    server->start();
  }
  ~observed_pool() {
    server.reset();
    pool.reset();
  }

  static stats_server_config quiet() {
    stats_server_config c;
    c.logger = nullptr;
    return c;
  }

  unsigned short port() const { return server->local_endpoint().port(); }

  io_threads io{2};
  std::shared_ptr<fake_state> fake;  // the connector's switches
  std::unique_ptr<qorb::pool<fake_conn>> pool;
  std::unique_ptr<stats_server> server;
};

}  // namespace qorb::test
