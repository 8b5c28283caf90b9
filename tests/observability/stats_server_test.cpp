// SPDX-License-Identifier: BSL-1.0
// stats_server against a live pool: /stats JSON, /metrics Prometheus text,
// HTTP errors, the /qtop/stats WebSocket, slow clients, pools going away,
// and stop().
#include <poll.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "live_pool.hpp"

namespace qorb::test {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

tcp::endpoint loopback(unsigned short port) { return {asio::ip::make_address("127.0.0.1"), port}; }

// Runs a coroutine on a private io_context to completion. Every operation in
// it is bounded by the tcp_stream's expiry, so this never hangs.
template <class T>
T run_sync(asio::io_context& io, asio::awaitable<T> op) {
  auto result = asio::co_spawn(io, std::move(op), asio::use_future);
  io.restart();
  io.run();
  return result.get();
}

struct http_reply {
  unsigned status = 0;
  std::string body;
  std::string content_type;
  std::string allow;
};

http_reply http_request(unsigned short port, http::verb method, std::string target) {
  asio::io_context io;
  return run_sync(io, [&]() -> asio::awaitable<http_reply> {
    beast::tcp_stream stream(co_await asio::this_coro::executor);
    stream.expires_after(5s);
    co_await stream.async_connect(loopback(port), asio::use_awaitable);
    http::request<http::string_body> req(method, target, 11);
    req.set(http::field::host, "127.0.0.1");
    if (method == http::verb::post) req.body() = "x=1";
    req.prepare_payload();
    co_await http::async_write(stream, req, asio::use_awaitable);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    co_await http::async_read(stream, buffer, res, asio::use_awaitable);
    co_return http_reply{res.result_int(), res.body(), std::string(res[http::field::content_type]),
                         std::string(res[http::field::allow])};
  }());
}

json::object get_json(unsigned short port, const std::string& target = "/stats") {
  const auto reply = http_request(port, http::verb::get, target);
  EXPECT_EQ(reply.status, 200u) << reply.body;
  EXPECT_EQ(reply.content_type, "application/json");
  return json::parse(reply.body).as_object();
}

std::uint64_t num(const json::value& v) { return v.to_number<std::uint64_t>(); }

// A WebSocket client of /qtop/stats, every operation bounded.
class ws_client {
 public:
  ws_client(unsigned short port, const std::string& target, int receive_buffer = 0) {
    run_sync(io_, [&]() -> asio::awaitable<void> {
      auto& layer = beast::get_lowest_layer(ws_);
      layer.expires_after(5s);
      layer.socket().open(tcp::v4());
      if (receive_buffer > 0) {
        layer.socket().set_option(asio::socket_base::receive_buffer_size(receive_buffer));
      }
      co_await layer.async_connect(loopback(port), asio::use_awaitable);
      co_await ws_.async_handshake("127.0.0.1", target, asio::use_awaitable);
    }());
  }

  // The next push, or nothing if none came within `timeout` (or the
  // server closed the connection: see `closed`).
  std::optional<json::object> next(std::chrono::milliseconds timeout = 5s) {
    beast::get_lowest_layer(ws_).expires_after(timeout);
    return run_sync(io_, [&]() -> asio::awaitable<std::optional<json::object>> {
      beast::flat_buffer buffer;
      auto [ec, n] = co_await ws_.async_read(buffer, asio::as_tuple(asio::use_awaitable));
      if (ec) {
        error_ = ec;
        co_return std::nullopt;
      }
      co_return json::parse(beast::buffers_to_string(buffer.data())).as_object();
    }());
  }

  beast::error_code error() const { return error_; }
  tcp::socket& socket() { return beast::get_lowest_layer(ws_).socket(); }
  const websocket::close_reason& reason() const { return ws_.reason(); }

