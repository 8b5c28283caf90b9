// SPDX-License-Identifier: BSL-1.0
// The stats server's two renderers on their own (no server, no pool): the
// JSON of /stats and of /qtop/stats pushes, and the Prometheus text of
// /metrics, each read back and compared with the snapshot it was given.
#include <boost/json.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <initializer_list>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "observability/stats_json.hpp"
#include "observability/stats_prometheus.hpp"

namespace qorb::detail {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

const auto t0 = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));

pool_stats small_pool(std::string name) {
  pool_stats p;
  p.name = std::move(name);
  p.total_claims = 42;
  p.claims_waiting = 3;
  p.max_slots = 16;
  p.claim_failures.no_backends_online = 5;
  p.claim_failures.cancelled = 2;
  p.claim_wait.record(0.00005);  // the first bucket
  p.claim_wait.record(0.002);    // <= 0.005
  p.claim_wait.record(0.002);
  p.claim_wait.record(60);  // above every bound
  p.status = pool_status::failed;
  p.min_idle = 2;
  p.spares_wanted = 5;
  p.max_connecting = 6;
  p.connects_in_flight = 9;
  p.connects_waiting = 11;
  p.connect_time.record(0.0007);  // <= 0.001
  p.connect_time.record(0.2);     // <= 0.5
  p.connect_time.record(0.3);
  // Each reason its own count (the reason's index + 100), opened apart.
  p.connections.opened = 1000;
  for (std::size_t i = 0; i < close_reason_count; ++i) p.connections.closed[i] = 100 + i;
  backend_stats b;
  b.address = {asio::ip::make_address("127.0.0.1"), 5432};
  b.connecting = 1;
  b.unclaimed = 2;
  b.checking = 0;
  b.claimed = 4;
  b.total_claims = 40;
  b.connect_failures = 7;
  b.check_failures = 1;
  b.online = true;
  b.connections.opened = 500;
  for (std::size_t i = 0; i < close_reason_count; ++i) b.connections.closed[i] = 200 + i;
  b.last_error = backend_error{"connect", "connection refused", t0 - 30s};
  p.backends.emplace("127.0.0.1:5432", b);
  return p;
}

// The Prometheus samples as "name{labels}" -> value text.
std::map<std::string, std::string> samples(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    EXPECT_NE(space, std::string::npos) << line;
    out[line.substr(0, space)] = line.substr(space + 1);
  }
  return out;
}

TEST(stats_render, no_pools_render_as_an_empty_object_and_no_samples) {
  EXPECT_EQ(stats_json::render_stats({}, t0), "{\"pools\":{}}\n");
  EXPECT_TRUE(samples(stats_prometheus::render({})).empty());
}

TEST(stats_render, stats_json_carries_every_count_of_the_snapshot) {
  const auto p = small_pool("db");
  const auto text = stats_json::render_stats({&p}, t0);
  ASSERT_TRUE(text.ends_with("\n"));
  const auto doc = json::parse(text);
  const auto& pool = doc.at("pools").at("db").as_object();
  EXPECT_EQ(pool.at("total_claims").to_number<std::uint64_t>(), 42u);
  EXPECT_EQ(pool.at("claims_waiting").to_number<std::uint64_t>(), 3u);
  EXPECT_EQ(pool.at("max_slots").to_number<std::uint64_t>(), 16u);
  const auto& b = pool.at("backends").at("127.0.0.1:5432").as_object();
  EXPECT_EQ(b.at("connecting").to_number<std::uint64_t>(), 1u);
  EXPECT_EQ(b.at("unclaimed").to_number<std::uint64_t>(), 2u);
  EXPECT_EQ(b.at("claimed").to_number<std::uint64_t>(), 4u);
  EXPECT_EQ(b.at("total_claims").to_number<std::uint64_t>(), 40u);
  EXPECT_EQ(b.at("connect_failures").to_number<std::uint64_t>(), 7u);
  EXPECT_TRUE(b.at("online").as_bool());
  const auto& err = b.at("last_error").as_object();
  EXPECT_EQ(err.at("operation").as_string(), "connect");
  EXPECT_EQ(err.at("message").as_string(), "connection refused");
  EXPECT_EQ(err.at("seconds_ago").to_number<double>(), 30.0) << "counted to the time given";
}

