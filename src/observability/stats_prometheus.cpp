// SPDX-License-Identifier: BSL-1.0
#include "observability/stats_prometheus.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <chrono>
#include <cstdint>
#include <utility>

namespace qorb::detail::stats_prometheus {

std::string render(const std::vector<const pool_stats*>& pools) {
  return prometheus::TextSerializer().Serialize(families(pools));
}

std::vector<prometheus::MetricFamily> families(const std::vector<const pool_stats*>& pools) {
  namespace prom = prometheus;
  prom::Registry registry;
  auto& connections = prom::BuildGauge()
                          .Name("qorb_connections")
                          .Help("Connections (slots) of a backend by state")
                          .Register(registry);
  auto& online = prom::BuildGauge()
                     .Name("qorb_backend_online")
                     .Help("1 when some connection to the backend is up")
                     .Register(registry);
  auto& backend_claims = prom::BuildCounter()
                             .Name("qorb_backend_claims_total")
                             .Help("Claims served by a backend since the pool started")
                             .Register(registry);
  auto& pool_claims = prom::BuildCounter()
                          .Name("qorb_claims_total")
                          .Help("Claims served by the pool since it started")
                          .Register(registry);
  auto& max_slots = prom::BuildGauge()
                        .Name("qorb_max_slots")
                        .Help("The pool's cap on connections (policy max_slots)")
                        .Register(registry);
  auto& last_error = prom::BuildGauge()
                         .Name("qorb_backend_last_error_timestamp_seconds")
                         .Help("When a backend's last connect or check failed (Unix time)")
                         .Register(registry);
  auto& waiting = prom::BuildGauge()
                      .Name("qorb_claims_waiting")
                      .Help("Claims queued for a connection right now")
                      .Register(registry);
  auto& failures = prom::BuildCounter()
                       .Name("qorb_claim_failures_total")
                       .Help("Claims that failed, by reason")
                       .Register(registry);
  auto& wait = prom::BuildHistogram()
                   .Name("qorb_claim_wait_seconds")
                   .Help("Time from a claim to its completion, served or failed")
                   .Register(registry);
  auto& connect_failures = prom::BuildCounter()
                               .Name("qorb_connect_failures_total")
                               .Help("Failed connection attempts to a backend")
                               .Register(registry);
  auto& check_failures = prom::BuildCounter()
                             .Name("qorb_check_failures_total")
                             .Help("Failed health checks, on_acquire and on_recycle calls")
                             .Register(registry);
  auto& reported = prom::BuildCounter()
                       .Name("qorb_claims_reported_total")
                       .Help(
                           "Claims whose caller said the connection was broken (kind=discard) "
                           "or the backend failed a request (kind=failure)")
                       .Register(registry);
  auto& opened = prom::BuildCounter()
                     .Name("qorb_connections_opened_total")
                     .Help("Connections to a backend the pool opened and kept")
                     .Register(registry);
  auto& closed = prom::BuildCounter()
                     .Name("qorb_connections_closed_total")
                     .Help("Connections to a backend the pool closed, by reason")
                     .Register(registry);
  auto& connect_time = prom::BuildHistogram()
                           .Name("qorb_connect_duration_seconds")
                           .Help("Time a connect that gave a connection took")
                           .Register(registry);
  auto& status = prom::BuildGauge()
                     .Name("qorb_pool_status")
                     .Help("1 for the pool's status (starting, running, failed, stopping, stopped)")
                     .Register(registry);
  auto& min_idle = prom::BuildGauge()
                       .Name("qorb_min_idle")
                       .Help("Idle connections the pool keeps at least (policy min_idle)")
                       .Register(registry);
  auto& spares_wanted = prom::BuildGauge()
                            .Name("qorb_spares_wanted")
                            .Help("Unclaimed connections the pool aims for (policy spares_wanted)")
                            .Register(registry);
  auto& max_connecting = prom::BuildGauge()
                             .Name("qorb_max_connecting")
                             .Help("Connects the pool runs at once at most (policy max_connecting)")
                             .Register(registry);
  auto& in_flight = prom::BuildGauge()
                        .Name("qorb_connects_in_flight")
                        .Help("Connects running right now")
                        .Register(registry);
  auto& connects_waiting = prom::BuildGauge()
                               .Name("qorb_connects_waiting")
                               .Help("Connects waiting for a turn under max_connecting")
                               .Register(registry);
  auto& site_wait = prom::BuildHistogram()
                        .Name("qorb_claim_site_wait_seconds")
                        .Help(
                            "Time from a claim to its completion, by claim site (file:line; "
                            "the 32 first sites, the rest as other)")
                        .Register(registry);
  auto& site_hold = prom::BuildHistogram()
                        .Name("qorb_claim_site_hold_seconds")
                        .Help(
                            "Time a claim held its connection, by claim site (while holds "
                            "are timed: policy time_holds or hold_warning)")
                        .Register(registry);
  auto& hold_warnings = prom::BuildCounter()
                            .Name("qorb_hold_warnings_total")
                            .Help("Claims held longer than policy hold_warning (each once)")
                            .Register(registry);
  auto& oldest_hold = prom::BuildGauge()
                          .Name("qorb_claim_oldest_hold_seconds")
                          .Help(
                              "How long the oldest claimed connection has been held (0 when "
                              "none is, or holds are not timed)")
                          .Register(registry);

  const auto as_double = [](auto n) { return static_cast<double>(n); };
  // Every reason, 0 included, so that rate() works from the first scrape.
  const auto count_connections = [&](const prom::Labels& labels, const connection_counts& c) {
    opened.Add(labels).Increment(as_double(c.opened));
    for (std::size_t i = 0; i < close_reason_count; ++i) {
      auto with_reason = labels;
      with_reason.emplace("reason", to_string(static_cast<close_reason>(i)));
      closed.Add(with_reason).Increment(as_double(c.closed[i]));
    }
  };
  const auto observe = [&](prom::Family<prom::Histogram>& family, const prom::Labels& labels,
                           const claim_wait_histogram& h) {
    const auto& bounds = claim_wait_histogram::bounds_s;
    std::vector<double> increments;
    for (std::uint64_t count : h.counts) increments.push_back(as_double(count));
    family.Add(labels, prom::Histogram::BucketBoundaries(bounds.begin(), bounds.end()))
        .ObserveMultiple(increments, h.sum_s);
  };
  for (const auto* pool : pools) {
    const auto& p = *pool;
    for (const auto& [name, b] : p.backends) {
      const prom::Labels labels{{"pool", p.name}, {"backend", name}};
      const std::pair<const char*, std::size_t> states[] = {{"connecting", b.connecting},
                                                            {"unclaimed", b.unclaimed},
                                                            {"checking", b.checking},
                                                            {"claimed", b.claimed}};
      for (const auto& [state, count] : states) {
        auto with_state = labels;
        with_state.emplace("state", state);
        connections.Add(with_state).Set(as_double(count));
      }
      online.Add(labels).Set(b.online ? 1.0 : 0.0);
      if (b.last_error) {
        auto with_operation = labels;
        with_operation.emplace("operation", b.last_error->operation);
        last_error.Add(with_operation)
            .Set(std::chrono::duration<double>(b.last_error->at.time_since_epoch()).count());
      }
      backend_claims.Add(labels).Increment(as_double(b.total_claims));
      connect_failures.Add(labels).Increment(as_double(b.connect_failures));
      check_failures.Add(labels).Increment(as_double(b.check_failures));
      auto with_kind = [&](const char* kind) {
        prom::Labels l = labels;
        l.emplace("kind", kind);
        return l;
      };
      reported.Add(with_kind("discard")).Increment(as_double(b.discards));
      reported.Add(with_kind("failure")).Increment(as_double(b.failures_reported));
      count_connections(labels, b.connections);
    }
    const prom::Labels labels{{"pool", p.name}};
    pool_claims.Add(labels).Increment(as_double(p.total_claims));
    waiting.Add(labels).Set(as_double(p.claims_waiting));
    max_slots.Add(labels).Set(as_double(p.max_slots));
    const auto& f = p.claim_failures;
    const std::pair<const char*, std::uint64_t> reasons[] = {
        {"no_backends", f.no_backends},
        {"no_backends_online", f.no_backends_online},
        {"all_claims_used", f.all_claims_used},
        {"terminated", f.terminated},
        {"cancelled", f.cancelled},
        {"acquire_failed", f.acquire_failed}};
    for (const auto& [reason, count] : reasons) {
      failures.Add({{"pool", p.name}, {"reason", reason}}).Increment(as_double(count));
    }
    observe(wait, labels, p.claim_wait);
    observe(connect_time, labels, p.connect_time);
    constexpr pool_status statuses[] = {pool_status::starting, pool_status::running,
                                        pool_status::failed, pool_status::stopping,
                                        pool_status::stopped};
    for (const auto s : statuses) {
      status.Add({{"pool", p.name}, {"status", to_string(s)}}).Set(s == p.status ? 1.0 : 0.0);
    }
    min_idle.Add(labels).Set(as_double(p.min_idle));
    spares_wanted.Add(labels).Set(as_double(p.spares_wanted));
    max_connecting.Add(labels).Set(as_double(p.max_connecting));
    in_flight.Add(labels).Set(as_double(p.connects_in_flight));
    connects_waiting.Add(labels).Set(as_double(p.connects_waiting));
    for (const auto& site : p.sites) {
      const prom::Labels with_site{{"pool", p.name}, {"site", site.site.label()}};
      observe(site_wait, with_site, site.wait);
      observe(site_hold, with_site, site.hold);
    }
    hold_warnings.Add(labels).Increment(as_double(p.hold_warnings));
    const bool timed = !p.holders.empty() && p.holders.front().timed;
    oldest_hold.Add(labels).Set(timed ? std::chrono::duration<double>(p.holders.front().age).count()
                                      : 0.0);
  }
  return registry.Collect();
}

}  // namespace qorb::detail::stats_prometheus
