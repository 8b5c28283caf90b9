// SPDX-License-Identifier: BSL-1.0
// stats_server: HTTP (/stats, /metrics) and WebSocket (/qtop/stats) on
// Beast. The only translation unit of qorb that compiles Beast.
#include <qorb/stats_server.hpp>

#include <netinet/in.h>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

#include "http_limits.hpp"
#include "log_limiter.hpp"
#include "observability/stats_request.hpp"

namespace qorb {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

// How often a WebSocket session reads its pool's stats, and so the shortest
// time between two pushes.
constexpr auto poll_interval = 100ms;
using detail::stats_http::max_request_body;
using detail::stats_http::max_request_header;

// --- limits ------------------------------------------------------------------

using detail::log_limiter;

// The highest descriptor a client may have: the last `reserved` below the
// RLIMIT_NOFILE soft limit are the rest of the process's. Descriptors are
// allocated lowest first, so holding descriptor n means n are in use.
bool within_fd_budget(int fd, std::size_t reserved) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return true;
  const auto cur = static_cast<std::uint64_t>(limit.rlim_cur);
  return static_cast<std::uint64_t>(fd) + reserved < cur;
}

// Refuses a client without reading from it: one non-blocking write of a
// 503 (what fits in the socket's empty send buffer, always all of it), then
// close.
void refuse(int fd) {
  static constexpr std::string_view busy =
      "HTTP/1.1 503 Service Unavailable\r\n"
      "Server: qorb stats_server\r\n"
      "Content-Type: text/plain\r\n"
      "Content-Length: 34\r\n"
      "Connection: close\r\n"
      "Retry-After: 1\r\n"
      "\r\n"
      "too many clients, try again later\n";
  [[maybe_unused]] const auto sent =
      ::send(fd, busy.data(), busy.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  ::close(fd);
}

void check_config(const stats_server_config& c) {
  const auto bad = [](const char* what) {
    throw std::invalid_argument(std::string("qorb: stats_server_config::").append(what));
  };
  constexpr std::size_t max_count = 1'000'000;
  constexpr auto max_interval = std::chrono::hours(1);
  if (c.max_connections < 1 || c.max_connections > max_count) {
    bad("max_connections must be within 1..1000000");
  }
  if (c.reserved_fds > max_count) bad("reserved_fds must be within 0..1000000");
  if (c.snapshot_interval < std::chrono::milliseconds::zero() ||
      c.snapshot_interval > max_interval) {
    bad("snapshot_interval must be within 0 ms..1 h");
  }
  if (c.log_interval < std::chrono::milliseconds::zero() || c.log_interval > max_interval) {
    bad("log_interval must be within 0 ms..1 h");
  }
  if (c.client_timeout <= std::chrono::milliseconds::zero() || c.client_timeout > max_interval) {
    bad("client_timeout must be within 1 ms..1 h");
  }
}

// --- JSON --------------------------------------------------------------------

// A backend's last error: null while it has none; "at" in UTC (ISO 8601,
// milliseconds), and with `age` "seconds_ago" from when the snapshot was
// taken (not in pushes, which go out when their content changes).
json::value error_json(const std::optional<backend_error>& e, bool age) {
  if (!e) return nullptr;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(e->at.time_since_epoch());
  const std::time_t secs = static_cast<std::time_t>(ms.count() / 1000);
  std::tm utc{};
  gmtime_r(&secs, &utc);
  char at[40];
  const auto n = std::strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(at + n, sizeof at - n, ".%03dZ", static_cast<int>(ms.count() % 1000));
  const double ago = std::max(
      0.0, std::chrono::duration<double>(std::chrono::system_clock::now() - e->at).count());
  json::object out{{"operation", e->operation}, {"message", e->message}, {"at", at}};
  if (age) out["seconds_ago"] = std::round(ago * 1000) / 1000;
  return out;
}

json::object backend_json(const backend_stats& b) {
  return {{"address", to_string(b.address)},
          {"connecting", b.connecting},
          {"unclaimed", b.unclaimed},
          {"checking", b.checking},
          {"claimed", b.claimed},
          {"total_claims", b.total_claims},
          {"connect_failures", b.connect_failures},
          {"check_failures", b.check_failures},
          {"recent_failures", b.recent_failures},
          {"online", b.online},
          {"removed", b.removed},
          {"last_error", error_json(b.last_error, true)}};
}

json::object pool_json(const pool_stats& p) {
  json::object backends;
  std::size_t online = 0, connecting = 0, unclaimed = 0, checking = 0, claimed = 0;
  std::uint64_t connect_failures = 0, check_failures = 0;
  for (const auto& [name, b] : p.backends) {
    backends[name] = backend_json(b);
    online += b.online ? 1 : 0;
    connecting += b.connecting;
    unclaimed += b.unclaimed;
    checking += b.checking;
    claimed += b.claimed;
    connect_failures += b.connect_failures;
    check_failures += b.check_failures;
  }
  json::array bounds, counts;
  for (double bound : claim_wait_histogram::bounds_s) bounds.emplace_back(bound);
  for (std::uint64_t count : p.claim_wait.counts) counts.emplace_back(count);
  const auto& f = p.claim_failures;
  return {{"name", p.name},
          {"terminated", p.terminated},
          {"total_claims", p.total_claims},
          {"claims_waiting", p.claims_waiting},
          {"max_slots", p.max_slots},
          {"totals",
           {{"backends", p.backends.size()},
            {"online", online},
            {"connecting", connecting},
            {"unclaimed", unclaimed},
            {"checking", checking},
            {"claimed", claimed},
            {"connect_failures", connect_failures},
            {"check_failures", check_failures}}},
          {"claim_failures",
           {{"no_backends", f.no_backends},
            {"no_backends_online", f.no_backends_online},
            {"all_claims_used", f.all_claims_used},
            {"terminated", f.terminated},
            {"cancelled", f.cancelled},
            {"acquire_failed", f.acquire_failed}}},
          {"claim_wait",
           {{"bounds_s", std::move(bounds)},
            {"counts", std::move(counts)},
            {"sum_s", p.claim_wait.sum_s},
            {"count", p.claim_wait.count}}},
          {"backends", std::move(backends)}};
}

// What a /qtop/stats push carries besides "claims": per backend ("sets")
// and the pool's saturation (docs/stats.md).
json::object sets_json(const pool_stats& p) {
  json::object sets;
  std::size_t claimed = 0;
  for (const auto& [name, b] : p.backends) {
    sets[name] = json::object{{"connecting", b.connecting},
                              {"unclaimed", b.unclaimed},
                              {"checking", b.checking},
                              {"claimed", b.claimed},
                              {"total_claims", b.total_claims},
                              {"online", b.online},
                              {"last_error", error_json(b.last_error, false)}};
    claimed += b.claimed;
  }
  return {{"total_claims", p.total_claims},
          {"claims_waiting", p.claims_waiting},
          {"max_slots", p.max_slots},
          {"claimed", claimed},
          {"sets", std::move(sets)}};
}

// --- Prometheus --------------------------------------------------------------

std::string metrics_text(const std::vector<pool_stats>& pools) {
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

  const auto as_double = [](auto n) { return static_cast<double>(n); };
  for (const auto& p : pools) {
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
    const auto& bounds = claim_wait_histogram::bounds_s;
    std::vector<double> increments;
    for (std::uint64_t count : p.claim_wait.counts) increments.push_back(as_double(count));
    wait.Add(labels, prom::Histogram::BucketBoundaries(bounds.begin(), bounds.end()))
        .ObserveMultiple(increments, p.claim_wait.sum_s);
  }
  return prom::TextSerializer().Serialize(registry.Collect());
}

}  // namespace

