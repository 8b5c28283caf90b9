// SPDX-License-Identifier: BSL-1.0
// qorb's metrics in the application's prometheus-cpp registry or exposer
// (include/qorb/metrics.hpp). Both read the families of /metrics from
// stats_prometheus::families; the registry gets copies of them, since a
// prometheus::Registry only holds families it builds itself.
#include <qorb/metrics.hpp>

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

#include "observability/stats_prometheus.hpp"

namespace qorb {
namespace {

namespace prom = prometheus;

// The series of `sources` as /metrics gives them (gone pools left out).
std::vector<prom::MetricFamily> collect(const std::vector<stats_source>& sources) {
  std::vector<pool_stats> snapshots;
  snapshots.reserve(sources.size());
  for (const auto& source : sources) {
    if (auto s = source()) snapshots.push_back(std::move(*s));
  }
  std::vector<const pool_stats*> pools;
  for (const auto& s : snapshots) pools.push_back(&s);
  return detail::stats_prometheus::families(pools);
}

class pools_collectable final : public prom::Collectable {
 public:
  explicit pools_collectable(std::vector<stats_source> sources) : sources_(std::move(sources)) {}
  std::vector<prom::MetricFamily> Collect() const override { return collect(sources_); }

 private:
  const std::vector<stats_source> sources_;
};

void check_sources(const std::vector<stats_source>& sources) {
  for (const auto& s : sources) {
    if (!s) throw std::invalid_argument("qorb: metrics of an empty stats source");
  }
}

// Every registration's access to the registries: the families they share
// (by name) and their use counts, so the last user of a family removes it
// and no registration keeps a pointer to a family another one removed.
std::mutex registries_mutex;
std::map<std::pair<const prom::Registry*, std::string>, std::size_t> family_users;

}  // namespace

std::shared_ptr<prom::Collectable> make_collectable(std::vector<stats_source> sources) {
  check_sources(sources);
  return std::make_shared<pools_collectable>(std::move(sources));
}

// One pool's series copied into a registry. All of it is guarded by
// registries_mutex.
struct metrics_registration::state {
  template <class T>
  struct series {
    prom::Family<T>* family;
    T* metric;
  };
  struct entry {
    using any_series =
        std::variant<series<prom::Counter>, series<prom::Gauge>, series<prom::Histogram>>;
    explicit entry(any_series x) : s(x) {}
    any_series s;
    // What was last added (counters and histograms only grow: a refresh
    // adds the difference).
    double value = 0;
    std::vector<double> cumulative;
  };
  using key = std::pair<std::string, prom::Labels>;

  prom::Registry* registry;
  stats_source source;
  bool ended = false;
  // The refresh timer, while a wait of it is pending (its handler owns it).
  std::weak_ptr<asio::steady_timer> timer;
  std::map<std::string, std::variant<prom::Family<prom::Counter>*, prom::Family<prom::Gauge>*,
                                     prom::Family<prom::Histogram>*>>
      families;
  std::map<key, entry> entries;

  // The registry's family `f` (built, or merged with the one there).
  template <class T, class Builder>
  prom::Family<T>& family(Builder builder, const prom::MetricFamily& f) {
    if (auto it = families.find(f.name); it != families.end()) {
      return *std::get<prom::Family<T>*>(it->second);
    }
    auto& fam = builder.Name(f.name).Help(f.help).Register(*registry);
    families.emplace(f.name, &fam);
    ++family_users[{registry, f.name}];
    return fam;
  }

  static prom::Labels labels_of(const prom::ClientMetric& m) {
    prom::Labels out;
    for (const auto& l : m.label) out.emplace(l.name, l.value);
    return out;
  }

  void update_counter(prom::Family<prom::Counter>& fam, const key& k, double value) {
    auto it = entries.find(k);
    if (it == entries.end()) {
      it = entries.emplace(k, entry{series<prom::Counter>{&fam, &fam.Add(k.second)}}).first;
    }
    auto& e = it->second;
    auto& s = std::get<series<prom::Counter>>(e.s);
    if (value < e.value) {  // cannot go down: a new series
      fam.Remove(s.metric);
      s.metric = &fam.Add(k.second);
      e.value = 0;
    }
    s.metric->Increment(value - e.value);
    e.value = value;
  }

  void update_histogram(prom::Family<prom::Histogram>& fam, const key& k,
                        const prom::ClientMetric::Histogram& h) {
    // prometheus-cpp gives cumulative buckets ending with +Inf; a
    // Histogram takes the finite bounds and per-bucket increments.
    std::vector<double> bounds, cumulative;
    for (const auto& b : h.bucket) {
      cumulative.push_back(static_cast<double>(b.cumulative_count));
      if (&b != &h.bucket.back()) bounds.push_back(b.upper_bound);
    }
    auto it = entries.find(k);
    if (it == entries.end()) {
      entry e{series<prom::Histogram>{&fam, &fam.Add(k.second, bounds)}};
      e.cumulative.assign(cumulative.size(), 0.0);
      it = entries.emplace(k, std::move(e)).first;
    }
    auto& e = it->second;
    auto& s = std::get<series<prom::Histogram>>(e.s);
    bool shrank = e.cumulative.size() != cumulative.size() || h.sample_sum < e.value;
    for (std::size_t i = 0; !shrank && i < cumulative.size(); ++i) {
      shrank = cumulative[i] < e.cumulative[i];
    }
    if (shrank) {  // other buckets, or fewer samples: a new series
      fam.Remove(s.metric);
      s.metric = &fam.Add(k.second, bounds);
      e.cumulative.assign(cumulative.size(), 0.0);
      e.value = 0;
    }
    std::vector<double> increments(cumulative.size());
    for (std::size_t i = 0; i < cumulative.size(); ++i) {
      const double below = i == 0 ? 0.0 : cumulative[i - 1] - e.cumulative[i - 1];
      increments[i] = (cumulative[i] - e.cumulative[i]) - below;
    }
    s.metric->ObserveMultiple(increments, h.sample_sum - e.value);
    e.cumulative = std::move(cumulative);
    e.value = h.sample_sum;
  }