 private:
  asio::io_context io_;
  websocket::stream<beast::tcp_stream> ws_{io_};
  beast::error_code error_;
};

// Whether the peer closed or reset `socket` within `timeout`, without
// reading from it (reading would make a silent client a reading one).
bool peer_closes(tcp::socket& socket, std::chrono::milliseconds timeout) {
  pollfd p{socket.native_handle(), POLLRDHUP, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) == 1 &&
         (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

class stats_server_test : public ::testing::Test {
 protected:
  // Snapshots that last 1 ms instead of 100: a test that needs output newer
  // than the pool's last change waits for the next snapshot (the
  // `snapshots` counter moving), not out a fixed interval.
  static stats_server_config short_snapshots() {
    stats_server_config c = observed_pool::quiet();
    c.snapshot_interval = 1ms;
    return c;
  }

  void SetUp() override {
    ASSERT_TRUE(wait_until([&] { return settled(*live.pool, 2); }));
  }

  std::vector<handle<fake_conn>> claim_n(int n) {
    std::vector<handle<fake_conn>> out;
    for (int i = 0; i < n; ++i) out.push_back(live.pool->claim(5s));
    return out;
  }

  observed_pool live{2, short_snapshots()};
};

// Compares the JSON of one pool with its pool_stats, every field.
void expect_matches(const json::object& j, const pool_stats& s) {
  EXPECT_EQ(num(j.at("total_claims")), s.total_claims);
  EXPECT_EQ(num(j.at("claims_waiting")), s.claims_waiting);
  EXPECT_EQ(j.at("terminated").as_bool(), s.terminated);
  const auto& f = j.at("claim_failures").as_object();
  EXPECT_EQ(num(f.at("no_backends")), s.claim_failures.no_backends);
  EXPECT_EQ(num(f.at("no_backends_online")), s.claim_failures.no_backends_online);
  EXPECT_EQ(num(f.at("all_claims_used")), s.claim_failures.all_claims_used);
  EXPECT_EQ(num(f.at("terminated")), s.claim_failures.terminated);
  EXPECT_EQ(num(f.at("cancelled")), s.claim_failures.cancelled);
  EXPECT_EQ(num(f.at("acquire_failed")), s.claim_failures.acquire_failed);
  const auto& w = j.at("claim_wait").as_object();
  EXPECT_EQ(num(w.at("count")), s.claim_wait.count);
  EXPECT_DOUBLE_EQ(w.at("sum_s").to_number<double>(), s.claim_wait.sum_s);
  ASSERT_EQ(w.at("counts").as_array().size(), s.claim_wait.counts.size());
  for (std::size_t i = 0; i < s.claim_wait.counts.size(); ++i) {
    EXPECT_EQ(num(w.at("counts").as_array()[i]), s.claim_wait.counts[i]);
  }
  ASSERT_EQ(w.at("bounds_s").as_array().size(), claim_wait_histogram::bounds_s.size());
  const auto& backends = j.at("backends").as_object();
  ASSERT_EQ(backends.size(), s.backends.size());
  std::size_t claimed = 0;
  for (const auto& [name, b] : s.backends) {
    ASSERT_TRUE(backends.contains(name)) << name;
    const auto& jb = backends.at(name).as_object();
    EXPECT_EQ(jb.at("address").as_string(), to_string(b.address));
    EXPECT_EQ(num(jb.at("connecting")), b.connecting);
    EXPECT_EQ(num(jb.at("unclaimed")), b.unclaimed);
    EXPECT_EQ(num(jb.at("checking")), b.checking);
    EXPECT_EQ(num(jb.at("claimed")), b.claimed);
    EXPECT_EQ(num(jb.at("total_claims")), b.total_claims);
    EXPECT_EQ(num(jb.at("connect_failures")), b.connect_failures);
    EXPECT_EQ(num(jb.at("check_failures")), b.check_failures);
    EXPECT_EQ(num(jb.at("recent_failures")), b.recent_failures);
    EXPECT_EQ(jb.at("online").as_bool(), b.online);
    EXPECT_EQ(jb.at("removed").as_bool(), b.removed);
    claimed += b.claimed;
  }
  EXPECT_EQ(num(j.at("totals").at("claimed")), claimed);
  EXPECT_EQ(num(j.at("totals").at("backends")), s.backends.size());
}

bool same(const pool_stats& a, const pool_stats& b) {
  if (a.total_claims != b.total_claims || a.backends.size() != b.backends.size()) return false;
  for (const auto& [name, x] : a.backends) {
    const auto it = b.backends.find(name);
    if (it == b.backends.end()) return false;
    const auto& y = it->second;
    if (x.connecting != y.connecting || x.unclaimed != y.unclaimed || x.checking != y.checking ||
        x.claimed != y.claimed || x.online != y.online) {
      return false;
    }
  }
  return true;
}

TEST_F(stats_server_test, stats_json_matches_the_pools_own_stats) {
  // A second pool whose claims fail: claim failures show per pool.
  policy fail_fast = observed_policy();
  fail_fast.fail_fast_without_backends = true;
  pool<fake_conn> empty(live.io.executor(), "empty", std::make_shared<fixed_resolver>(),
                        fake_connector{}, fail_fast, nullptr);
  live.server->attach(empty);
  error_code ec;
  EXPECT_FALSE(empty.claim(1s, ec));
  EXPECT_EQ(ec, errc::no_backends);

  auto held = claim_n(3);
  held.pop_back();  // one returned: total 3, claimed 2
  // The pool may still be rebalancing: compare with a fresh snapshot (the
  // server took one for this read, not an older one that may predate the
  // pool's last change) of a pool that did not change while it was read.
  pool_stats after;
  json::object doc;
  ASSERT_TRUE(wait_until([&] {
    const auto before = live.pool->stats();
    const auto taken = live.server->counters().snapshots;
    doc = get_json(live.port());
    after = live.pool->stats();
    return live.server->counters().snapshots > taken && same(before, after);
  })) << "no fresh snapshot of a pool standing still within 10 s";
  const auto& pools = doc.at("pools").as_object();
  ASSERT_EQ(pools.size(), 2u);
  expect_matches(pools.at("web").as_object(), after);
  EXPECT_EQ(num(pools.at("web").at("total_claims")), 3u);
  EXPECT_EQ(num(pools.at("web").at("totals").at("claimed")), 2u);
  expect_matches(pools.at("empty").as_object(), empty.stats());
  EXPECT_EQ(num(pools.at("empty").at("claim_failures").at("no_backends")), 1u);

  const auto one = get_json(live.port(), "/stats?pool=empty").at("pools").as_object();
  EXPECT_EQ(one.size(), 1u);
  EXPECT_TRUE(one.contains("empty"));
}

// A minimal reader of the Prometheus text format: families with their HELP
// and TYPE, and samples with their labels. Fails the test on any line that
// does not parse.
struct prometheus_text {
  struct sample {
    std::string name;
    std::map<std::string, std::string> labels;
    double value = 0;
  };
  std::map<std::string, std::string> help, type;
  std::vector<sample> samples;

  explicit prometheus_text(const std::string& text) {
    static const std::regex comment(R"(^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$)");
    static const std::regex line(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?[0-9]+)?$)");
    static const std::regex label(R"re(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?)re");
    std::istringstream in(text);
    std::string l;
    while (std::getline(in, l)) {
      if (l.empty()) continue;
      std::smatch m;
      if (l[0] == '#') {
        if (!std::regex_match(l, m, comment)) {
          ADD_FAILURE() << "bad comment line: " << l;
          continue;
        }
        (m[1] == "HELP" ? help : type)[m[2]] = m[3];
        continue;
      }
      if (!std::regex_match(l, m, line)) {
        ADD_FAILURE() << "bad sample line: " << l;
        continue;
      }
      sample s;
      s.name = m[1];
      std::string labels = m[3];
      for (std::sregex_iterator it(labels.begin(), labels.end(), label), end; it != end; ++it) {
        s.labels[(*it)[1]] = (*it)[2];
      }
      s.value = m[4] == "+Inf" ? HUGE_VAL : std::stod(m[4]);
      // Every sample belongs to a family declared before it.
      std::string family = s.name;
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        if (!type.contains(family) && family.ends_with(suffix)) {
          family.resize(family.size() - std::string_view(suffix).size());
        }
      }
      EXPECT_TRUE(type.contains(family) && help.contains(family)) << l;
      samples.push_back(std::move(s));
    }
  }

  // The samples named `name` whose labels include `match`.
  std::vector<const sample*> matching(const std::string& name,
                                      const std::map<std::string, std::string>& match) const {
    std::vector<const sample*> out;
    for (const auto& s : samples) {
      if (s.name != name) continue;
      bool ok = true;
      for (const auto& [k, v] : match) {
        const auto it = s.labels.find(k);
        ok = ok && it != s.labels.end() && it->second == v;
      }
      if (ok) out.push_back(&s);
    }
    return out;
  }
  double sum(const std::string& name, const std::map<std::string, std::string>& match) const {
    double total = 0;
    for (const auto* s : matching(name, match)) total += s->value;
    return total;
  }
  std::size_t count(const std::string& name,
                    const std::map<std::string, std::string>& match = {}) const {
    return matching(name, match).size();
  }
};

TEST_F(stats_server_test, metrics_are_prometheus_text_with_pool_and_backend_labels) {
  auto held = claim_n(3);
  held.pop_back();
  const auto reply = http_request(live.port(), http::verb::get, "/metrics");
  ASSERT_EQ(reply.status, 200u);
  EXPECT_THAT(reply.content_type, ::testing::StartsWith("text/plain; version=0.0.4"));
  const prometheus_text metrics(reply.body);
  ASSERT_FALSE(HasFailure()) << reply.body;

  EXPECT_EQ(metrics.type.at("qorb_connections"), "gauge");
  EXPECT_EQ(metrics.type.at("qorb_claims_total"), "counter");
  EXPECT_EQ(metrics.type.at("qorb_backend_claims_total"), "counter");
  EXPECT_EQ(metrics.type.at("qorb_claim_failures_total"), "counter");
  EXPECT_EQ(metrics.type.at("qorb_claim_wait_seconds"), "histogram");
  EXPECT_EQ(metrics.type.at("qorb_connect_failures_total"), "counter");
  EXPECT_EQ(metrics.type.at("qorb_check_failures_total"), "counter");

  const auto stats = live.pool->stats();
  EXPECT_EQ(metrics.sum("qorb_connections", {{"pool", "web"}, {"state", "claimed"}}), 2.0);
  for (const auto& [name, b] : stats.backends) {
    EXPECT_EQ(metrics.sum("qorb_backend_claims_total", {{"pool", "web"}, {"backend", name}}),
              static_cast<double>(b.total_claims))
        << name;
    EXPECT_EQ(metrics.sum("qorb_connect_failures_total", {{"pool", "web"}, {"backend", name}}),
              0.0);
    for (const char* state : {"connecting", "unclaimed", "checking", "claimed"}) {
      EXPECT_EQ(
          metrics.count("qorb_connections", {{"pool", "web"}, {"backend", name}, {"state", state}}),
          1u);
    }
    EXPECT_EQ(
        metrics.sum("qorb_connections", {{"pool", "web"}, {"backend", name}, {"state", "claimed"}}),
        static_cast<double>(b.claimed));
  }
  EXPECT_EQ(metrics.count("qorb_connections"), 4 * stats.backends.size());
  EXPECT_EQ(metrics.sum("qorb_claims_total", {{"pool", "web"}}), 3.0);
  EXPECT_EQ(metrics.sum("qorb_claim_failures_total", {{"pool", "web"}, {"reason", "no_backends"}}),
            0.0);
  EXPECT_EQ(metrics.count("qorb_claim_failures_total"), 6u);  // every reason, always
  EXPECT_EQ(
      metrics.sum("qorb_claim_failures_total", {{"pool", "web"}, {"reason", "acquire_failed"}}),
      0.0);
  // The histogram: one bucket per bound plus +Inf, cumulative.
  EXPECT_EQ(metrics.count("qorb_claim_wait_seconds_bucket"),
            claim_wait_histogram::bounds_s.size() + 1);
  EXPECT_EQ(metrics.sum("qorb_claim_wait_seconds_bucket", {{"pool", "web"}, {"le", "+Inf"}}), 3.0);
  EXPECT_EQ(metrics.sum("qorb_claim_wait_seconds_count", {{"pool", "web"}}), 3.0);
}

TEST_F(stats_server_test, bad_requests_get_http_errors) {
  const auto port = live.port();
  EXPECT_EQ(http_request(port, http::verb::get, "/nope").status, 404u);
  EXPECT_EQ(http_request(port, http::verb::get, "/").status, 404u);
  const auto post = http_request(port, http::verb::post, "/stats");
  EXPECT_EQ(post.status, 405u);
  EXPECT_EQ(post.allow, "GET");
  EXPECT_EQ(http_request(port, http::verb::delete_, "/metrics").status, 405u);
  EXPECT_EQ(http_request(port, http::verb::get, "/stats?bogus=1").status, 400u);
  EXPECT_EQ(http_request(port, http::verb::get, "/stats?pool=%zz").status, 400u);
  EXPECT_EQ(http_request(port, http::verb::get, "/stats?pool=missing").status, 404u);
  EXPECT_EQ(http_request(port, http::verb::get, "/stats?update_secs=1").status, 400u);
  for (const char* bad : {"abc", "0", "-1", "nan", "inf", "1e9", ""}) {
    EXPECT_EQ(
        http_request(port, http::verb::get, std::string("/qtop/stats?update_secs=") + bad).status,
        400u)
        << bad;
  }
  // Not an upgrade: the endpoint says what it wants.
  EXPECT_EQ(http_request(port, http::verb::get, "/qtop/stats?update_secs=0.5").status, 426u);
  // A WebSocket handshake for a pool that is not there fails with 404.
  EXPECT_THROW(ws_client(port, "/qtop/stats?pool=missing"), boost::system::system_error);
}

TEST_F(stats_server_test, websocket_pushes_claims_since_the_last_push_and_the_sets) {
  ws_client client(live.port(), "/qtop/stats?update_secs=0.2");
  const auto first = client.next();
  ASSERT_TRUE(first);
  EXPECT_EQ(num(first->at("claims")), 0u);
  const auto& sets = first->at("sets").as_object();
  ASSERT_EQ(sets.size(), 2u);
  for (const auto& [name, s] : sets) {
    for (const char* field :
         {"connecting", "unclaimed", "checking", "claimed", "total_claims", "online"}) {
      EXPECT_TRUE(s.as_object().contains(field)) << name << " " << field;
    }
  }

  for (int i = 0; i < 4; ++i) live.pool->claim(5s);  // claimed and returned at once
  auto held = live.pool->claim(5s);
  const std::string held_on = held.backend().name;

  std::uint64_t claims = 0;
  bool seen_claimed = false;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while ((claims < 5 || !seen_claimed) && std::chrono::steady_clock::now() < deadline) {
    const auto push = client.next();
    ASSERT_TRUE(push) << client.error().message();
    claims += num(push->at("claims"));
    const auto& s = push->at("sets").as_object();
    seen_claimed = num(s.at(held_on).at("claimed")) == 1;
  }
  EXPECT_EQ(claims, 5u);
  EXPECT_TRUE(seen_claimed);

  // Nothing changes: pushes still come every update_secs (0.2 s), with no
  // claims.
  ASSERT_TRUE(client.next(2s));
  const auto t0 = std::chrono::steady_clock::now();
  const auto push = client.next(2s);
  ASSERT_TRUE(push);
  EXPECT_EQ(num(push->at("claims")), 0u);
  const auto gap = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(gap, 150ms);
  EXPECT_LE(gap, 1500ms);
}

TEST_F(stats_server_test, websocket_picks_the_pool_by_name) {
  pool<fake_conn> other(live.io.executor(), "other", std::make_shared<fixed_resolver>(),
                        fake_connector{}, observed_policy(), nullptr);
  live.server->attach(other);
  ws_client client(live.port(), "/qtop/stats?pool=other");
  const auto push = client.next();
  ASSERT_TRUE(push);
  EXPECT_TRUE(push->at("sets").as_object().empty());
  ws_client first(live.port(), "/qtop/stats");  // default: the first attached
  const auto web = first.next();
  ASSERT_TRUE(web);
  EXPECT_EQ(web->at("sets").as_object().size(), 2u);
}

TEST_F(stats_server_test, a_client_that_never_reads_blocks_neither_the_pool_nor_other_clients) {
  // Many backends make big pushes (~45 kB, ten a second), so the silent
  // client's socket buffers and then its bounded queue fill within seconds.
  stats_server_config config = observed_pool::quiet();
  config.max_queued_bytes = 128 * 1024;
  observed_pool big(500, config);
  ASSERT_TRUE(wait_until([&] { return big.pool->stats().backends.size() == 500; }));

  ws_client silent(big.port(), "/qtop/stats?update_secs=0.1", 4096);
  ws_client reader(big.port(), "/qtop/stats?update_secs=0.1");
  ASSERT_TRUE(reader.next());

  // Claims go on and the reading client sees them, while the silent one's
  // output piles up.
  std::uint64_t seen = 0;
  std::uint64_t made = 0;
  const auto t0 = std::chrono::steady_clock::now();
  bool dropped = false;
  while (!dropped && std::chrono::steady_clock::now() - t0 < 10s) {
    const auto t = std::chrono::steady_clock::now();
    big.pool->claim(1s);
    EXPECT_LT(std::chrono::steady_clock::now() - t, 500ms) << "a claim was held up";
    ++made;
    const auto push = reader.next(2s);
    ASSERT_TRUE(push) << "the reading client got no update";
    seen += num(push->at("claims"));
    dropped = peer_closes(silent.socket(), 0ms);
  }
  // The server dropped the silent client once its queue was full.
  EXPECT_TRUE(dropped);
  // The reader got every claim but the last few, still on their way.
  EXPECT_GT(seen, 0u);
  EXPECT_LE(seen, made);
  EXPECT_TRUE(reader.next());
}

TEST_F(stats_server_test, a_destroyed_pool_disappears_and_its_watchers_are_closed) {
  auto doomed = std::make_unique<pool<fake_conn>>(
      live.io.executor(), "doomed", std::make_shared<fixed_resolver>(fake_endpoints(1)),
      fake_connector{}, observed_policy(), nullptr);
  live.server->attach(*doomed);
  EXPECT_TRUE(get_json(live.port()).at("pools").as_object().contains("doomed"));
  ws_client watcher(live.port(), "/qtop/stats?pool=doomed");
  ASSERT_TRUE(watcher.next());

  doomed.reset();
  EXPECT_TRUE(wait_until(
      [&] { return !get_json(live.port()).at("pools").as_object().contains("doomed"); }));
  std::optional<json::object> push;
  do {
    push = watcher.next(3s);
  } while (push);
  EXPECT_EQ(watcher.error(), websocket::error::closed) << watcher.error().message();
  EXPECT_EQ(watcher.reason().code, websocket::close_code::going_away);
  // The other pool is still served.
  EXPECT_TRUE(get_json(live.port()).at("pools").as_object().contains("web"));
}

TEST_F(stats_server_test, detach_removes_a_pool) {
  live.server->detach("web");
  EXPECT_TRUE(get_json(live.port()).at("pools").as_object().empty());
  EXPECT_EQ(http_request(live.port(), http::verb::get, "/stats?pool=web").status, 404u);
  EXPECT_THROW(live.server->attach("", [] { return std::optional<pool_stats>(); }),
               std::invalid_argument);
  EXPECT_THROW(live.server->attach("x", nullptr), std::invalid_argument);
}

// Whether this process has a listening TCP socket on `port`: its sockets'
// inodes (/proc/self/fd) against the LISTEN entries of /proc/net/tcp and
// tcp6. Unlike a connect, another process that took the freed port (tests
// run in parallel) cannot make it say yes.
bool this_process_listens_on(unsigned short port) {
  std::set<std::string> inodes;
  for (const auto& fd : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const auto target = std::filesystem::read_symlink(fd.path(), ec).string();
    if (!ec && target.starts_with("socket:[")) {
      inodes.insert(target.substr(8, target.size() - 9));
    }
  }
  char hex_port[8];
  std::snprintf(hex_port, sizeof hex_port, "%04X", static_cast<unsigned>(port));
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // the heading
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
          timeout >> inode;
      const auto colon = local.rfind(':');
      if (state == "0A" && colon != std::string::npos && local.substr(colon + 1) == hex_port &&
          inodes.contains(inode)) {
        return true;
      }
    }
  }
  return false;
}

