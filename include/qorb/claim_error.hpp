// SPDX-License-Identifier: BSL-1.0
// qorb: errors that explain themselves: what a claim made now would meet
// (pool_explanation, from pool::explain()), and the exception the throwing
// claims throw (claim_error), whose text names the pool, the wait, the
// pool's state and the cause. docs/errors.md lists every error.
#pragma once

#include <qorb/error.hpp>
#include <qorb/policy.hpp>
#include <qorb/stats.hpp>

#include <boost/system/system_error.hpp>

#include <chrono>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace qorb {

/// What a claim made at one moment would meet: the pool's status, each
/// backend's state and last error, the slots and the queue. Made by
/// `pool::explain()` (and kept by `claim_error`) from a `pool_stats`
/// snapshot; printable (`text()`, `to_string`, `operator<<`).
///
/// The text, one line for the pool, one per backend, and the cause:
/// @code
/// pool 'db': running; 2 backends known, 0 online; 0 of 16 slots claimed, 0 idle, 2 connecting; 3
/// claims waiting
///   db1 (127.0.0.1:5432): backing off, retry in 0.6 s; offline for 2.0 s; last error: connect:
///   Connection refused, 0.4 s ago db2 (127.0.0.1:5433): connecting; offline for 2.0 s
/// last error: db1 connect: Connection refused, 0.4 s ago
/// @endcode
/// A backend's state is one of: online, connecting, backing off (with the
/// time until its next try), offline (no slot trying), failed permanently,
/// removed. The cause ("the most relevant last error") is the most recent
/// last error among the backends still published, or, when none of those
/// has one, among removed ones; there is none while no backend has failed.
struct pool_explanation {
  /// The snapshot it explains (as `pool::stats()` gave it).
  pool_stats stats;
  /// When it was taken (wall clock): the ages of last errors count from it.
  std::chrono::system_clock::time_point at{};

  /// The pool's line without the name: "running; 2 backends known, 0
  /// online; 0 of 16 slots claimed, 0 idle, 2 connecting; 3 claims
  /// waiting". Errors: none. Thread safety: a const member (any thread,
  /// as for any value). Exceptions: `std::bad_alloc`.
  std::string summary() const;
  /// The shorter form `claim_error` uses: "running; 2 backends known, 0
  /// online; 0 of 16 slots claimed, 3 claims waiting". Errors: none.
  /// Thread safety: as `summary()`. Exceptions: `std::bad_alloc`.
  std::string brief() const;
  /// One backend's state: "online", "connecting", "backing off, retry in
  /// 0.6 s", "offline", "failed permanently", "removed", then "; offline
  /// for 2.0 s" while it is not online. Errors: none. Thread safety: as
  /// `summary()`. Exceptions: `std::bad_alloc`.
  static std::string state_of(const backend_stats& b);
  /// The cause, "db1 connect: Connection refused, 0.4 s ago" (the backend's
  /// name, the operation, the message, the age), or none (see the class
  /// comment for which backend's). Errors: none. Thread safety: as
  /// `summary()`. Exceptions: `std::bad_alloc`.
  std::optional<std::string> cause() const;
  /// The whole text (the class comment shows it), lines joined by '\n',
  /// no final newline. Errors: none. Thread safety: as `summary()`.
  /// Exceptions: `std::bad_alloc`.
  std::string text() const;
};

/// Builds the explanation of `stats` as seen at `at` (`pool::explain()`
/// does it with the pool's stats and now).
pool_explanation explain(
    pool_stats stats, std::chrono::system_clock::time_point at = std::chrono::system_clock::now());
/// `e.text()`.
std::string to_string(const pool_explanation& e);
/// Writes `e.text()`.
std::ostream& operator<<(std::ostream& os, const pool_explanation& e);

/// A duration as people read it in qorb's messages: "0.4 s", "2.0 s",
/// "15 ms", "3 min 20 s", "forever".
std::string format_duration(duration d);

/// `what` without the suffix Boost.System's `what()` appends to a message:
/// " [category:N]" or " [category:N at file:line in function]" (e.g.
/// " [system:111 at /usr/include/boost/asio/detail/reactive_socket_service.hpp:...]",
/// " [std:qorb:2]"). Other brackets are kept: only a final bracket that
/// starts with a category name, a colon and a number is removed.
std::string_view strip_error_suffix(std::string_view what) noexcept;

/// A claim that failed, as the throwing forms report it: blocking
/// `pool::claim(timeout)`, `co_claim`, and `async_claim` with
/// `asio::use_awaitable`, and the future of `async_claim` with
/// `asio::use_future`. (The default `asio::deferred` token co_awaited
/// directly throws Asio's plain `boost::system::system_error` with the same
/// `code()`: use `co_claim` or `use_awaitable` for the explained error, or
/// `pool::explain()`.)
///
/// `what()` is one sentence: the pool, what went wrong, how long the claim
/// waited, the pool's state and the cause, e.g. `pool 'db': no backend
/// online after waiting 2.0 s (running; 2 backends known, 0 online; 0 of
/// 16 slots claimed, 3 claims waiting); last error: 127.0.0.1:5432
/// connect: Connection refused, 0.4 s ago` (no `[category:N]` suffix).
/// `code()` is the claim's error (`qorb::errc::no_backends_online`...;
/// docs/errors.md says what each means and what to do).
class claim_error : public boost::system::system_error {
 public:
  /// `ec`, with the pool's state in `stats` (its name among it) and how
  /// long the claim waited.
  claim_error(error_code ec, pool_stats stats, duration waited);

  /// The sentence above. Errors: none. Thread safety: any thread.
  /// Exceptions: none.
  const char* what() const noexcept override;
  /// The pool's name. Errors: none. Thread safety: any thread. Exceptions:
  /// none.
  const std::string& pool_name() const noexcept;
  /// How long the claim waited, from its start to its failure. Errors:
  /// none. Thread safety: any thread. Exceptions: none.
  duration waited() const noexcept;
  /// The pool as the claim found it when it failed (its status, backends,
  /// last errors, slots, queue). Errors: none. Thread safety: any thread.
  /// Exceptions: none.
  const pool_explanation& explanation() const noexcept;

 private:
  struct data;
  std::shared_ptr<const data> data_;
};

/// The first words of a claim error's sentence for `ec` (without the pool
/// and the wait): "no backend online", "all connections claimed", ...
/// (docs/errors.md).
std::string claim_error_head(const error_code& ec);

}  // namespace qorb
