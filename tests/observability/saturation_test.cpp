// SPDX-License-Identifier: BSL-1.0
// What saturation needs, as /stats, /metrics and the /qtop/stats push serve
// it: the cap (max_slots), claims waiting, and each backend's last connect
// or check error. And the Grafana dashboard in contrib/grafana: every series
// it queries is one a live /metrics serves, with the labels it selects on.
#include <boost/asio/io_context.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "http_get.hpp"
#include "live_pool.hpp"

namespace qorb::test {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using namespace std::chrono_literals;

// The samples of a Prometheus text exposition: name -> label sets, and the
// TYPE of each family.
struct exposition {
  std::map<std::string, std::string> type;
  std::multimap<std::string, std::pair<std::map<std::string, std::string>, double>> samples;

  explicit exposition(const std::string& text) {
    static const std::regex type_line(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)$)");
    static const std::regex sample_line(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+).*$)");
    static const std::regex label(R"re(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?)re");
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) {
      std::smatch m;
      if (std::regex_match(l, m, type_line)) {
        type[m[1]] = m[2];
      } else if (!l.empty() && l[0] != '#' && std::regex_match(l, m, sample_line)) {
        std::map<std::string, std::string> labels;
        const std::string text_labels = m[3];
        for (std::sregex_iterator it(text_labels.begin(), text_labels.end(), label), end; it != end;
             ++it) {
          labels[(*it)[1]] = (*it)[2];
        }
        samples.emplace(m[1], std::pair{labels, m[4] == "+Inf" ? HUGE_VAL : std::stod(m[4])});
      }
    }
  }

  std::optional<double> value(const std::string& name,
                              const std::map<std::string, std::string>& match) const {
    for (auto [it, end] = samples.equal_range(name); it != end; ++it) {
      bool all = true;
      for (const auto& [k, v] : match) {
        const auto f = it->second.first.find(k);
        all = all && f != it->second.first.end() && f->second == v;
      }
      if (all) return it->second.second;
    }
    return std::nullopt;
  }
};

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A pool whose second backend refuses every connect.
struct failing_backend : ::testing::Test {
  void SetUp() override {
    ASSERT_TRUE(wait_until([&] { return first_up_second_failing(*live.pool); }, 10s));
  }
  observed_pool live{2, observed_pool::quiet(), {"127.0.0.1:2"}};
};

TEST_F(failing_backend, pool_stats_keep_the_last_error_per_backend) {
  const auto before = std::chrono::system_clock::now();
  auto s = live.pool->stats();
  EXPECT_EQ(s.max_slots, observed_policy().max_slots);
  EXPECT_FALSE(s.backends.at("127.0.0.1:1").last_error.has_value());
  const auto& e = s.backends.at("127.0.0.1:2").last_error;
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->operation, "connect");
  EXPECT_EQ(e->message, "connection refused (fake)");
  EXPECT_LE(e->at, before);
  EXPECT_GT(e->at, before - 60s);

  // Kept after the backend recovers: a flapping backend still says why.
  {
    std::lock_guard lock(live.fake->mu);
    live.fake->failing_backends.clear();
  }
  ASSERT_TRUE(wait_until([&] { return live.pool->stats().backends.at("127.0.0.1:2").online; }));
  s = live.pool->stats();
  ASSERT_TRUE(s.backends.at("127.0.0.1:2").last_error.has_value());
  EXPECT_EQ(s.backends.at("127.0.0.1:2").last_error->message, "connection refused (fake)");
}

