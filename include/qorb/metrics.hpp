// SPDX-License-Identifier: BSL-1.0
// qorb's Prometheus metrics in the application's own prometheus-cpp
// registry or exposer (component: observability). The same families,
// names, help texts and labels as the stats server's /metrics.
#pragma once

#include <qorb/pool.hpp>
#include <qorb/stats_server.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <concepts>
#include <memory>
#include <vector>

namespace prometheus {
class Collectable;
class Registry;
}  // namespace prometheus

namespace qorb {

/// A prometheus-cpp collectable giving the `qorb_*` series of the pools
/// whose stats sources are given: exactly the families, names, help texts
/// and labels (`pool`, `backend`, ...) of the stats server's `/metrics`,
/// read fresh from the sources at each `Collect()` (each scrape). A source
/// that returns `std::nullopt` (a pool that is gone) gives no series.
/// Give every pool of one exposer to one collectable: two collectables of
/// one exposer would each print the `qorb_*` families.
///
/// Errors: none; a gone pool is left out.
///
/// Thread safety: any thread; the collectable's `Collect()` may be called
/// from any threads at once.
///
/// Exceptions: `std::bad_alloc`; `std::invalid_argument` for an empty
/// source.
std::shared_ptr<prometheus::Collectable> make_collectable(std::vector<stats_source> sources);

/// A collectable over `pools` (as the `stats_source` overload above), for
/// `prometheus::Exposer::RegisterCollectable` or the application's own
/// serialisation. Holds no reference to the pools, only weak ones to their
/// internals: a pool destroyed later just disappears from the series.
///
/// Example, several pools on the application's exposer:
/// @code
/// auto qorb_metrics = qorb::make_collectable(db_pool, cache_pool);
/// exposer.RegisterCollectable(qorb_metrics);  // keep qorb_metrics alive
/// @endcode
///
/// Errors: none. Thread safety: any thread; the result as above.
/// Exceptions: `std::bad_alloc`; `std::logic_error` for a moved-from pool.
template <class... Conn>
std::shared_ptr<prometheus::Collectable> make_collectable(const pool<Conn>&... pools) {
  return make_collectable(std::vector<stats_source>{pools.stats_source()...});
}

/// What `register_metrics(prometheus::Registry&, ...)` returns: while it
/// lives, one pool's `qorb_*` series in a registry are kept up to date;
/// destroying it removes them (and a family no other registration uses).
/// Default-constructed or moved-from it registers nothing.
class metrics_registration {
 public:
  /// An empty registration.
  metrics_registration() noexcept = default;
  /// Takes over `other`'s registration; `other` is left empty.
  metrics_registration(metrics_registration&& other) noexcept = default;
  /// Ends this registration (as the destructor), then takes over `other`'s.
  metrics_registration& operator=(metrics_registration&& other) noexcept;
  metrics_registration(const metrics_registration&) = delete;
  metrics_registration& operator=(const metrics_registration&) = delete;
  /// Removes this registration's series from the registry (see the class).
  ~metrics_registration();

  /// Reads the pool's stats now and updates the series (as each refresh
  /// of the timer does), e.g. just before the application serialises the
  /// registry itself. A gone pool's series are removed. Does nothing on an
  /// empty registration.
  ///
  /// Errors: by exceptions. Thread safety: any thread, concurrently with
  /// the timer's refreshes and other registrations. Exceptions:
  /// `std::invalid_argument` from prometheus-cpp when the registry holds a
  /// family of the same name of another type or with constant labels;
  /// `std::bad_alloc`.
  void refresh();

  /// Whether this registers something (not default-constructed or moved
  /// from).
  explicit operator bool() const noexcept { return state_ != nullptr; }

  /// @cond internal
  struct state;
  explicit metrics_registration(std::shared_ptr<state> s) noexcept : state_(std::move(s)) {}
  /// @endcond

