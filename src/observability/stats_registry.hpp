// SPDX-License-Identifier: BSL-1.0
// stats_registry: the pools a stats server shows (by name, in attach order)
// and the snapshot of their stats that serves every request for
// `snapshot_interval`, with the output built from it.
#pragma once

#include <qorb/stats_server.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace qorb::detail {

/// Output built from one snapshot: a response body, or for /qtop/stats the
/// pool's sets and its claims so far.
struct built_output {
  std::string body;
  std::uint64_t total_claims = 0;
  bool found = true;  // false: the pool asked for is gone
};

/// What the output is for.
enum class output_kind : char { stats = 's', metrics = 'm', sets = 'q' };

/// Thread safety: `attach`, `detach`, `attached`, `first_pool` and
/// `snapshots` from any thread; `build` from one thread at a time (the
/// server's builder).
class stats_registry {
 public:
  explicit stats_registry(std::chrono::milliseconds snapshot_interval)
      : snapshot_interval_(snapshot_interval) {}

  /// Shows `source` under `name`, replacing one of the same name.
  void attach(std::string name, stats_source source);
  /// Stops showing the pool `name` (nothing if there is none).
  void detach(const std::string& name);
  bool attached(const std::string& name) const;
  /// The name of the pool attached first, if any.
  std::optional<std::string> first_pool() const;

  /// The output for `kind`, for pool `only` (empty: every pool), from the
  /// cached snapshot, taken again once `snapshot_interval` has passed or a
  /// pool was attached or detached.
  std::shared_ptr<const built_output> build(output_kind kind, const std::string& only);

  /// Snapshots taken so far.
  std::uint64_t snapshots() const { return snapshots_.load(std::memory_order_relaxed); }

 private:
  struct entry {
    std::string name;
    stats_source source;
    std::uint64_t id = 0;
  };

  std::vector<pool_stats> snapshot();
  void forget(std::uint64_t id);

  const std::chrono::milliseconds snapshot_interval_;
  std::atomic<std::uint64_t> snapshots_{0};

  // The cache, on the builder's thread only.
  std::optional<std::chrono::steady_clock::time_point> cache_taken_;
  std::uint64_t cache_generation_ = 0;
  std::vector<pool_stats> cache_pools_;
  std::map<std::string, std::shared_ptr<const built_output>> cache_built_;

  mutable std::mutex mu_;
  std::vector<entry> pools_;      // in attach order
  std::uint64_t generation_ = 0;  // bumped by attach and detach
  std::uint64_t next_id_ = 0;
};

}  // namespace qorb::detail