// --- the server's shared state ----------------------------------------------

namespace detail {
class stats_session;

// Output built from one snapshot: a response body, or for /qtop/stats the
// pool's sets and its claims so far.
struct built_output {
  std::string body;
  std::uint64_t total_claims = 0;
  bool found = true;  // false: the pool asked for is gone
};

// What the output is for.
enum class output_kind : char { stats = 's', metrics = 'm', sets = 'q' };
}  // namespace detail

struct detail::stats_server_state : std::enable_shared_from_this<stats_server_state> {
  stats_server_state(asio::any_io_executor ex, stats_server_config cfg)
      : executor(std::move(ex)), config(std::move(cfg)), acceptor(asio::make_strand(executor)) {}

  struct entry {
    std::string name;
    stats_source source;
    std::uint64_t id = 0;
  };

  template <class... Args>
  void log(spdlog::level::level_enum level, spdlog::format_string_t<Args...> fmt, Args&&... args) {
    if (config.logger) config.logger->log(level, fmt, std::forward<Args>(args)...);
  }

  // Reads the sources outside the lock (a source may take its pool's
  // lock) and drops those whose pool is gone.
  std::vector<pool_stats> snapshot(const std::string* only) {
    std::vector<entry> entries;
    {
      std::lock_guard lock(mu);
      for (const auto& e : pools) {
        if (!only || e.name == *only) entries.push_back(e);
      }
    }
    std::vector<pool_stats> out;
    for (auto& e : entries) {
      if (auto s = e.source()) {
        s->name = e.name;
        out.push_back(std::move(*s));
      } else {
        forget(e.id);
      }
    }
    return out;
  }

