// SPDX-License-Identifier: BSL-1.0
// The pool every compile-fail case builds: a connector named `probe` whose
// hooks each case declares through PROBE_HOOKS, handed to a pool's
// constructor (which is where the connector's hooks are checked).
#pragma once

#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <memory>

namespace asio = boost::asio;

struct probe {
  using connection_type = asio::ip::tcp::socket;
  PROBE_HOOKS
};

inline void build_pool() {
  asio::io_context io;
  qorb::pool<asio::ip::tcp::socket> pool(io.get_executor(), "probe",
                                         std::make_shared<qorb::fixed_resolver>(),
                                         probe{});
}