// `{"opened": N, "closed": {REASON: N, ...}}` as `c` has it, every reason.
void expect_connections(const json::value& v, const connection_counts& c) {
  const auto& o = v.as_object();
  EXPECT_EQ(o.at("opened").to_number<std::uint64_t>(), c.opened);
  const auto& closed = o.at("closed").as_object();
  EXPECT_EQ(closed.size(), close_reason_count);
  for (std::size_t i = 0; i < close_reason_count; ++i) {
    const auto* reason = to_string(static_cast<close_reason>(i));
    ASSERT_TRUE(closed.contains(reason)) << reason;
    EXPECT_EQ(closed.at(reason).to_number<std::uint64_t>(), c.closed[i]) << reason;
  }
}

// Each key of `o` is a number equal to its expected value.
void expect_numbers(const json::object& o,
                    std::initializer_list<std::pair<const char*, std::uint64_t>> expected) {
  for (const auto& [key, value] : expected) {
    ASSERT_TRUE(o.contains(key)) << key;
    EXPECT_EQ(o.at(key).to_number<std::uint64_t>(), value) << key;
  }
}

TEST(stats_render, stats_json_carries_the_lifecycle_of_the_pool_and_its_backends) {
  const auto p = small_pool("db");
  const auto doc = json::parse(stats_json::render_stats({&p}, t0));
  const auto& pool = doc.at("pools").at("db").as_object();
  EXPECT_EQ(pool.at("status").as_string(), "failed");
  expect_numbers(pool, {{"min_idle", 2},
                        {"spares_wanted", 5},
                        {"max_connecting", 6},
                        {"connects_in_flight", 9},
                        {"connects_waiting", 11}});
  expect_connections(pool.at("connections"), p.connections);
  expect_connections(pool.at("backends").at("127.0.0.1:5432").at("connections"),
                     p.backends.begin()->second.connections);
  const auto& connect = pool.at("connect_time").as_object();
  const auto& bounds = connect.at("bounds_s").as_array();
  ASSERT_EQ(bounds.size(), claim_wait_histogram::bounds_s.size());
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    EXPECT_EQ(bounds[i].to_number<double>(), claim_wait_histogram::bounds_s[i]) << i;
  }
  const auto& counts = connect.at("counts").as_array();
  ASSERT_EQ(counts.size(), p.connect_time.counts.size());
  for (std::size_t i = 0; i < counts.size(); ++i) {
    EXPECT_EQ(counts[i].to_number<std::uint64_t>(), p.connect_time.counts[i]) << i;
  }
  EXPECT_EQ(counts[2].to_number<std::uint64_t>(), 1u);  // 0.0007 s: <= 0.001
  EXPECT_EQ(counts[7].to_number<std::uint64_t>(), 2u);  // 0.2 s, 0.3 s: <= 0.5
  EXPECT_EQ(connect.at("count").to_number<std::uint64_t>(), 3u);
  EXPECT_DOUBLE_EQ(connect.at("sum_s").to_number<double>(), 0.5007);
  // The claim waits stay as they were, apart from the connect times.
  EXPECT_EQ(pool.at("claim_wait").at("count").to_number<std::uint64_t>(), 4u);

  // Every status by its name.
  for (const auto s : {pool_status::starting, pool_status::running, pool_status::failed,
                       pool_status::stopping, pool_status::stopped}) {
    auto q = small_pool("db");
    q.status = s;
    EXPECT_EQ(json::parse(stats_json::render_stats({&q}, t0)).at("pools").at("db").at("status"),
              to_string(s));
  }
}

TEST(stats_render, a_push_carries_the_status_connections_and_connects) {
  const auto p = small_pool("db");
  const auto push = json::parse(stats_json::render_sets(p)).as_object();
  EXPECT_EQ(push.at("name").as_string(), "db");
  EXPECT_EQ(push.at("status").as_string(), "failed");
  expect_numbers(push,
                 {{"connects_in_flight", 9}, {"connects_waiting", 11}, {"max_connecting", 6}});
  expect_connections(push.at("connections"), p.connections);
  expect_connections(push.at("sets").at("127.0.0.1:5432").at("connections"),
                     p.backends.begin()->second.connections);
}

TEST(stats_render, a_later_pool_of_the_same_name_replaces_the_earlier) {
  auto first = small_pool("db");
  auto second = small_pool("db");
  second.total_claims = 7;
  const auto doc = json::parse(stats_json::render_stats({&first, &second}, t0));
  EXPECT_EQ(doc.at("pools").as_object().size(), 1u);
  EXPECT_EQ(doc.at("pools").at("db").at("total_claims").to_number<std::uint64_t>(), 7u);
}

