// SPDX-License-Identifier: BSL-1.0
#include "common/echo_workload.hpp"

#include <qorb/connectors/tcp.hpp>
#include <qorb/pool.hpp>
#include <qorb/resolvers/dns.hpp>
#ifdef QORB_WORKLOAD_STATS
#include <qorb/stats_server.hpp>
#endif

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <fmt/format.h>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

namespace qorb::examples {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

qorb::policy workload_policy() {
  qorb::policy p;
  p.claim_timeout = 2s;
  p.rebalance_interval = 5s;
  p.set_config.max_connection_backoff = 2s;
  p.set_config.health_interval = 2s;
  p.set_config.health_check_timeout = 1s;
  return p;
}

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// The health check of the workload: write a byte, read its echo.
asio::awaitable<void> echo_check(tcp::socket& socket) {
  char byte = 'a';
  co_await asio::async_write(socket, asio::buffer(&byte, 1), asio::use_awaitable);
  co_await asio::async_read(socket, asio::buffer(&byte, 1), asio::use_awaitable);
  if (byte != 'a') throw std::runtime_error("the echo server answered something else");
}

struct claimer_state {
  explicit claimer_state(std::size_t i, std::chrono::milliseconds h) : id(i), hold_ms(h.count()) {}
  const std::size_t id;
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> hold_ms;
  std::atomic<bool> claimed{false};
  std::atomic<std::uint64_t> ok{0}, server_failures{0}, claim_failures{0};
};

std::string describe(const qorb::backend_stats& s) {
  return std::to_string(s.connect_failures) + " connect and " + std::to_string(s.check_failures) +
         " check failures so far";
}

std::string describe(const qorb::dns_resolver_stats& st) {
  std::string out = fmt::format("DNS: {} rounds", st.rounds);
  for (const auto& s : st.servers) {
    out +=
        fmt::format("; {}: {} with records",
                    qorb::to_string(tcp::endpoint(s.server.address(), s.server.port())), s.records);
    if (s.no_records != 0) out += fmt::format(", {} without", s.no_records);
    if (s.timeouts != 0) out += fmt::format(", {} timeouts", s.timeouts);
    if (s.errors != 0) out += fmt::format(", {} errors", s.errors);
    if ((s.timeouts != 0 || s.errors != 0) && !s.last_error.empty()) {
      out += " (last: " + s.last_error + ")";
    }
  }
  return out;
}

}  // namespace

struct echo_workload::impl {
  explicit impl(workload_config c) : cfg(std::move(c)) {}

  workload_config cfg;
  const steady_clock::time_point start = steady_clock::now();
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work{io.get_executor()};
  std::vector<std::thread> threads;
  std::unique_ptr<qorb::pool<tcp::socket>> pool;
  std::shared_ptr<qorb::dns_resolver> resolver;  // when the pool uses DNS
  std::shared_ptr<qorb::resolver> discovery;     // what the pool uses
#ifdef QORB_WORKLOAD_STATS
  std::optional<qorb::stats_server> stats;
#endif
  std::optional<tcp::endpoint> stats_at;
  asio::strand<asio::io_context::executor_type> sampling{io.get_executor()};
  asio::steady_timer sampler{sampling};
  bool sampling_stopped = false;  // only touched on `sampling`

  mutable std::mutex mu;  // guards everything below
  std::vector<std::shared_ptr<claimer_state>> claimers;
  std::size_t next_id = 0;
  std::map<std::string, backend_record> backends;
  std::vector<workload_event> events;
  std::size_t running = 0;  // claimer coroutines not yet finished
  std::condition_variable all_done;
  bool stopped = false;

  void event_locked(steady_clock::time_point at, std::string text) {
    events.push_back({at, std::move(text)});
  }

  void spawn_claimer_locked() {
    auto c = std::make_shared<claimer_state>(next_id++, cfg.hold);
    claimers.push_back(c);
    ++running;
    asio::co_spawn(io, run_claimer(std::move(c)), asio::detached);
  }

