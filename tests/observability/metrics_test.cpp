// SPDX-License-Identifier: BSL-1.0
// qorb's metrics in the application's own prometheus-cpp registry and
// exposer (<qorb/metrics.hpp>), over real TCP pools on loopback echo
// servers: the series the stats server's /metrics gives, their values
// after claims, several pools side by side, pools and registrations that
// go, and the application's own metrics left alone.
#include <qorb/connectors/tcp.hpp>
#include <qorb/metrics.hpp>
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>
#include <qorb/stats_server.hpp>

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "http_get.hpp"
#include "support/echo_server.hpp"
#include "support/io_threads.hpp"
#include "support/test_policy.hpp"
#include "support/wait.hpp"

namespace qorb::test {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
using echo_pool = pool<tcp::socket>;

// A Prometheus text exposition read back: each sample ("name{labels}")
// with its value, and each HELP and TYPE line with how often it appears.
struct exposition {
  std::map<std::string, double> samples;
  std::map<std::string, int> meta;

  explicit exposition(const std::string& text) {
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) {
      if (l.empty()) continue;
      if (l[0] == '#') {
        ++meta[l];
        continue;
      }
      const auto space = l.rfind(' ');
      samples[l.substr(0, space)] = std::stod(l.substr(space + 1));
    }
  }
  double at(const std::string& sample) const {
    const auto it = samples.find(sample);
    return it == samples.end() ? -1.0 : it->second;
  }
  // Whether some sample's name or labels contain `part`.
  bool mentions(const std::string& part) const {
    for (const auto& [s, v] : samples) {
      if (s.find(part) != std::string::npos) return true;
    }
    return false;
  }
  // The samples and HELP/TYPE lines of the `qorb_*` families only.
  exposition qorb_only() const {
    exposition out("");
    for (const auto& [s, v] : samples) {
      if (s.rfind("qorb_", 0) == 0) out.samples.emplace(s, v);
    }
    for (const auto& [l, n] : meta) {
      if (l.find(" qorb_") != std::string::npos) out.meta.emplace(l, n);
    }
    return out;
  }
  bool operator==(const exposition&) const = default;
};

std::string text_of(const prometheus::Collectable& c) {
  return prometheus::TextSerializer().Serialize(c.Collect());
}

// Two pools ("alpha", "beta"), each over its own loopback echo server.
struct echo_pool_fixture {
  echo_server backend;
  io_threads io{2};
  std::optional<echo_pool> alpha, beta;
  echo_server backend_b;

  echo_pool_fixture() {
    auto p = quick_policy();
    p.max_slots = 4;
    p.spares_wanted = 2;
    alpha.emplace(io.executor(), "alpha",
                  std::make_shared<fixed_resolver>(std::vector{backend.endpoint()}),
                  tcp_connector{}, p, nullptr);
    beta.emplace(io.executor(), "beta",
                 std::make_shared<fixed_resolver>(std::vector{backend_b.endpoint()}),
                 tcp_connector{}, p, nullptr);
  }
  ~echo_pool_fixture() {
    alpha.reset();
    beta.reset();
    io.join();
  }
  // Both pools connected, idle and quiet (no connect or check running).
  bool settled() const {
    for (const auto* p : {&*alpha, &*beta}) {
      const auto s = p->stats();
      if (s.backends.size() != 1) return false;
      const auto& b = s.backends.begin()->second;
      if (b.connecting != 0 || b.checking != 0 || b.claimed != 0 || b.unclaimed == 0) {
        return false;
      }
    }
    return true;
  }
  // A stats server showing both pools, for /metrics to compare with.
  std::unique_ptr<stats_server> serve() {
    stats_server_config cfg;
    cfg.listen = {asio::ip::make_address("127.0.0.1"), 0};
    cfg.snapshot_interval = 1ms;
    auto server = std::make_unique<stats_server>(io.executor(), cfg);
    server->attach(*alpha);
    server->attach(*beta);
    server->start();
    return server;
  }
  void claim(echo_pool& p, int n) {
    for (int i = 0; i < n; ++i) {
      auto h = p.claim();
      ASSERT_TRUE(h);
    }
  }
};