TEST(stats_render, names_with_quotes_backslashes_and_newlines_come_back_as_given) {
  const std::string name = "a\"b\\c\nd";
  auto p = small_pool(name);
  auto b = p.backends.begin()->second;
  p.backends.emplace(name, b);
  const auto doc = json::parse(stats_json::render_stats({&p}, t0));
  const auto& pool = doc.at("pools").at(name);
  EXPECT_TRUE(pool.at("backends").as_object().contains(name));

  const auto metrics = samples(stats_prometheus::render({&p}));
  // The text format escapes \, " and newline in label values.
  const std::string escaped = "a\\\"b\\\\c\\nd";
  EXPECT_EQ(metrics.at("qorb_claims_total{pool=\"" + escaped + "\"}"), "42");
  EXPECT_EQ(metrics.at("qorb_backend_online{backend=\"" + escaped + "\",pool=\"" + escaped + "\"}"),
            "1");
  std::istringstream in(stats_prometheus::render({&p}));
  for (std::string line; std::getline(in, line);) {
    EXPECT_EQ(line.find('\n'), std::string::npos);
    if (!line.empty() && line[0] != '#') {
      EXPECT_TRUE(line.starts_with("qorb_")) << line;
    }
  }
}

TEST(stats_render, metrics_carry_the_counts_and_the_wait_histogram_cumulatively) {
  const auto p = small_pool("db");
  const auto m = samples(stats_prometheus::render({&p}));
  const std::string pool = "pool=\"db\"";
  const std::string backend = "backend=\"127.0.0.1:5432\"," + pool;
  EXPECT_EQ(m.at("qorb_connections{" + backend + ",state=\"claimed\"}"), "4");
  EXPECT_EQ(m.at("qorb_connections{" + backend + ",state=\"unclaimed\"}"), "2");
  EXPECT_EQ(m.at("qorb_backend_claims_total{" + backend + "}"), "40");
  EXPECT_EQ(m.at("qorb_connect_failures_total{" + backend + "}"), "7");
  EXPECT_EQ(m.at("qorb_max_slots{" + pool + "}"), "16");
  EXPECT_EQ(m.at("qorb_claims_waiting{" + pool + "}"), "3");
  EXPECT_EQ(m.at("qorb_claim_failures_total{" + pool + ",reason=\"no_backends_online\"}"), "5");
  EXPECT_EQ(m.at("qorb_claim_failures_total{" + pool + ",reason=\"cancelled\"}"), "2");
  EXPECT_EQ(m.at("qorb_backend_last_error_timestamp_seconds{backend=\"127.0.0.1:5432\","
                 "operation=\"connect\",pool=\"db\"}"),  // labels in name order
            "1699999970");
  // Buckets are cumulative: 1 wait <= 0.0001 s, 3 <= 0.005 s, all 4 in +Inf.
  EXPECT_EQ(m.at("qorb_claim_wait_seconds_bucket{" + pool + ",le=\"0.0001\"}"), "1");
  EXPECT_EQ(m.at("qorb_claim_wait_seconds_bucket{" + pool + ",le=\"0.001\"}"), "1");
  EXPECT_EQ(m.at("qorb_claim_wait_seconds_bucket{" + pool + ",le=\"0.005\"}"), "3");
  EXPECT_EQ(m.at("qorb_claim_wait_seconds_bucket{" + pool + ",le=\"30\"}"), "3");
  EXPECT_EQ(m.at("qorb_claim_wait_seconds_bucket{" + pool + ",le=\"+Inf\"}"), "4");
  EXPECT_EQ(m.at("qorb_claim_wait_seconds_count{" + pool + "}"), "4");
}