  asio::awaitable<void> run_claimer(std::shared_ptr<claimer_state> c) {
    asio::steady_timer timer(io);
    asio::steady_timer deadline(io);
    const std::string message = "hello";
    std::string back(message.size(), '\0');
    while (!c->stop) {
      auto [ec, h] = co_await pool->async_claim(use_tuple);
      if (ec == qorb::errc::terminated) break;  // the workload is stopping
      if (ec) {
        ++c->claim_failures;
      } else {
        const std::string name = h.backend().name;
        const auto handed = record_claim(name);
        c->claimed = true;
        auto [werr, wn] = co_await asio::async_write(*h, asio::buffer(message), use_tuple);
        bool good = !werr;
        if (good) {
          // The hold, in slices so that stopping does not wait for a long one.
          const auto until = steady_clock::now() + std::chrono::milliseconds(c->hold_ms.load());
          while (!c->stop && steady_clock::now() < until) {
            timer.expires_at(std::min(until, steady_clock::now() + 100ms));
            co_await timer.async_wait(use_tuple);
          }
          if (c->stop) {
            c->claimed = false;
            h.discard();  // the echo is still unread: not reusable as it is
            break;
          }
          // A server that stopped answering must not hold the claimer for ever.
          deadline.expires_after(5s);
          auto read = co_await (asio::async_read(*h, asio::buffer(back), use_tuple) ||
                                deadline.async_wait(use_tuple));
          good = read.index() == 0 && !std::get<0>(std::get<0>(read)) && back == message;
        }
        c->claimed = false;
        if (good) {
          ++c->ok;
        } else {
          ++c->server_failures;
          h.discard();  // broken: the pool closes it instead of recycling it
        }
        record_result(name, good, handed);
        h.reset();  // returned before the pause
      }
      if (c->stop) break;
      // After a failed claim, pause a little even with no pause configured.
      timer.expires_after(ec ? std::max<std::chrono::milliseconds>(cfg.pause, 100ms) : cfg.pause);
      co_await timer.async_wait(use_tuple);
    }
    std::lock_guard lock(mu);
    if (--running == 0) all_done.notify_all();
  }

  // The only places where a backend enters or leaves the set, or goes
  // online or offline: they stamp the time and log the event (`why` null:
  // no event).
  void set_listed_locked(backend_record& b, const std::string& name, bool listed,
                         steady_clock::time_point now, const char* why) {
    if (b.listed == listed) return;
    b.listed = listed;
    (listed ? b.listed_at : b.unlisted_at) = now;
    event_locked(now, name + ": " + why);
  }

  void set_online_locked(backend_record& b, const std::string& name, bool online,
                         steady_clock::time_point now, const std::string& why) {
    if (b.pool.online == online) return;
    b.pool.online = online;
    (online ? b.online_at : b.offline_at) = now;
    if (!why.empty()) event_locked(now, name + ": " + why);
  }

  // Returns when the claim was handed its connection.
  steady_clock::time_point record_claim(const std::string& name) {
    const auto now = steady_clock::now();
    std::lock_guard lock(mu);
    auto& b = backends[name];
    // A claim proves the backend is in the set and connected, maybe before
    // the sampler saw it.
    set_listed_locked(b, name, true, now, "in the pool's backend set (from DNS)");
    set_online_locked(b, name, true, now, "online");
    ++b.claims;
    if (!b.first_claim) b.first_claim = now;
    b.last_claim = now;
    return now;
  }

  void record_result(const std::string& name, bool good, steady_clock::time_point handed) {
    const auto now = steady_clock::now();
    std::lock_guard lock(mu);
    auto& b = backends[name];
    if (good) {
      ++b.ok;
      if (!b.first_ok) {
        b.first_ok = now;
        event_locked(now, name + ": served its first claim");
      }
    } else {
      ++b.server_failures;
      if (b.failed_handed.size() < 1000) b.failed_handed.push_back(handed);
    }
  }