TEST_F(failing_backend, stats_json_serves_max_slots_and_each_backends_last_error) {
  const auto body = get(live.port(), "/stats");
  const auto pool = json::parse(body).at("pools").at("web").as_object();
  EXPECT_EQ(pool.at("max_slots").to_number<std::uint64_t>(), 8u) << body;
  EXPECT_EQ(pool.at("claims_waiting").to_number<std::uint64_t>(), 0u) << body;
  const auto& backends = pool.at("backends").as_object();
  EXPECT_TRUE(backends.at("127.0.0.1:1").at("last_error").is_null()) << body;
  const auto& e = backends.at("127.0.0.1:2").at("last_error").as_object();
  EXPECT_EQ(e.at("operation").as_string(), "connect") << body;
  EXPECT_EQ(e.at("message").as_string(), "connection refused (fake)") << body;
  EXPECT_TRUE(std::regex_match(std::string(e.at("at").as_string()),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
      << body;
  const double ago = e.at("seconds_ago").to_number<double>();
  EXPECT_GE(ago, 0.0) << body;
  EXPECT_LT(ago, 60.0) << body;
}

TEST_F(failing_backend, metrics_serve_max_slots_and_when_each_backend_last_failed) {
  const auto body = get(live.port(), "/metrics");
  const exposition m(body);
  EXPECT_EQ(m.type.at("qorb_max_slots"), "gauge");
  EXPECT_EQ(m.value("qorb_max_slots", {{"pool", "web"}}), 8.0) << body;
  EXPECT_EQ(m.type.at("qorb_backend_last_error_timestamp_seconds"), "gauge");
  const auto at = m.value("qorb_backend_last_error_timestamp_seconds",
                          {{"pool", "web"}, {"backend", "127.0.0.1:2"}, {"operation", "connect"}});
  ASSERT_TRUE(at) << body;
  EXPECT_NEAR(*at, unix_now(), 60.0);
  EXPECT_FALSE(m.value("qorb_backend_last_error_timestamp_seconds", {{"backend", "127.0.0.1:1"}}))
      << body;
}

TEST_F(failing_backend, the_qtop_push_carries_saturation_and_last_errors) {
  std::string out;
  ASSERT_EQ(run_command(
                {QTOP_PATH, "--once", "--json", "http://127.0.0.1:" + std::to_string(live.port())},
                &out, 20s),
            0)
      << out;
  const auto push = json::parse(out).as_object();
  EXPECT_EQ(push.at("max_slots").to_number<std::uint64_t>(), 8u) << out;
  EXPECT_EQ(push.at("claims_waiting").to_number<std::uint64_t>(), 0u) << out;
  EXPECT_EQ(push.at("claimed").to_number<std::uint64_t>(), 0u) << out;
  EXPECT_TRUE(push.at("total_claims").is_number()) << out;
  const auto& sets = push.at("sets").as_object();
  EXPECT_TRUE(sets.at("127.0.0.1:1").at("last_error").is_null()) << out;
  EXPECT_EQ(sets.at("127.0.0.1:2").at("last_error").at("operation").as_string(), "connect") << out;
}

// --- the Grafana dashboard ----------------------------------------------------------

// Every PromQL expression of the dashboard's panels.
std::vector<std::string> dashboard_queries(const json::value& dashboard) {
  std::vector<std::string> out;
  std::vector<const json::value*> todo{&dashboard};
  while (!todo.empty()) {
    const auto* v = todo.back();
    todo.pop_back();
    if (v->is_array()) {
      for (const auto& e : v->as_array()) todo.push_back(&e);
    } else if (v->is_object()) {
      // A data source variable's "query" is a plugin type, not PromQL.
      const auto* type = v->as_object().if_contains("type");
      if (type && type->is_string() && type->as_string() == "datasource") continue;
      for (const auto& [key, e] : v->as_object()) {
        if ((key == "expr" || key == "query") && e.is_string()) {
          out.emplace_back(e.as_string());
        } else {
          todo.push_back(&e);
        }
      }
    }
  }
  return out;
}

TEST(grafana_dashboard, queries_only_series_a_live_metrics_endpoint_serves) {
  std::ifstream file(QORB_SOURCE_DIR "/contrib/grafana/qorb.json");
  ASSERT_TRUE(file) << "contrib/grafana/qorb.json is missing";
  std::stringstream text;
  text << file.rdbuf();
  boost::system::error_code ec;
  const auto dashboard = json::parse(text.str(), ec);
  ASSERT_FALSE(ec) << "contrib/grafana/qorb.json is not JSON: " << ec.message();
  ASSERT_TRUE(dashboard.is_object());
  EXPECT_TRUE(dashboard.as_object().contains("panels"));
  const auto queries = dashboard_queries(dashboard);
  ASSERT_GE(queries.size(), 8u);

  // A pool that has served claims, failed connects and failed claims, so
  // that every series it can serve is there.
  observed_pool live(2, observed_pool::quiet(), {"127.0.0.1:2"});
  ASSERT_TRUE(wait_until([&] { return first_up_second_failing(*live.pool); }, 10s));
  { auto h = live.pool->claim(5s); }
  const exposition served(get(live.port(), "/metrics"));

  // The family a sample name belongs to (histograms serve _bucket, _sum,
  // _count).
  const auto family_of = [&](const std::string& name) -> std::optional<std::string> {
    if (served.type.contains(name)) return name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      if (!name.ends_with(suffix)) continue;
      const auto base = name.substr(0, name.size() - std::string_view(suffix).size());
      if (served.type.contains(base) && served.type.at(base) == "histogram") return base;
    }
    return std::nullopt;
  };
  static const std::regex selector(R"((qorb_[a-zA-Z0-9_]*)(\{([^}]*)\})?)");
  static const std::regex matcher(R"(([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=))");
  static const std::regex grouping(R"((by|without)\s*\(([^)]*)\))");
  std::set<std::string> used;
  for (const auto& q : queries) {
    std::set<std::string> labels_here;  // every label the query's series carry
    bool any = false;
    for (std::sregex_iterator it(q.begin(), q.end(), selector), end; it != end; ++it) {
      any = true;
      const std::string name = (*it)[1];
      const auto family = family_of(name);
      ASSERT_TRUE(family) << "the dashboard queries " << name
                          << ", which /metrics does not serve: " << q;
      used.insert(*family);
      const auto [first, last] = served.samples.equal_range(name);
      ASSERT_NE(first, last) << name << " has no sample in a live /metrics";
      std::set<std::string> carried;
      for (auto s = first; s != last; ++s) {
        for (const auto& [k, v] : s->second.first) carried.insert(k);
      }
      labels_here.insert(carried.begin(), carried.end());
      const std::string inside = (*it)[3];
      for (std::sregex_iterator l(inside.begin(), inside.end(), matcher), lend; l != lend; ++l) {
        EXPECT_TRUE(carried.contains((*l)[1])) << name << " has no label " << (*l)[1] << ": " << q;
      }
    }
    EXPECT_TRUE(any) << "a query names no qorb series: " << q;
    for (std::sregex_iterator g(q.begin(), q.end(), grouping), end; g != end; ++g) {
      std::istringstream names(std::regex_replace((*g)[2].str(), std::regex(","), " "));
      for (std::string n; names >> n;) {
        EXPECT_TRUE(labels_here.contains(n)) << "grouped by " << n << ", a label none has: " << q;
      }
    }
  }
  // And the dashboard shows every family of a pool /metrics serves.
  for (const auto& [family, type] : served.type) {
    bool per_pool = false;
    for (const auto& [name, sample] : served.samples) {
      per_pool = per_pool || (family_of(name) == family && sample.first.contains("pool"));
    }
    if (per_pool) {
      EXPECT_TRUE(used.contains(family)) << "the dashboard has no panel for " << family;
    }
  }
}

}  // namespace
}  // namespace qorb::test