TEST(stats_render, metrics_carry_the_lifecycle_of_the_pool_and_its_backends) {
  const auto p = small_pool("db");
  const auto text = stats_prometheus::render({&p});
  const auto m = samples(text);
  const std::string pool = "pool=\"db\"";
  const std::string backend = "backend=\"127.0.0.1:5432\"," + pool;
  EXPECT_EQ(m.at("qorb_connections_opened_total{" + backend + "}"), "500");
  for (std::size_t i = 0; i < close_reason_count; ++i) {
    const std::string reason = to_string(static_cast<close_reason>(i));
    EXPECT_EQ(m.at("qorb_connections_closed_total{" + backend + ",reason=\"" + reason + "\"}"),
              std::to_string(200 + i))
        << reason;
  }
  // One series per status: 1 for the pool's, 0 for the other four.
  EXPECT_EQ(m.at("qorb_pool_status{" + pool + ",status=\"failed\"}"), "1");
  for (const char* other : {"starting", "running", "stopping", "stopped"}) {
    EXPECT_EQ(m.at("qorb_pool_status{" + pool + ",status=\"" + other + "\"}"), "0") << other;
  }
  EXPECT_EQ(m.at("qorb_min_idle{" + pool + "}"), "2");
  EXPECT_EQ(m.at("qorb_spares_wanted{" + pool + "}"), "5");
  EXPECT_EQ(m.at("qorb_max_connecting{" + pool + "}"), "6");
  EXPECT_EQ(m.at("qorb_connects_in_flight{" + pool + "}"), "9");
  EXPECT_EQ(m.at("qorb_connects_waiting{" + pool + "}"), "11");
  // Cumulative: 1 connect <= 0.001 s, all 3 by 0.5 s.
  const std::string h = "qorb_connect_duration_seconds";
  EXPECT_EQ(m.at(h + "_bucket{" + pool + ",le=\"0.0005\"}"), "0");
  EXPECT_EQ(m.at(h + "_bucket{" + pool + ",le=\"0.001\"}"), "1");
  EXPECT_EQ(m.at(h + "_bucket{" + pool + ",le=\"0.1\"}"), "1");
  EXPECT_EQ(m.at(h + "_bucket{" + pool + ",le=\"0.5\"}"), "3");
  EXPECT_EQ(m.at(h + "_bucket{" + pool + ",le=\"+Inf\"}"), "3");
  EXPECT_EQ(m.at(h + "_count{" + pool + "}"), "3");
  EXPECT_EQ(m.at(h + "_sum{" + pool + "}"), "0.5007");
  EXPECT_EQ(m.at("qorb_claim_wait_seconds_count{" + pool + "}"), "4");

  // HELP and TYPE once per family, with the family's type.
  const std::pair<const char*, const char*> families[] = {
      {"qorb_connections_opened_total", "counter"},
      {"qorb_connections_closed_total", "counter"},
      {"qorb_connect_duration_seconds", "histogram"},
      {"qorb_pool_status", "gauge"},
      {"qorb_min_idle", "gauge"},
      {"qorb_spares_wanted", "gauge"},
      {"qorb_max_connecting", "gauge"},
      {"qorb_connects_in_flight", "gauge"},
      {"qorb_connects_waiting", "gauge"}};
  for (const auto& [name, type] : families) {
    const std::string help = std::string("# HELP ") + name + " ";
    std::string type_line = "# TYPE ";
    type_line += name;
    type_line += ' ';
    type_line += type;
    std::size_t helps = 0, types = 0;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      helps += line.starts_with(help) ? 1 : 0;
      types += line == type_line ? 1 : 0;
    }
    EXPECT_EQ(helps, 1u) << name;
    EXPECT_EQ(types, 1u) << name;
  }
}

TEST(stats_render, a_pool_without_closes_still_has_every_reason_at_0) {
  auto p = small_pool("db");
  p.backends.begin()->second.connections = {};
  const auto m = samples(stats_prometheus::render({&p}));
  std::size_t reasons = 0;
  for (const auto& [series, value] : m) {
    if (!series.starts_with("qorb_connections_closed_total{")) continue;
    ++reasons;
    EXPECT_EQ(value, "0") << series;
  }
  EXPECT_EQ(reasons, close_reason_count);
  const auto doc = json::parse(stats_json::render_stats({&p}, t0));
  expect_connections(doc.at("pools").at("db").at("backends").at("127.0.0.1:5432").at("connections"),
                     connection_counts{});
}

TEST(stats_render, a_push_message_is_claims_then_the_sets_fields) {
  const auto p = small_pool("db");
  const auto sets = stats_json::render_sets(p);
  const auto sets_doc = json::parse(sets);
  ASSERT_TRUE(sets_doc.is_object());
  const auto push = json::parse(stats_json::push_message(9, sets)).as_object();
  EXPECT_EQ(push.at("claims").to_number<std::uint64_t>(), 9u);
  for (const auto& [key, value] : sets_doc.as_object()) {
    ASSERT_TRUE(push.contains(key)) << key;
    EXPECT_EQ(push.at(key), value) << key;
  }
  EXPECT_EQ(push.size(), sets_doc.as_object().size() + 1);
}

// Who holds the connections: the oldest holds, the hold warning and the
// claim sites, in /stats and (the few oldest, ages in whole seconds) in a
// qtop push.
pool_stats holding_pool() {
  pool_stats p = small_pool("db");
  p.hold_warning = 2500ms;
  p.hold_warnings = 4;
  claim_holder h;
  h.slot = 7;
  h.claim = 99;
  h.backend = "127.0.0.1:5432";
  h.address = {asio::ip::make_address("127.0.0.1"), 5432};
  h.age = 12345ms;
  h.site = {.file = "app/handler.cpp", .line = 42, .function = "void serve()"};
  h.warned = true;
  for (int i = 0; i < 7; ++i) p.holders.push_back(h);
  claim_site_stats site;
  site.site = h.site;
  site.wait.record(0.002);
  site.hold.record(0.3);
  p.sites.push_back(site);
  claim_site_stats other;
  other.other = true;
  other.site.file = "other";
  other.wait.record(0);
  p.sites.push_back(other);
  return p;
}