  // Compares the pool's stats with what was recorded and logs the changes:
  // backends entering and leaving the set, going online and offline.
  void sample() {
    const auto current = pool->stats();
    const auto now = steady_clock::now();
    std::lock_guard lock(mu);
    if (stopped) return;  // a terminated pool lists every backend as gone
    for (const auto& [name, s] : current.backends) {
      auto& b = backends[name];
      const bool was_online = b.pool.online;
      b.pool = s;
      b.pool.online = was_online;  // changed below, with its event
      set_listed_locked(
          b, name, !s.removed, now,
          s.removed ? "left the backend set; draining" : "in the pool's backend set (from DNS)");
      set_online_locked(b, name, s.online, now,
                        s.online ? "online" : "offline (" + describe(s) + ")");
    }
    for (auto& [name, b] : backends) {
      if (current.backends.count(name) != 0) continue;
      set_listed_locked(b, name, false, now, "gone from the pool");
      set_online_locked(b, name, false, now, "");
      b.pool.connecting = b.pool.unclaimed = b.pool.checking = b.pool.claimed = 0;
    }
  }

  void schedule_sample() {
    sampler.expires_after(50ms);
    sampler.async_wait([this](boost::system::error_code ec) {
      // A wait that completed just before the cancel still runs: the flag
      // tells it to stop too.
      if (ec || sampling_stopped) return;
      sample();
      schedule_sample();
    });
  }
};

echo_workload::echo_workload(workload_config config)
    : impl_(std::make_unique<impl>(std::move(config))) {
  auto& w = *impl_;
  qorb::dns_resolver_config dns;
  dns.service = w.cfg.service;
  dns.servers = w.cfg.dns_servers;
  dns.query_interval = w.cfg.dns_interval;
  dns.query_retry_if_no_records_found = std::min<std::chrono::milliseconds>(w.cfg.dns_interval, 1s);
  dns.query_timeout = 1s;
  dns.logger = w.cfg.logger;
  if (w.cfg.resolver) {
    // Held by `discovery` only, which goes before the io_context the
    // resolver's timers live on (`cfg` outlives it).
    w.discovery = std::move(w.cfg.resolver);
  } else {
    w.resolver = std::make_shared<qorb::dns_resolver>(std::move(dns));
    w.discovery = w.resolver;
  }

  qorb::tcp_connector_config connector;
  connector.health_check = echo_check;
  w.pool = std::make_unique<qorb::pool<tcp::socket>>(w.io.get_executor(), "echo", w.discovery,
                                                     qorb::tcp_connector(connector), w.cfg.policy,
                                                     w.cfg.logger);
#ifdef QORB_WORKLOAD_STATS
  if (w.cfg.stats_addr) {
    qorb::stats_server_config sc;
    sc.listen = *w.cfg.stats_addr;
    sc.logger = w.cfg.logger;
    w.stats.emplace(w.io.get_executor(), sc);
    w.stats->attach(*w.pool);
    // One line naming the address: what() of Boost's system_error carries
    // the source location it was thrown from, not for a user.
    try {
      w.stats->start();
    } catch (const boost::system::system_error& e) {
      throw std::runtime_error(std::string("cannot serve stats on ")
                                   .append(qorb::to_string(*w.cfg.stats_addr))
                                   .append(": ")
                                   .append(e.code().message()));
    }
    w.stats_at = w.stats->local_endpoint();
  }
#else
  if (w.cfg.stats_addr) {
    throw std::invalid_argument("this build has no stats server (the observability component)");
  }
#endif
  {
    std::lock_guard lock(w.mu);
    for (std::size_t i = 0; i < w.cfg.claimers; ++i) w.spawn_claimer_locked();
  }
  w.schedule_sample();
  const unsigned n = std::max(1u, w.cfg.threads);
  for (unsigned i = 0; i < n; ++i) w.threads.emplace_back([&w] { w.io.run(); });
}