  void forget(std::uint64_t id) {
    std::lock_guard lock(mu);
    std::erase_if(pools, [id](const entry& e) { return e.id == id; });
  }

  bool attached(const std::string& name) {
    std::lock_guard lock(mu);
    return std::any_of(pools.begin(), pools.end(), [&](const entry& e) { return e.name == name; });
  }

  std::optional<std::string> first_pool() {
    std::lock_guard lock(mu);
    if (pools.empty()) return std::nullopt;
    return pools.front().name;
  }

  // Registers a session so that stop() reaches it; false once stopped.
  bool track(const std::shared_ptr<stats_session>& s) {
    std::lock_guard lock(mu);
    if (stopped) return false;
    sessions.remove_if([](const auto& w) { return w.expired(); });
    sessions.push_back(s);
    return true;
  }

  asio::awaitable<void> accept_loop();

  // The output for `kind`, for pool `only` (empty: every pool), from the
  // cached snapshot, taken again once `snapshot_interval` has passed or a
  // pool was attached or detached. On the builder's thread only.
  std::shared_ptr<const built_output> build(output_kind kind, const std::string& only) {
    const auto now = std::chrono::steady_clock::now();
    std::uint64_t gen = 0;
    {
      std::lock_guard lock(mu);
      gen = generation;
    }
    if (!cache_taken || now - *cache_taken >= config.snapshot_interval || gen != cache_generation) {
      cache_pools = snapshot(nullptr);
      cache_taken = now;
      cache_generation = gen;
      cache_built.clear();
      snapshots.fetch_add(1, std::memory_order_relaxed);
    }
    auto key = std::string(1, static_cast<char>(kind)).append(only);
    auto& slot = cache_built[std::move(key)];
    if (slot) return slot;
    auto out = std::make_shared<built_output>();
    std::vector<const pool_stats*> chosen;
    for (const auto& p : cache_pools) {
      if (only.empty() || p.name == only) chosen.push_back(&p);
    }
    switch (kind) {
      case output_kind::metrics: {
        if (only.empty()) {
          out->body = metrics_text(cache_pools);
        } else {
          std::vector<pool_stats> copies;
          for (const auto* p : chosen) copies.push_back(*p);
          out->body = metrics_text(copies);
        }
        break;
      }
      case output_kind::stats: {
        json::object all;
        for (const auto* p : chosen) all[p->name] = pool_json(*p);
        out->body = json::serialize(json::object{{"pools", std::move(all)}});
        out->body += '\n';
        break;
      }
      case output_kind::sets:
        out->found = !chosen.empty();
        if (out->found) {
          out->body = json::serialize(sets_json(*chosen.front()));
          out->total_claims = chosen.front()->total_claims;
        }
        break;
    }
    slot = std::move(out);
    return slot;
  }

  // Logs through `limiter` (guarded by `mu`): at most once per log_interval.
  template <class... Args>
  void log_limited(log_limiter& limiter, spdlog::level::level_enum level,
                   spdlog::format_string_t<Args...> fmt, Args&&... args) {
    std::uint64_t skipped = 0;
    {
      std::lock_guard lock(mu);
      if (!limiter.admit(config.log_interval, skipped)) return;
    }
    if (!config.logger) return;
    auto text = fmt::format(fmt, std::forward<Args>(args)...);
    if (skipped > 0) {
      text.append(" (").append(std::to_string(skipped)).append(" more since the last report)");
    }
    config.logger->log(level, "{}", text);
  }