TEST_F(stats_server_test, stop_closes_every_client_promptly) {
  ws_client a(live.port(), "/qtop/stats");
  ws_client b(live.port(), "/qtop/stats?update_secs=0.1");
  ASSERT_TRUE(this_process_listens_on(live.port())) << "the check sees the listener";
  ASSERT_TRUE(a.next());
  ASSERT_TRUE(b.next());
  // An HTTP client that connected and sent nothing.
  asio::io_context io;
  tcp::socket idle(io);
  idle.connect(loopback(live.port()));

  const auto port = live.port();
  const auto t0 = std::chrono::steady_clock::now();
  live.server->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 100ms);
  for (auto* c : {&a, &b}) {
    std::optional<json::object> push;
    do {
      push = c->next(2s);
    } while (push);
    EXPECT_NE(c->error(), beast::error::timeout) << "still open after stop";
  }
  EXPECT_TRUE(peer_closes(idle, 2s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  // The server no longer listens (a connect could reach another test's
  // server on the freed port). The listener is closed on its executor,
  // which may run after the sessions' closes on another thread: wait for it.
  EXPECT_TRUE(wait_until([&] { return !this_process_listens_on(port); }, 2s));
  live.server->stop();  // idempotent
  EXPECT_THROW(live.server->start(), std::logic_error);
}

}  // namespace
}  // namespace qorb::test