echo_workload::~echo_workload() { stop(); }

void echo_workload::add_claimer() {
  std::lock_guard lock(impl_->mu);
  if (!impl_->stopped) impl_->spawn_claimer_locked();
}

void echo_workload::remove_claimer() {
  std::lock_guard lock(impl_->mu);
  if (impl_->claimers.empty()) return;
  impl_->claimers.back()->stop = true;
  impl_->claimers.pop_back();
}

void echo_workload::change_hold(std::size_t index, std::chrono::milliseconds delta) {
  std::lock_guard lock(impl_->mu);
  if (index >= impl_->claimers.size()) return;
  auto& hold = impl_->claimers[index]->hold_ms;
  hold = std::clamp<std::int64_t>(hold + delta.count(), 0, 60'000);
}

void echo_workload::note(std::string text) {
  std::lock_guard lock(impl_->mu);
  impl_->event_locked(steady_clock::now(), std::move(text));
}

std::vector<workload_event> echo_workload::events(std::size_t from) const {
  std::lock_guard lock(impl_->mu);
  if (from >= impl_->events.size()) return {};
  return {impl_->events.begin() + static_cast<std::ptrdiff_t>(from), impl_->events.end()};
}

workload_snapshot echo_workload::snapshot() const {
  const auto pool_stats = impl_->pool->stats();
  workload_snapshot s;
  s.taken = steady_clock::now();
  s.claims_waiting = pool_stats.claims_waiting;
  if (impl_->resolver) {
    s.dns = describe(impl_->resolver->stats());
  } else if (impl_->cfg.describe_resolver) {
    s.dns = impl_->cfg.describe_resolver();
  }
  std::lock_guard lock(impl_->mu);
  s.backends = impl_->backends;
  for (const auto& c : impl_->claimers) {
    s.claimers.push_back({c->id, std::chrono::milliseconds(c->hold_ms.load()), c->claimed.load(),
                          c->ok.load(), c->server_failures.load(), c->claim_failures.load()});
  }
  for (const auto& [name, b] : s.backends) {
    s.ok += b.ok;
    s.server_failures += b.server_failures;
  }
  // Claim failures name no backend: count them over every claimer, also
  // those removed, through the pool's own counters.
  const auto& failures = pool_stats.claim_failures;
  s.claim_failures = failures.no_backends + failures.no_backends_online + failures.all_claims_used;
  return s;
}

steady_clock::time_point echo_workload::started() const { return impl_->start; }
const workload_config& echo_workload::config() const { return impl_->cfg; }
std::optional<tcp::endpoint> echo_workload::stats_endpoint() const { return impl_->stats_at; }

void echo_workload::stop() {
  auto& w = *impl_;
  {
    std::lock_guard lock(w.mu);
    if (w.stopped) return;
    w.stopped = true;
    for (auto& c : w.claimers) c->stop = true;
  }
  // Waiting claims end with `terminated`; held ones within 100 ms.
  w.pool->terminate();
  w.discovery->stop();
  asio::post(w.sampling, [&w] {
    w.sampling_stopped = true;
    w.sampler.cancel();
  });
#ifdef QORB_WORKLOAD_STATS
  if (w.stats) w.stats->stop();  // its listener is work: the threads would never finish
#endif
  w.work.reset();
  // Claimers end within 100 ms of a hold, or after a write or read of at
  // most 5 s; beyond that, stop the io_context (their frames are destroyed).
  {
    std::unique_lock lock(w.mu);
    if (!w.all_done.wait_for(lock, 6s, [&w] { return w.running == 0; })) w.io.stop();
  }
  for (auto& t : w.threads) t.join();
  w.threads.clear();
}

}  // namespace qorb::examples