 private:
  std::shared_ptr<state> state_;
};

/// Adds the `qorb_*` series of the pool behind `source` to the
/// application's `registry`, with the families, names, help texts and
/// labels of the stats server's `/metrics`. prometheus-cpp's `Registry`
/// holds only the families it builds itself (it cannot call back into
/// qorb at a scrape), so the series are copies: set now, then refreshed
/// every `refresh_interval` by a timer on `executor` (a scrape sees
/// figures at most that old; `metrics_registration::refresh` refreshes at
/// once). Several pools may share a registry: their series differ by the
/// `pool` label and share the families. The application's own families in
/// the registry are left alone (the `qorb_*` names are qorb's).
///
/// Handler: none (the timer's refreshes are internal).
///
/// Errors: by exceptions, from the first refresh (below). A refresh of the
/// timer that throws is skipped; the next one tries again.
///
/// Executor: the first refresh runs in the caller; the later ones on a
/// strand of `executor`.
///
/// Cancellation: destroying the result cancels the timer. The timer also
/// ends at its first tick after the pool is gone (its series are then
/// removed). Until then it keeps `executor`'s `run()` busy.
///
/// Lifetimes: `registry` must outlive the result, and so must the
/// executor's context unless the timer has ended (it posts the timer's
/// cancellation there); the result holds no reference to the pool.
///
/// Thread safety: any thread, concurrently with other registrations and
/// with scrapes of the registry.
///
/// Exceptions: `std::invalid_argument` for an empty source or a
/// `refresh_interval` not positive, or from prometheus-cpp (a family of
/// the same name of another type or with constant labels in the
/// registry);
/// `std::bad_alloc`.
[[nodiscard]] metrics_registration register_metrics(
    prometheus::Registry& registry, stats_source source, asio::any_io_executor executor,
    std::chrono::milliseconds refresh_interval = std::chrono::seconds(1));

/// Adds pool `p`'s `qorb_*` series to the application's `registry` (as the
/// `stats_source` overload above, on the pool's executor), for an
/// application that exposes its own prometheus-cpp metrics:
/// @code
/// auto registry = std::make_shared<prometheus::Registry>();
/// auto db_metrics = qorb::register_metrics(*registry, db_pool);  // keep it
/// exposer.RegisterCollectable(registry);
/// @endcode
///
/// Handler: none. Errors: by exceptions. Executor: the pool's, as above.
/// Cancellation: destroying the result. Lifetimes: `registry` must outlive
/// the result; `p` need not. Thread safety: as above. Exceptions: as above,
/// and `std::logic_error` for a moved-from pool.
template <class Conn>
[[nodiscard]] metrics_registration register_metrics(
    prometheus::Registry& registry, const pool<Conn>& p,
    std::chrono::milliseconds refresh_interval = std::chrono::seconds(1)) {
  return register_metrics(registry, p.stats_source(), p.get_executor(), refresh_interval);
}

/// Registers a collectable of `pools` (`make_collectable`) with `exposer`
/// (anything with `RegisterCollectable(std::weak_ptr<prometheus::Collectable>)`,
/// such as `prometheus::Exposer`) and returns it: the series are read
/// fresh at each scrape. The exposer holds only a weak pointer: keep the
/// result for as long as the series should be served. Register all pools
/// of one exposer in one call (see `make_collectable`).
///
/// Errors: none. Thread safety: as `exposer.RegisterCollectable`.
/// Exceptions: `std::bad_alloc`; `std::logic_error` for a moved-from pool;
/// what `RegisterCollectable` throws.
template <class Exposer, class... Conn>
requires requires(Exposer& e, std::weak_ptr<prometheus::Collectable> w) {
  e.RegisterCollectable(w);
}
[[nodiscard]] std::shared_ptr<prometheus::Collectable> register_metrics(
    Exposer& exposer, const pool<Conn>&... pools) {
  auto collectable = make_collectable(pools...);
  exposer.RegisterCollectable(std::weak_ptr<prometheus::Collectable>(collectable));
  return collectable;
}

}  // namespace qorb