  asio::any_io_executor executor;
  const stats_server_config config;
  tcp::acceptor acceptor;  // used on its own strand once started
  // Builds the output, off the pools' executors; joined by stop().
  asio::thread_pool builder{1};
  // The cache, on the builder's thread only.
  std::optional<std::chrono::steady_clock::time_point> cache_taken;
  std::uint64_t cache_generation = 0;
  std::vector<pool_stats> cache_pools;
  std::map<std::string, std::shared_ptr<const built_output>> cache_built;

  std::atomic<std::size_t> connections{0};
  std::atomic<std::uint64_t> refused{0}, accept_errors{0}, malformed{0}, snapshots{0};
  log_limiter accept_log, refuse_log, malformed_log;  // guarded by mu

  std::mutex mu;
  std::vector<entry> pools;      // in attach order
  std::uint64_t generation = 0;  // bumped by attach and detach
  std::uint64_t next_id = 0;
  bool started = false;
  bool stopped = false;
  std::optional<tcp::endpoint> endpoint;
  std::list<std::weak_ptr<stats_session>> sessions;
};

// --- one client ----------------------------------------------------------------

// A client connection: HTTP requests, then possibly a WebSocket. Everything
// runs on the session's own strand, so sessions never wait for each other.
class detail::stats_session : public std::enable_shared_from_this<stats_session> {
 public:
  using server_state = detail::stats_server_state;

  // Counted in `server->connections` by whoever made it, until destroyed.
  stats_session(std::shared_ptr<server_state> server, tcp::socket socket)
      : server_(std::move(server)),
        stream_(std::move(socket)),
        wake_(stream_.get_executor()),
        poll_(stream_.get_executor()),
        reply_(stream_.get_executor()) {}
  ~stats_session() { server_->connections.fetch_sub(1, std::memory_order_relaxed); }
  stats_session(const stats_session&) = delete;
  stats_session& operator=(const stats_session&) = delete;

  asio::any_io_executor get_executor() { return wake_.get_executor(); }

  // Closes the connection at once; operations in flight end with errors.
  // `abort` resets it instead, discarding unsent output: for a client that
  // stopped reading, whose kernel buffers would otherwise stay full.
  // On the strand only.
  void close(bool abort = false) {
    if (closed_) return;
    closed_ = true;
    wake_.cancel();
    poll_.cancel();
    reply_.cancel();
    auto& socket = ws_ ? beast::get_lowest_layer(*ws_).socket() : stream_.socket();
    beast::error_code ignored;
    if (abort) socket.set_option(asio::socket_base::linger(true, 0), ignored);
    socket.close(ignored);
  }

