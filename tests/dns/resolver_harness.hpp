// SPDX-License-Identifier: BSL-1.0
// Runs a dns_resolver on its own io_context thread and records what it
// publishes, for tests that wait on it.
#pragma once

#include "support/wait.hpp"

#include <qorb/resolvers/dns.hpp>

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

namespace qorb::test {

inline std::set<std::string> names_of(const backend_map& m) {
  std::set<std::string> out;
  for (const auto& [name, b] : m) out.insert(name);
  return out;
}

class resolver_harness {
 public:
  struct event {
    std::chrono::steady_clock::time_point at;
    backend_map backends;
  };

  explicit resolver_harness(dns_resolver_config config) {
    auto user = std::move(config.on_lookup_done);
    config.on_lookup_done = [this, user](dns_lookup_outcome outcome) {
      {
        std::lock_guard lock(mutex_);
        outcomes_.push_back(outcome);
      }
      if (user) user(outcome);
    };
    if (!config.logger.get() || config.logger == default_logger()) config.logger = nullptr;
    resolver_ = std::make_shared<dns_resolver>(std::move(config));
  }

  ~resolver_harness() { stop(); }

  void start() {
    resolver_->start(io_.get_executor(), [this](const backend_map& m) {
      std::lock_guard lock(mutex_);
      events_.push_back({std::chrono::steady_clock::now(), m});
    });
    thread_ = std::thread([this] {
      io_.run();
      finished_ = true;
    });
  }

  /// Stops the resolver and returns whether the io_context then ran out of
  /// work by itself (nothing left behind) within `timeout`.
  bool stop(std::chrono::milliseconds timeout = 5s) {
    if (!thread_.joinable()) return true;
    resolver_->stop();
    const bool drained = wait_until([&] { return finished_.load(); }, timeout);
    if (!drained) io_.stop();
    thread_.join();
    return drained;
  }

  dns_resolver& resolver() { return *resolver_; }

  backend_map current() const {
    std::lock_guard lock(mutex_);
    return events_.empty() ? backend_map{} : events_.back().backends;
  }
  std::set<std::string> names() const { return names_of(current()); }
  std::vector<event> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }
  std::vector<dns_lookup_outcome> outcomes() const {
    std::lock_guard lock(mutex_);
    return outcomes_;
  }
  std::size_t count(dns_lookup_outcome o) const {
    std::lock_guard lock(mutex_);
    return static_cast<std::size_t>(std::count(outcomes_.begin(), outcomes_.end(), o));
  }

  bool wait_names(const std::set<std::string>& expected, std::chrono::milliseconds timeout = 5s) {
    return wait_until([&] { return names() == expected; }, timeout);
  }

  dns_server_stats server(const asio::ip::udp::endpoint& e) const {
    for (const auto& s : resolver_->stats().servers) {
      if (s.server == e) return s;
    }
    return {};
  }

 private:
  asio::io_context io_;
  std::shared_ptr<dns_resolver> resolver_;
  std::thread thread_;
  std::atomic<bool> finished_{false};
  mutable std::mutex mutex_;
  std::vector<event> events_;
  std::vector<dns_lookup_outcome> outcomes_;
};

/// A UDP socket on 127.0.0.1 that receives queries and never answers.
class silent_udp_server {
 public:
  silent_udp_server();
  ~silent_udp_server();
  silent_udp_server(const silent_udp_server&) = delete;
  silent_udp_server& operator=(const silent_udp_server&) = delete;
  asio::ip::udp::endpoint endpoint() const;

 private:
  int fd_ = -1;
  unsigned short port_ = 0;
};

}  // namespace qorb::test