TEST(metrics, registry_holds_the_series_of_two_pools_beside_the_applications_own) {
  echo_pool_fixture f;
  prometheus::Registry registry;
  auto& requests = prometheus::BuildCounter()
                       .Name("app_requests_total")
                       .Help("The application's own metric")
                       .Register(registry)
                       .Add({{"path", "/"}});
  requests.Increment(7);

  auto alpha_metrics = register_metrics(registry, *f.alpha, 20ms);
  auto beta_metrics = register_metrics(registry, *f.beta, 20ms);
  ASSERT_TRUE(alpha_metrics);
  ASSERT_TRUE(wait_until([&] { return f.settled(); }));
  f.claim(*f.alpha, 3);
  f.claim(*f.beta, 2);

  // The timer brings the claims into the registry: counted, and their
  // waits in the histogram (the pool counts the two one after the other).
  const auto claims = [](const exposition& e, const std::string& pool) {
    return e.at("qorb_claims_total{pool=\"" + pool + "\"}");
  };
  const auto waits = [](const exposition& e, const std::string& pool) {
    return e.at("qorb_claim_wait_seconds_count{pool=\"" + pool + "\"}");
  };
  ASSERT_TRUE(wait_until([&] {
    const exposition e(text_of(registry));
    return claims(e, "alpha") == 3 && claims(e, "beta") == 2 && waits(e, "alpha") == 3 &&
           waits(e, "beta") == 2;
  })) << text_of(registry);
  const exposition e(text_of(registry));
  EXPECT_EQ(e.at("app_requests_total{path=\"/\"}"), 7);
  EXPECT_EQ(e.at("qorb_claim_wait_seconds_bucket{pool=\"beta\",le=\"+Inf\"}"), 2);
  EXPECT_EQ(
      e.at("qorb_backend_claims_total{backend=\"" + f.backend_b.endpoint().address().to_string() +
           ":" + std::to_string(f.backend_b.endpoint().port()) + "\",pool=\"beta\"}"),
      2);
  // One family each, shared by the pools.
  EXPECT_EQ(e.meta.at("# TYPE qorb_claims_total counter"), 1);
  EXPECT_EQ(e.meta.at("# HELP qorb_claims_total Claims served by the pool since it started"), 1);

  // Exactly what the stats server's /metrics shows for the two pools, once
  // both are quiet.
  auto server = f.serve();
  std::string served;
  EXPECT_TRUE(wait_until([&] {
    if (!f.settled()) return false;
    alpha_metrics.refresh();
    beta_metrics.refresh();
    served = get(server->local_endpoint().port(), "/metrics");
    return exposition(text_of(registry)).qorb_only() == exposition(served);
  })) << "registry:\n"
      << text_of(registry) << "\n/metrics:\n"
      << served;
}

TEST(metrics, a_pool_destroyed_after_registration_loses_its_series_and_nothing_else) {
  echo_pool_fixture f;
  prometheus::Registry registry;
  prometheus::BuildCounter()
      .Name("app_requests_total")
      .Help("The application's own metric")
      .Register(registry)
      .Add({})
      .Increment(5);
  auto alpha_metrics = register_metrics(registry, *f.alpha, 20ms);
  auto beta_metrics = register_metrics(registry, *f.beta, 20ms);
  EXPECT_TRUE(exposition(text_of(registry)).mentions("pool=\"alpha\""));

  const auto source = f.alpha->stats_source();
  f.alpha.reset();
  ASSERT_TRUE(wait_until([&] { return !source(); }));
  // Gone at the timer's next tick; the other pool and the application's
  // metric stay.
  EXPECT_TRUE(wait_until([&] { return !exposition(text_of(registry)).mentions("pool=\"alpha\""); }))
      << text_of(registry);
  const exposition e(text_of(registry));
  EXPECT_TRUE(e.mentions("pool=\"beta\""));
  EXPECT_EQ(e.at("app_requests_total"), 5);

  // A refresh of the gone pool's registration brings nothing back.
  alpha_metrics.refresh();
  const exposition after(text_of(registry));
  EXPECT_FALSE(after.mentions("pool=\"alpha\""));
  EXPECT_EQ(after.at("app_requests_total"), 5);
}

