// SPDX-License-Identifier: BSL-1.0
// qtop's feed: one WebSocket connection to a stats server's /qtop/stats.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <string>

#include "qtop_args.hpp"

namespace qtop {

// One connection to the endpoint: connects, then hands every message to
// `on_message` until the connection ends; returns why it ended.
boost::asio::awaitable<std::string> run_feed(const options& o,
                                             const std::function<void(std::string)>& on_message,
                                             const std::function<void()>& on_connected);

}  // namespace qtop
