// SPDX-License-Identifier: BSL-1.0
// qorb: the pool's policy (how many connections, how often, how long).
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>

namespace qorb {

/// Every time in a policy: a steady-clock duration.
using duration = std::chrono::steady_clock::duration;

/// The most `max_slots`, `set_config.max_count` and `spares_wanted` may be
/// (`validate` names the field and this bound when one is above it). A
/// million connections is past what one process can hold open; a bigger
/// number is a mistake (SIZE_MAX for "unlimited"), not a plan.
inline constexpr std::size_t max_policy_count = 1'000'000;

/// Policy for the slots of one backend.
///
/// Every duration may be `duration::max()`, meaning "forever": deadlines
/// built from it saturate at the end of time instead of overflowing.
struct set_config {
  /// Most slots (connections) one backend may get. Valid: 1 to
  /// `max_policy_count`.
  std::size_t max_count = 16;
  /// First reconnect delay after a failure; doubles each failure...
  /// Valid: positive.
  duration min_connection_backoff = std::chrono::milliseconds(20);
  /// ...up to this. Also sizes the failure window (2 x this), and is how
  /// long a connection must stay up before its loss reconnects at once: one
  /// lost sooner continues the slot's backoff. Valid: at least
  /// `min_connection_backoff`.
  duration max_connection_backoff = std::chrono::seconds(30);
  /// Random extra delay in [0, spread) added to backoffs and health checks,
  /// so slots do not act in lockstep. Valid: zero (none) or positive.
  duration spread = std::chrono::milliseconds(20);
  /// How often an idle connection is checked with `is_valid`;
  /// `std::nullopt` means never. Valid: positive, or `std::nullopt`.
  std::optional<duration> health_interval = std::chrono::seconds(30);
  /// Time bound for `is_valid`, `on_acquire` and `on_recycle`. Valid:
  /// positive.
  duration health_check_timeout = std::chrono::seconds(3);
  /// Time bound for `connect` (10 s by default, so a backend that never
  /// answers does not hold a slot in `connecting`); `std::nullopt` means
  /// none. Valid: positive, or `std::nullopt`.
  std::optional<duration> connect_timeout = std::chrono::seconds(10);
  /// How long a connection may live (HikariCP's `maxLifetime`): an idle
  /// connection older than its lifetime is closed and replaced; a claimed
  /// one when it comes back, never while claimed. `std::nullopt` (the
  /// default): forever. Valid: positive, or `std::nullopt`.
  std::optional<duration> max_lifetime = std::nullopt;
  /// Each connection's lifetime is drawn uniformly from
  /// [max_lifetime - jitter, max_lifetime], so connections opened together
  /// do not expire together. `std::nullopt` (the default): 10% of
  /// `max_lifetime`. Valid: zero to `max_lifetime`, or `std::nullopt`.
  std::optional<duration> max_lifetime_jitter = std::nullopt;
  /// An idle connection unused (neither claimed nor connected) for this
  /// long is closed while the pool holds more idle connections than the
  /// larger of `policy::min_idle` and `policy::spares_wanted` (a backend's
  /// last connection stays: closing it would take the backend offline).
  /// `std::nullopt` (the default): never. Valid: positive, or `std::nullopt`.
  std::optional<duration> idle_timeout = std::nullopt;
};

/// Policy for the whole pool. Defaults are qorb's; each field says its valid
/// range, and a value outside it makes the pool's constructor throw
/// `invalid_policy` naming the field (docs/policy.md has every field's unit
/// and effect).
///
/// Example: at most 64 connections, 4 spare, claims that wait 2 s:
/// @code
/// qorb::policy p;
/// p.max_slots = 64;
/// p.spares_wanted = 4;
/// p.claim_timeout = std::chrono::seconds(2);
/// p.set_config.connect_timeout = std::chrono::seconds(5);
/// qorb::pool<asio::ip::tcp::socket> pool(io.get_executor(), "db", resolver,
///                                        qorb::tcp_connector{}, p);
/// @endcode
struct policy {
  /// Idle connections wanted pool-wide beyond those claimed (never more
  /// than `max_slots` in all). Valid: 0 to `max_policy_count`.
  std::size_t spares_wanted = 8;
  /// Hard cap on slots pool-wide. Valid: 1 to `max_policy_count`.
  std::size_t max_slots = 16;
  /// Idle connections the pool keeps at all times, topped up while others
  /// are claimed (HikariCP's `minimumIdle`), within `max_slots`. With
  /// `spares_wanted`, the pool's idle target is the larger of the two.
  /// Valid: 0 (the default) to `max_slots`.
  std::size_t min_idle = 0;
  /// How often slots are redistributed over backends (also done whenever a
  /// backend goes online or offline). Valid: positive.
  duration rebalance_interval = std::chrono::seconds(60);
  /// How long a claim waits for a connection before failing;
  /// `duration::max()` waits forever (until a connection, or terminate).
  /// Valid: positive.
  duration claim_timeout = std::chrono::seconds(30);
  /// Fail claims at once with `errc::no_backends` when the resolver has
  /// published an empty set, instead of waiting (cueball's errorOnEmpty).
  bool fail_fast_without_backends = false;
  /// Connects in flight at most, pool-wide (MongoDB's `maxConnecting`): the
  /// rest wait their turn, first come first served, so warming up many
  /// slots or a fleet restart does not open them all at once. Valid: 1 to
  /// `max_policy_count`.
  std::size_t max_connecting = 8;
  /// The pool is `failed` once no backend has been online for this long
  /// while every known backend's connects failed (or the resolver knew
  /// none). Valid: positive.
  duration failed_after = std::chrono::seconds(10);
  /// In `failed`, claims wait (until their timeout) instead of failing at
  /// once with `errc::pool_failed`.
  bool wait_when_failed = false;
  /// A handle held longer than this is warned about once (HikariCP's
  /// `leakDetectionThreshold`): a log line (warn) naming the pool, the
  /// backend, the age and the claim site, the `hold_warning` probe, and
  /// `pool_stats::hold_warnings`. `std::nullopt` (the default): never.
  /// Valid: positive, or `std::nullopt`.
  std::optional<duration> hold_warning = std::nullopt;
  /// Time every hold: `pool::holders()` gives each claimed connection's
  /// age, `pool_stats::sites` how long each site's claims held their
  /// connection. It costs a claim and its return two reads of the system's
  /// coarse monotonic clock (about 17 ns together on a 2-core EPYC VM, a
  /// fifth of a claim), which is why it is off by default; `hold_warning`
  /// turns it on. Ages have the coarse clock's resolution (a few ms).
  bool time_holds = false;
  /// The policy for each backend's slots.
  qorb::set_config set_config{};
};

/// Thrown when a policy value makes no sense; `field()` names it
/// (e.g. "set_config.max_connection_backoff").
class invalid_policy : public std::invalid_argument {
 public:
  /// "qorb: invalid policy: FIELD WHY".
  invalid_policy(std::string field, const std::string& why)
      : std::invalid_argument("qorb: invalid policy: " + field + " " + why),
        field_(std::move(field)) {}
  /// The field, as written in code (e.g. "set_config.max_count").
  const std::string& field() const noexcept { return field_; }

 private:
  std::string field_;
};

/// Throws `invalid_policy` naming the first bad field; the pool calls this
/// before it does anything else.
void validate(const policy& p);

}  // namespace qorb
