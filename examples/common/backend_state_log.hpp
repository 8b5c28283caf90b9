// SPDX-License-Identifier: BSL-1.0
// When the pool said a backend went offline or online, heard as it happens:
// a spdlog sink that stamps the pool's "pool <pool>: <backend>: offline" and
// "...: online" lines (its log vocabulary, src/pool/observe.cpp; logged at
// warn level, unthrottled, on the thread that made the change, as the core
// decides it). The demo and the chaos test time "kill -> offline" with it
// instead of sampling stats(), whose period would bound the figure.
#pragma once

#include <spdlog/logger.h>
#include <spdlog/sinks/base_sink.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qorb::examples {

class backend_state_log final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  using clock = std::chrono::steady_clock;
  struct change {
    std::string backend;
    bool online = false;
    clock::time_point at;
  };

  /// Hears the lines of the pool named `pool`.
  explicit backend_state_log(std::string pool) : prefix_("pool " + pool + ": ") {}

  /// A logger for the pool's config: warn level (the state lines and
  /// warnings, nothing chattier), into this sink only.
  static std::pair<std::shared_ptr<spdlog::logger>, std::shared_ptr<backend_state_log>> make(
      std::string pool) {
    auto sink = std::make_shared<backend_state_log>(pool);
    auto logger = std::make_shared<spdlog::logger>(std::move(pool), sink);
    logger->set_level(spdlog::level::warn);
    return {std::move(logger), std::move(sink)};
  }

  /// The first time in [from, until) the pool said `backend` went offline.
  std::optional<clock::time_point> offline_between(std::string_view backend, clock::time_point from,
                                                   clock::time_point until) const {
    std::lock_guard lock(mu_);
    for (const auto& c : changes_) {
      if (!c.online && c.backend == backend && c.at >= from && c.at < until) return c.at;
    }
    return std::nullopt;
  }

  std::vector<change> changes() const {
    std::lock_guard lock(mu_);
    return changes_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const auto at = clock::now();  // first: the stamp is the change's time
    const std::string_view line(msg.payload.data(), msg.payload.size());
    if (!line.starts_with(prefix_)) return;
    auto rest = line.substr(prefix_.size());
    bool online = false;
    if (rest.ends_with(offline_suffix)) {
      rest.remove_suffix(offline_suffix.size());
    } else if (rest.ends_with(online_suffix)) {
      rest.remove_suffix(online_suffix.size());
      online = true;
    } else {
      return;
    }
    std::lock_guard lock(mu_);
    if (changes_.size() < max_changes) changes_.push_back({std::string(rest), online, at});
  }
  void flush_() override {}

 private:
  static constexpr std::string_view offline_suffix = ": offline";
  static constexpr std::string_view online_suffix = ": online";
  static constexpr std::size_t max_changes = 100'000;  // a bound for long runs
  const std::string prefix_;
  mutable std::mutex mu_;
  std::vector<change> changes_;
};

}  // namespace qorb::examples