TEST(metrics, destroying_a_registration_removes_its_series_then_the_families) {
  echo_pool_fixture f;
  prometheus::Registry registry;
  prometheus::BuildGauge()
      .Name("app_up")
      .Help("The application's own")
      .Register(registry)
      .Add({})
      .Set(1);
  // Timers of an hour: the fixture's io.join() returns only because
  // destroying a registration cancels its timer.
  std::optional<metrics_registration> alpha_metrics(register_metrics(registry, *f.alpha, 1h));
  std::optional<metrics_registration> beta_metrics(register_metrics(registry, *f.beta, 1h));
  const auto before = exposition(text_of(registry));
  ASSERT_TRUE(before.mentions("pool=\"alpha\""));
  ASSERT_TRUE(before.mentions("pool=\"beta\""));

  alpha_metrics.reset();
  const exposition without_alpha(text_of(registry));
  EXPECT_FALSE(without_alpha.mentions("pool=\"alpha\""));
  EXPECT_TRUE(without_alpha.mentions("pool=\"beta\""));
  EXPECT_EQ(without_alpha.meta.count("# TYPE qorb_claims_total counter"), 1u);

  beta_metrics.reset();
  const exposition none(text_of(registry));
  EXPECT_TRUE(none.qorb_only().samples.empty()) << text_of(registry);
  EXPECT_TRUE(none.qorb_only().meta.empty()) << text_of(registry);
  EXPECT_EQ(none.at("app_up"), 1);
  {
    // Registering again works (the families are built anew).
    auto again = register_metrics(registry, *f.beta, 1h);
    EXPECT_TRUE(exposition(text_of(registry)).mentions("pool=\"beta\""));
  }
  // The families went with the last registration: their names are free for
  // families of another type (one still there would make Register throw).
  EXPECT_NO_THROW(
      prometheus::BuildGauge().Name("qorb_claims_total").Help("Another").Register(registry));
  EXPECT_NO_THROW(
      prometheus::BuildCounter().Name("qorb_max_slots").Help("Another").Register(registry));
  EXPECT_THROW(prometheus::BuildCounter().Name("app_up").Help("Another").Register(registry),
               std::invalid_argument);
  // Now qorb's family clashes with the application's: registering throws
  // and leaves no series behind.
  EXPECT_THROW((void)register_metrics(registry, *f.beta, 1h), std::invalid_argument);
  EXPECT_FALSE(exposition(text_of(registry)).mentions("pool=\"beta\"")) << text_of(registry);
}

TEST(metrics, refresh_brings_the_figures_at_once_and_the_interval_must_be_positive) {
  echo_pool_fixture f;
  prometheus::Registry registry;
  EXPECT_THROW((void)register_metrics(registry, *f.alpha, 0ms), std::invalid_argument);
  EXPECT_THROW((void)register_metrics(registry, stats_source{}, f.io.executor()),
               std::invalid_argument);
  auto alpha_metrics = register_metrics(registry, *f.alpha, 1h);  // the timer never fires here
  f.claim(*f.alpha, 4);
  EXPECT_EQ(exposition(text_of(registry)).at("qorb_claims_total{pool=\"alpha\"}"), 0);
  alpha_metrics.refresh();
  EXPECT_EQ(exposition(text_of(registry)).at("qorb_claims_total{pool=\"alpha\"}"), 4);
}

TEST(metrics, exposer_serves_fresh_series_of_both_pools_at_each_scrape) {
  echo_pool_fixture f;
  prometheus::Exposer exposer("127.0.0.1:0", 1);
  auto app = std::make_shared<prometheus::Registry>();
  prometheus::BuildGauge()
      .Name("app_up")
      .Help("The application's own")
      .Register(*app)
      .Add({})
      .Set(1);
  exposer.RegisterCollectable(app);
  auto qorb_metrics = register_metrics(exposer, *f.alpha, *f.beta);
  const auto port = static_cast<unsigned short>(exposer.GetListeningPorts().at(0));
  ASSERT_TRUE(wait_until([&] { return f.settled(); }));

  f.claim(*f.alpha, 2);
  f.claim(*f.beta, 5);
  // No waiting: each scrape reads the pools.
  const exposition e(get(port, "/metrics"));
  EXPECT_EQ(e.at("qorb_claims_total{pool=\"alpha\"}"), 2);
  EXPECT_EQ(e.at("qorb_claims_total{pool=\"beta\"}"), 5);
  EXPECT_EQ(e.at("app_up"), 1);
  EXPECT_EQ(e.meta.at("# TYPE qorb_claims_total counter"), 1);

  // The same text as the stats server's /metrics (and as the collectable
  // serialised directly), once the pools are quiet.
  auto server = f.serve();
  std::string served, scraped;
  EXPECT_TRUE(wait_until([&] {
    if (!f.settled()) return false;
    served = get(server->local_endpoint().port(), "/metrics");
    scraped = get(port, "/metrics");
    return exposition(scraped).qorb_only() == exposition(served) &&
           text_of(*qorb_metrics) == served;
  })) << "exposer:\n"
      << scraped << "\n/metrics:\n"
      << served;

  // A pool gone: its series go; the collectable released: qorb's go.
  const auto source = f.beta->stats_source();
  f.beta.reset();
  ASSERT_TRUE(wait_until([&] { return !source(); }));
  const exposition without_beta(get(port, "/metrics"));
  EXPECT_FALSE(without_beta.mentions("pool=\"beta\""));
  EXPECT_TRUE(without_beta.mentions("pool=\"alpha\""));
  qorb_metrics.reset();
  const exposition none(get(port, "/metrics"));
  EXPECT_TRUE(none.qorb_only().samples.empty());
  EXPECT_EQ(none.at("app_up"), 1);
}

}  // namespace
}  // namespace qorb::test