  asio::awaitable<void> run() {
    const auto self = shared_from_this();
    // Bounded: Beast needs a chunk header or the trailer whole in it, and
    // throws on a trailer field of 64 KiB (http_limits.hpp).
    auto buffer = detail::http_limits::bounded_buffer();
    while (!closed_) {
      http::request_parser<http::string_body> parser;
      detail::http_limits::bound(parser);
      parser.body_limit(max_request_body);
      parser.header_limit(max_request_header);
      stream_.expires_after(server_->config.client_timeout);
      auto [ec, n] = co_await http::async_read(stream_, buffer, parser, use_nothrow);
      if (ec) {
        if (closed_) break;
        if (const auto status = malformed_status(ec)) {
          co_await answer_malformed(*status, ec);
          co_return;
        }
        if (ec != http::error::end_of_stream) {
          server_->log(spdlog::level::debug, "stats_server: reading a request: {}", ec.message());
        }
        break;
      }
      auto request = parser.release();
      std::string pool_name;
      std::chrono::milliseconds update{1000};
      auto response = route(request, pool_name, update);
      if (!response) {
        co_await serve_websocket(std::move(request), std::move(pool_name), update);
        co_return;
      }
      if (pending_) {  // the body is built off this executor
        const auto [kind, only] = *std::exchange(pending_, std::nullopt);
        const auto out = co_await built(kind, only);
        if (closed_) break;
        if (out) {
          response->body() = out->body;
        } else {
          *response = reply(request, http::status::internal_server_error,
                            "could not read the pools' stats\n");
        }
      }
      response->keep_alive(request.keep_alive());
      response->prepare_payload();
      stream_.expires_after(server_->config.client_timeout);
      auto [wec, written] = co_await http::async_write(stream_, *response, use_nothrow);
      if (wec || !response->keep_alive()) break;
    }
    if (!closed_) {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
    close();
  }

 private:
  using response_type = http::response<http::string_body>;

  response_type reply(const http::request<http::string_body>& request, http::status status,
                      std::string body, std::string_view content_type = "text/plain") {
    response_type res(status, request.version());
    res.set(http::field::server, "qorb stats_server");
    res.set(http::field::content_type, content_type);
    res.set(http::field::cache_control, "no-store");
    res.body() = std::move(body);
    return res;
  }

  // The response to `request`, or nothing for a valid WebSocket upgrade
  // (then `pool_name` and `update` say what to push and how often).
  std::optional<response_type> route(const http::request<http::string_body>& request,
                                     std::string& pool_name, std::chrono::milliseconds& update) {
    auto r = stats_http::route_request(
        request.method() == http::verb::get, request.target(), websocket::is_upgrade(request),
        [this](const std::string& name) { return server_->attached(name); },
        [this] { return server_->first_pool(); });
    using action = stats_http::route::action;
    switch (r.what) {
      case action::websocket:
        pool_name = std::move(*r.pool);
        update = r.update;
        return std::nullopt;
      case action::stats:
      case action::metrics:
        // run() has the body built on the server's thread (see built()).
        pending_.emplace(r.what == action::metrics ? output_kind::metrics : output_kind::stats,
                         r.pool.value_or(""));
        return reply(request, http::status::ok, {},
                     r.what == action::metrics ? "text/plain; version=0.0.4; charset=utf-8"
                                               : "application/json");
      case action::reply:
        break;
    }
    auto res = reply(request, static_cast<http::status>(r.status), std::move(r.body));
    if (!r.allow.empty()) res.set(http::field::allow, r.allow);
    if (!r.upgrade.empty()) res.set(http::field::upgrade, r.upgrade);
    return res;
  }

  // The status for a request that did not parse, or nothing when the
  // client just went away or was too slow.
  static std::optional<http::status> malformed_status(const beast::error_code& ec) {
    if (ec == http::error::body_limit) return http::status::payload_too_large;
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      return http::status::request_header_fields_too_large;  // the header, a chunk's or the trailer
    }
    if (ec.category() != http::make_error_code(http::error::bad_method).category() ||
        ec == http::error::end_of_stream || ec == http::error::partial_message ||
        ec == http::error::need_more || ec == http::error::need_buffer) {
      return std::nullopt;
    }
    return http::status::bad_request;
  }

  // Answers a request that did not parse with `status`, then closes: after
  // a bounded drain of what the client still sends, so that the close does
  // not reset the connection before the client has read the answer.
  asio::awaitable<void> answer_malformed(http::status status, const beast::error_code& ec) {
    server_->malformed.fetch_add(1, std::memory_order_relaxed);
    server_->log_limited(server_->malformed_log, spdlog::level::info,
                         "stats_server: answering {} to a malformed request: {}",
                         static_cast<unsigned>(status), ec.message());
    std::string body;
    if (status == http::status::payload_too_large) {
      body.append("request body over ").append(std::to_string(max_request_body)).append(" bytes\n");
    } else if (ec == http::error::header_limit) {
      body.append("request line and headers over ")
          .append(std::to_string(max_request_header))
          .append(" bytes\n");
    } else if (const auto limit = detail::http_limits::limit_exceeded(ec); !limit.empty()) {
      body.append("malformed request: ").append(limit).append("\n");
    } else {
      body.append("malformed request: ").append(ec.message()).append("\n");
    }
    response_type res(status, 11);
    res.set(http::field::server, "qorb stats_server");
    res.set(http::field::content_type, "text/plain");
    res.set(http::field::cache_control, "no-store");
    res.body() = std::move(body);
    res.keep_alive(false);
    res.prepare_payload();
    const auto linger = std::min<std::chrono::milliseconds>(server_->config.client_timeout, 1s);
    stream_.expires_after(server_->config.client_timeout);
    auto [wec, written] = co_await http::async_write(stream_, res, use_nothrow);
    if (!wec && !closed_) {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      stream_.expires_after(linger);
      std::array<char, 4096> sink;
      for (std::size_t drained = 0; drained < 1024 * 1024 && !closed_;) {
        auto [rec, got] = co_await stream_.async_read_some(asio::buffer(sink), use_nothrow);
        if (rec) break;
        drained += got;
      }
    }
    close();
  }

