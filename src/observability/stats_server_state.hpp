// SPDX-License-Identifier: BSL-1.0
// What a stats_server and its sessions share: the configuration, the
// listener, the registry of pools with its snapshot, the thread that builds
// output, the counters and the sessions to close at stop().
#pragma once

#include <qorb/stats_server.hpp>

#include <spdlog/spdlog.h>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "log_limiter.hpp"
#include "observability/stats_registry.hpp"

namespace qorb::detail {

class stats_session;

struct stats_server_state : std::enable_shared_from_this<stats_server_state> {
  stats_server_state(asio::any_io_executor ex, stats_server_config cfg)
      : executor(std::move(ex)),
        config(std::move(cfg)),
        acceptor(asio::make_strand(executor)),
        registry(config.snapshot_interval) {}

  template <class... Args>
  void log(spdlog::level::level_enum level, spdlog::format_string_t<Args...> fmt, Args&&... args) {
    if (config.logger) config.logger->log(level, fmt, std::forward<Args>(args)...);
  }

  // Logs through `limiter` (guarded by `mu`): at most once per log_interval.
  template <class... Args>
  void log_limited(log_limiter& limiter, spdlog::level::level_enum level,
                   spdlog::format_string_t<Args...> fmt, Args&&... args) {
    std::uint64_t skipped = 0;
    {
      std::lock_guard lock(mu);
      if (!limiter.admit(config.log_interval, skipped)) return;
    }
    if (!config.logger) return;
    auto text = fmt::format(fmt, std::forward<Args>(args)...);
    if (skipped > 0) {
      text.append(" (").append(std::to_string(skipped)).append(" more since the last report)");
    }
    config.logger->log(level, "{}", text);
  }

  // Registers a session so that stop() reaches it; false once stopped.
  bool track(const std::shared_ptr<stats_session>& s) {
    std::lock_guard lock(mu);
    if (stopped) return false;
    sessions.remove_if([](const auto& w) { return w.expired(); });
    sessions.push_back(s);
    return true;
  }

  asio::awaitable<void> accept_loop();  // stats_server.cpp

  asio::any_io_executor executor;
  const stats_server_config config;
  asio::ip::tcp::acceptor acceptor;  // used on its own strand once started
  // Builds the output, off the pools' executors; joined by stop().
  asio::thread_pool builder{1};
  stats_registry registry;  // its cache on the builder's thread only

  std::atomic<std::size_t> connections{0};
  std::atomic<std::uint64_t> refused{0}, accept_errors{0}, malformed{0};
  log_limiter accept_log, refuse_log, malformed_log;  // guarded by mu

  std::mutex mu;
  bool started = false;
  bool stopped = false;
  std::optional<asio::ip::tcp::endpoint> endpoint;
  std::list<std::weak_ptr<stats_session>> sessions;
};

}  // namespace qorb::detail
