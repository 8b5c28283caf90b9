// SPDX-License-Identifier: BSL-1.0
// Bounds of the etcd component's settings, named in the errors.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

namespace qorb::detail::etcd {

inline void check_members(const std::string& what,
                          const std::vector<boost::asio::ip::tcp::endpoint>& endpoints) {
  if (endpoints.empty()) {
    throw std::invalid_argument(what + ".endpoints is empty: name at least one etcd member");
  }
  for (const auto& e : endpoints) {
    if (e.port() == 0) throw std::invalid_argument(what + ".endpoints: a member has port 0");
  }
}

inline void check_timing(const std::string& what, std::chrono::milliseconds request_timeout,
                         std::chrono::milliseconds retry_min, std::chrono::milliseconds retry_max) {
  using namespace std::chrono_literals;
  if (request_timeout < 1ms || request_timeout > 1h) {
    throw std::invalid_argument(what + ".request_timeout must be between 1 ms and 1 h, not " +
                                std::to_string(request_timeout.count()) + " ms");
  }
  if (retry_max > 10min) {
    throw std::invalid_argument(what + ".retry_max must be at most 10 min, not " +
                                std::to_string(retry_max.count()) + " ms");
  }
  if (retry_min < 1ms || retry_min > retry_max) {
    throw std::invalid_argument(what + ".retry_min must be between 1 ms and retry_max (" +
                                std::to_string(retry_max.count()) + " ms), not " +
                                std::to_string(retry_min.count()) + " ms");
  }
}

}  // namespace qorb::detail::etcd