  // The output for `kind` (see stats_server_state::build), built on the
  // server's thread; null if that failed. Returns early, with whatever it
  // has, once the session is closed.
  asio::awaitable<std::shared_ptr<const built_output>> built(output_kind kind, std::string only) {
    result_.reset();
    if (closed_) co_return nullptr;
    reply_.expires_at(asio::steady_timer::time_point::max());
    // The job holds the session weakly, and the server plainly: stop()
    // joins the builder before the server can go.
    std::weak_ptr<stats_session> weak = shared_from_this();
    // It holds no executor either: a job left queued at stop() may be
    // destroyed after the session's io_context.
    asio::post(server_->builder, [weak, server = server_.get(), kind, only = std::move(only)] {
      const auto self = weak.lock();
      if (!self) return;
      std::shared_ptr<const built_output> out;
      try {
        out = server->build(kind, only);
      } catch (const std::exception& e) {
        server->log(spdlog::level::warn, "stats_server: reading the pools' stats: {}", e.what());
      }
      asio::post(self->get_executor(),
                 [self, out = std::move(out)]() mutable { self->deliver(std::move(out)); });
    });
    while (!result_ && !closed_) co_await reply_.async_wait(use_nothrow);
    co_return result_ ? std::move(*result_) : nullptr;
  }

  void deliver(std::shared_ptr<const built_output> out) {
    result_.emplace(std::move(out));
    reply_.cancel();
  }

  asio::awaitable<void> serve_websocket(http::request<http::string_body> request,
                                        std::string pool_name, std::chrono::milliseconds update) {
    stream_.expires_never();  // the WebSocket stream keeps its own time
    ws_.emplace(std::move(stream_));
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = server_->config.client_timeout;
    timeouts.idle_timeout = server_->config.client_timeout;
    timeouts.keep_alive_pings = true;
    ws_->set_option(timeouts);
    ws_->set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "qorb stats_server"); }));
    auto [ec] = co_await ws_->async_accept(request, use_nothrow);
    if (ec || closed_) {
      close();
      co_return;
    }
    ws_->text(true);
    // The kernel's send buffer would otherwise grow to megabytes for a
    // client that stopped reading before our own queue saw it fall behind.
    const auto send_buffer =
        std::clamp<std::size_t>(server_->config.max_queued_bytes, 16 * 1024, 1024 * 1024);
    beast::error_code ignored;
    beast::get_lowest_layer(*ws_).socket().set_option(
        asio::socket_base::send_buffer_size(static_cast<int>(send_buffer)), ignored);
    asio::co_spawn(get_executor(), read_loop(), asio::detached);
    asio::co_spawn(get_executor(), write_loop(), asio::detached);
    co_await push_loop(pool_name, update);
  }

  // Reads (and ignores) what the client sends, which also answers its pings
  // and close frames.
  asio::awaitable<void> read_loop() {
    const auto self = shared_from_this();
    beast::flat_buffer buffer;
    while (!closed_) {
      auto [ec, n] = co_await ws_->async_read(buffer, use_nothrow);
      if (ec) break;
      buffer.consume(buffer.size());
    }
    close();
  }

  // Sends the queued messages one at a time; a queued close frame last.
  asio::awaitable<void> write_loop() {
    const auto self = shared_from_this();
    while (!closed_) {
      if (outbox_.empty()) {
        if (close_reason_) {
          co_await ws_->async_close(*close_reason_, use_nothrow);
          break;
        }
        wake_.expires_at(asio::steady_timer::time_point::max());
        co_await wake_.async_wait(use_nothrow);
        continue;
      }
      const std::string& message = outbox_.front();
      auto [ec, n] = co_await ws_->async_write(asio::buffer(message), use_nothrow);
      if (ec) break;
      queued_bytes_ -= outbox_.front().size();
      outbox_.pop_front();
    }
    close();
  }

  asio::awaitable<void> push_loop(const std::string& pool_name, std::chrono::milliseconds update) {
    std::shared_ptr<const built_output> last;
    std::uint64_t last_claims = 0;
    auto last_push = std::chrono::steady_clock::now();
    while (!closed_) {
      const auto out = co_await built(output_kind::sets, pool_name);
      if (closed_) co_return;
      if (out && !out->found) {
        close_reason_.emplace(websocket::close_code::going_away, "pool is gone");
        wake_.cancel();
        co_return;
      }
      const auto now = std::chrono::steady_clock::now();
      const bool changed = out && (!last || (out != last && out->body != last->body));
      if (out && (changed || now - last_push >= update)) {
        // The first push has nothing before it: 0 claims.
        const std::uint64_t claims =
            last && out->total_claims > last_claims ? out->total_claims - last_claims : 0;
        std::string message = "{\"claims\":";
        message += std::to_string(claims);
        message += ',';
        message.append(out->body, 1);  // sets_json's fields, after the brace
        // One message always fits, however big.
        if (queued_bytes_ > 0 &&
            queued_bytes_ + message.size() > server_->config.max_queued_bytes) {
          server_->log(spdlog::level::info,
                       "stats_server: dropping a WebSocket client that fell {} bytes behind",
                       queued_bytes_);
          close(true);
          co_return;
        }
        queued_bytes_ += message.size();
        outbox_.push_back(std::move(message));
        wake_.cancel();
        last = out;
        last_claims = out->total_claims;
        last_push = now;
      }
      poll_.expires_after(poll_interval);
      co_await poll_.async_wait(use_nothrow);
    }
  }

  std::shared_ptr<server_state> server_;
  beast::tcp_stream stream_;  // moved into ws_ on upgrade
  std::optional<websocket::stream<beast::tcp_stream>> ws_;
  asio::steady_timer wake_;  // wakes the writer when output is queued
  asio::steady_timer poll_;
  asio::steady_timer reply_;  // wakes built() when the builder answered
  std::optional<std::shared_ptr<const built_output>> result_;
  std::optional<std::pair<output_kind, std::string>> pending_;  // set by route()
  std::deque<std::string> outbox_;                              // front: being written
  std::size_t queued_bytes_ = 0;
  std::optional<websocket::close_reason> close_reason_;
  bool closed_ = false;
};