TEST(stats_render, stats_json_lists_the_oldest_holds_and_the_claim_sites) {
  const auto p = holding_pool();
  const auto doc = json::parse(stats_json::render_stats({&p}, t0));
  const auto& pool = doc.at("pools").at("db").as_object();
  EXPECT_EQ(pool.at("hold_warning_s").to_number<double>(), 2.5);
  EXPECT_EQ(pool.at("hold_warnings").to_number<std::uint64_t>(), 4u);
  const auto& holders = pool.at("holders").as_array();
  ASSERT_EQ(holders.size(), 7u);
  const auto& h = holders[0].as_object();
  EXPECT_EQ(h.at("slot").to_number<std::uint64_t>(), 7u);
  EXPECT_EQ(h.at("claim").to_number<std::uint64_t>(), 99u);
  EXPECT_EQ(h.at("backend").as_string(), "127.0.0.1:5432");
  EXPECT_EQ(h.at("address").as_string(), "127.0.0.1:5432");
  EXPECT_EQ(h.at("age_s").to_number<double>(), 12.345);
  EXPECT_EQ(h.at("site").at("label").as_string(), "app/handler.cpp:42");
  EXPECT_EQ(h.at("site").at("function").as_string(), "void serve()");
  EXPECT_EQ(h.at("warned").as_bool(), true);
  const auto& sites = pool.at("sites").as_array();
  ASSERT_EQ(sites.size(), 2u);
  EXPECT_EQ(sites[0].at("site").at("line").to_number<std::uint64_t>(), 42u);
  EXPECT_EQ(sites[0].at("wait").at("count").to_number<std::uint64_t>(), 1u);
  EXPECT_EQ(sites[0].at("hold").at("sum_s").to_number<double>(), 0.3);
  EXPECT_EQ(sites[1].at("other").as_bool(), true);
  EXPECT_EQ(sites[1].at("site").at("label").as_string(), "other");
  pool_stats none = small_pool("quiet");
  const auto quiet = json::parse(stats_json::render_stats({&none}, t0));
  EXPECT_TRUE(quiet.at("pools").at("quiet").at("hold_warning_s").is_null());
  EXPECT_TRUE(quiet.at("pools").at("quiet").at("holders").as_array().empty());
}

TEST(stats_render, metrics_carry_the_claim_sites_and_the_holds) {
  const auto p = holding_pool();
  const auto m = samples(stats_prometheus::render({&p}));
  const std::string site = "pool=\"db\",site=\"app/handler.cpp:42\"";
  EXPECT_EQ(m.at("qorb_claim_site_wait_seconds_count{" + site + "}"), "1");
  EXPECT_EQ(m.at("qorb_claim_site_wait_seconds_bucket{" + site + ",le=\"0.005\"}"), "1");
  EXPECT_EQ(m.at("qorb_claim_site_hold_seconds_count{" + site + "}"), "1");
  EXPECT_EQ(m.at("qorb_claim_site_hold_seconds_sum{" + site + "}"), "0.3");
  EXPECT_EQ(m.at("qorb_claim_site_wait_seconds_count{pool=\"db\",site=\"other\"}"), "1");
  EXPECT_EQ(m.at("qorb_hold_warnings_total{pool=\"db\"}"), "4");
  EXPECT_EQ(m.at("qorb_claim_oldest_hold_seconds{pool=\"db\"}"), "0") << "not timed";
  auto timed = holding_pool();
  timed.holders.front().timed = true;
  EXPECT_EQ(
      samples(stats_prometheus::render({&timed})).at("qorb_claim_oldest_hold_seconds{pool=\"db\"}"),
      "12.345");
}

TEST(stats_render, a_push_carries_the_five_oldest_holds_in_whole_seconds) {
  const auto p = holding_pool();
  const auto push = json::parse(stats_json::render_sets(p)).as_object();
  const auto& holders = push.at("holders").as_array();
  ASSERT_EQ(holders.size(), 5u);
  EXPECT_EQ(holders[0].at("age_s").to_number<double>(), 12.0);
  EXPECT_EQ(push.at("hold_warnings").to_number<std::uint64_t>(), 4u);
}

}  // namespace
}  // namespace qorb::detail