  // Makes the registry's series of this pool those of `fresh`: updates
  // them, adds the new ones, removes those no longer there.
  void apply(const std::vector<prom::MetricFamily>& fresh) {
    std::map<key, entry> kept;
    try {
      copy(fresh, kept);
    } catch (...) {  // (a family clash) what was kept stays tracked
      entries.merge(kept);
      throw;
    }
    remove_series();
    entries = std::move(kept);
  }

  // Updates the series of `fresh`, moving their entries to `kept`.
  void copy(const std::vector<prom::MetricFamily>& fresh, std::map<key, entry>& kept) {
    for (const auto& f : fresh) {
      for (const auto& m : f.metric) {
        key k{f.name, labels_of(m)};
        switch (f.type) {
          case prom::MetricType::Counter:
            update_counter(family<prom::Counter>(prom::BuildCounter(), f), k, m.counter.value);
            break;
          case prom::MetricType::Gauge: {
            auto& fam = family<prom::Gauge>(prom::BuildGauge(), f);
            auto it = entries.find(k);
            if (it == entries.end()) {
              it = entries.emplace(k, entry{series<prom::Gauge>{&fam, &fam.Add(k.second)}}).first;
            }
            std::get<series<prom::Gauge>>(it->second.s).metric->Set(m.gauge.value);
            break;
          }
          case prom::MetricType::Histogram:
            update_histogram(family<prom::Histogram>(prom::BuildHistogram(), f), k, m.histogram);
            break;
          default:  // /metrics has no summaries, info or untyped metrics
            continue;
        }
        kept.insert(entries.extract(k));
      }
    }
  }

  // Removes every series in `entries` from the registry.
  void remove_series() {
    for (auto& [k, e] : entries) {
      std::visit([](auto& s) { s.family->Remove(s.metric); }, e.s);
    }
    entries.clear();
  }

  // Removes this pool's series, and the families no registration uses
  // any more.
  void end() {
    if (ended) return;
    ended = true;
    remove_series();
    for (const auto& [name, family] : families) {
      auto users = family_users.find({registry, name});
      if (--users->second != 0) continue;
      family_users.erase(users);
      std::visit([this](auto* f) { registry->Remove(*f); }, family);
    }
    families.clear();
  }

  // Reads the pool and updates the registry; false once the pool is gone
  // (its series removed) or the registration ended.
  bool refresh() {
    auto stats = source();
    std::lock_guard lock(registries_mutex);
    if (ended) return false;
    if (!stats) {
      remove_series();
      return false;
    }
    apply(detail::stats_prometheus::families({&*stats}));
    return true;
  }
};

namespace {

void schedule(std::weak_ptr<metrics_registration::state> weak,
              std::shared_ptr<asio::steady_timer> timer, std::chrono::milliseconds interval) {
  timer->expires_after(interval);
  timer->async_wait([weak = std::move(weak), timer, interval](boost::system::error_code ec) {
    if (ec) return;
    auto s = weak.lock();
    if (!s) return;
    try {
      if (!s->refresh()) return;
    } catch (const std::exception&) {
      // Skipped (a family clash the first refresh would have reported);
      // the next tick tries again.
    }
    schedule(std::move(weak), std::move(timer), interval);
  });
}

}  // namespace

metrics_registration& metrics_registration::operator=(metrics_registration&& other) noexcept {
  if (this != &other) {
    metrics_registration gone(std::move(*this));
    state_ = std::move(other.state_);
  }
  return *this;
}

metrics_registration::~metrics_registration() {
  if (!state_) return;
  {
    std::lock_guard lock(registries_mutex);
    state_->end();
  }
  // A pending wait ends now rather than at its tick, so that the
  // executor's run() may return (no pending wait: nothing to cancel, and
  // the executor's context may be gone).
  if (auto timer = state_->timer.lock()) {
    asio::post(timer->get_executor(), [timer] { timer->cancel(); });
  }
}

void metrics_registration::refresh() {
  if (state_) state_->refresh();
}

metrics_registration register_metrics(prom::Registry& registry, stats_source source,
                                      asio::any_io_executor executor,
                                      std::chrono::milliseconds refresh_interval) {
  check_sources({source});
  if (refresh_interval <= std::chrono::milliseconds::zero()) {
    throw std::invalid_argument("qorb: register_metrics: refresh_interval must be positive");
  }
  auto s = std::make_shared<metrics_registration::state>();
  s->registry = &registry;
  s->source = std::move(source);
  metrics_registration registration(s);
  if (s->refresh()) {
    auto timer = std::make_shared<asio::steady_timer>(asio::make_strand(executor));
    s->timer = timer;
    schedule(s, std::move(timer), refresh_interval);
  }
  return registration;
}

}  // namespace qorb