asio::awaitable<void> detail::stats_server_state::accept_loop() {
  const auto self = shared_from_this();
  asio::steady_timer pause(acceptor.get_executor());
  constexpr auto first_pause = 10ms, last_pause = 1000ms;
  auto next_pause = first_pause;
  for (;;) {
    auto [ec] = co_await acceptor.async_wait(tcp::acceptor::wait_read, use_nothrow);
    if (!acceptor.is_open() || ec == asio::error::operation_aborted) co_return;
    // accept4 with SOCK_CLOEXEC, as Asio's accept cannot: a client's socket
    // must not leak into processes the application starts.
    const int fd = ec ? -1 : ::accept4(acceptor.native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (!ec &&
          (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)) {
        continue;
      }
      // Out of descriptors, most likely (EMFILE, ENFILE), or of kernel
      // memory: stop accepting for a while, longer each time, rather than
      // spin; the clients wait in the listen backlog.
      accept_errors.fetch_add(1, std::memory_order_relaxed);
      const auto why = ec ? ec.message() : std::generic_category().message(errno);
      log_limited(accept_log, spdlog::level::warn,
                  "stats_server: accept: {}; pausing accepts for {} ms", why, next_pause.count());
      pause.expires_after(next_pause);
      next_pause = std::min(next_pause * 2, last_pause);
      co_await pause.async_wait(use_nothrow);
      continue;
    }
    next_pause = first_pause;
    if (connections.load(std::memory_order_relaxed) >= config.max_connections ||
        !within_fd_budget(fd, config.reserved_fds)) {
      refused.fetch_add(1, std::memory_order_relaxed);
      refuse(fd);
      log_limited(refuse_log, spdlog::level::warn,
                  "stats_server: refused a client: {} clients connected (max_connections {}, "
                  "reserved_fds {})",
                  connections.load(std::memory_order_relaxed), config.max_connections,
                  config.reserved_fds);
      continue;
    }
    connections.fetch_add(1, std::memory_order_relaxed);
    tcp::socket socket(asio::make_strand(executor));
    beast::error_code aec;
    socket.assign(acceptor.local_endpoint().protocol(), fd, aec);
    if (aec) {
      ::close(fd);
      connections.fetch_sub(1, std::memory_order_relaxed);
      continue;
    }
    auto session = std::make_shared<detail::stats_session>(self, std::move(socket));
    if (!track(session)) co_return;
    asio::co_spawn(session->get_executor(), session->run(), asio::detached);
  }
}

// --- stats_server --------------------------------------------------------------

stats_server::stats_server(asio::any_io_executor executor, stats_server_config config)
    : state_((check_config(config), std::make_shared<detail::stats_server_state>(
                                        std::move(executor), std::move(config)))) {}

stats_server::~stats_server() { stop(); }

void stats_server::attach(std::string pool_name, stats_source source) {
  if (pool_name.empty()) throw std::invalid_argument("qorb: stats_server::attach: empty name");
  if (!source) throw std::invalid_argument("qorb: stats_server::attach: empty source");
  std::lock_guard lock(state_->mu);
  auto& pools = state_->pools;
  const auto id = state_->next_id++;
  for (auto& e : pools) {
    if (e.name == pool_name) {
      e.source = std::move(source);
      e.id = id;
      ++state_->generation;
      return;
    }
  }
  pools.push_back({std::move(pool_name), std::move(source), id});
  ++state_->generation;
}

void stats_server::detach(const std::string& pool_name) {
  std::lock_guard lock(state_->mu);
  std::erase_if(state_->pools,
                [&](const detail::stats_server_state::entry& e) { return e.name == pool_name; });
  ++state_->generation;
}

void stats_server::start() {
  std::lock_guard lock(state_->mu);
  if (state_->started || state_->stopped) {
    throw std::logic_error("qorb: stats_server::start: already started or stopped");
  }
  auto& acceptor = state_->acceptor;
  const auto& listen = state_->config.listen;
  // Opened with SOCK_CLOEXEC (Asio cannot): the listener must not leak into
  // processes the application starts, which would keep the port bound.
  const int fd =
      ::socket(listen.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP);
  if (fd < 0) {
    throw boost::system::system_error(errno, boost::system::system_category(),
                                      "qorb: stats_server: socket");
  }
  acceptor.assign(listen.protocol(), fd);
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  acceptor.bind(listen);
  acceptor.listen();
  state_->endpoint = acceptor.local_endpoint();
  state_->started = true;
  asio::co_spawn(acceptor.get_executor(), state_->accept_loop(), asio::detached);
}

void stats_server::stop() {
  std::list<std::weak_ptr<detail::stats_session>> sessions;
  {
    std::lock_guard lock(state_->mu);
    if (state_->stopped) return;
    state_->stopped = true;
    sessions.swap(state_->sessions);
  }
  // No output is built from here on: jobs hold the server plainly, and
  // sessions waiting for output are closed below.
  state_->builder.stop();
  state_->builder.join();
  {
    std::lock_guard lock(state_->mu);
    if (!state_->started) return;
  }
  asio::dispatch(state_->acceptor.get_executor(), [s = state_] {
    beast::error_code ignored;
    s->acceptor.close(ignored);
  });
  for (auto& weak : sessions) {
    if (auto session = weak.lock()) {
      asio::dispatch(session->get_executor(), [session] { session->close(); });
    }
  }
}

stats_server_counters stats_server::counters() const {
  const auto& s = *state_;
  stats_server_counters c;
  c.connections = s.connections.load(std::memory_order_relaxed);
  c.refused = s.refused.load(std::memory_order_relaxed);
  c.accept_errors = s.accept_errors.load(std::memory_order_relaxed);
  c.malformed_requests = s.malformed.load(std::memory_order_relaxed);
  c.snapshots = s.snapshots.load(std::memory_order_relaxed);
  return c;
}

asio::ip::tcp::endpoint stats_server::local_endpoint() const {
  std::lock_guard lock(state_->mu);
  if (!state_->endpoint) throw std::logic_error("qorb: stats_server::local_endpoint: not started");
  return *state_->endpoint;
}

}  // namespace qorb
