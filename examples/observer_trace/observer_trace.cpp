// SPDX-License-Identifier: BSL-1.0
// observer_trace: a qorb::pool_observer that turns a pool's events into
// trace-like log lines: a span per claim (started -> served or failed, with
// how long it waited, then how long it was held), each connect with its
// duration, each close with its reason, backends going online and offline
// and the pool's status. What one would feed an OpenTelemetry tracer.
//
// It runs a small scene on its own: an in-process TCP echo server and a
// loopback port nothing listens on as the pool's two backends, a few
// claimers that share two connections (so some claims wait), one claim that
// times out, then terminate.
//
//   observer_trace [--claimers N]   (default 3)
#include <qorb/connectors/tcp.hpp>
#include <qorb/observer.hpp>
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/echo_server.hpp"

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

double ms(steady::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// The hooks run one at a time, in order; the lock only guards the spans
// against this program's own reads.
class trace_printer final : public qorb::pool_observer {
 public:
  explicit trace_printer(steady::time_point origin) : origin_(origin) {}

  void on_claim_started(const qorb::claim_started_event& e) override {
    std::lock_guard lock(m_);
    claims_[e.claim] = e.at;
    line(e, "span claim#%llu started", id(e.claim));
  }
  void on_claim_served(const qorb::claim_served_event& e) override {
    std::lock_guard lock(m_);
    const std::string waited = since(claims_, e.claim, e.at);
    held_[key(e.backend, e.slot)] = {e.claim, e.at};
    line(e, "span claim#%llu served after %s ms by %.*s slot %llu", id(e.claim), waited.c_str(),
         int(e.backend.size()), e.backend.data(), id(e.slot));
  }
  void on_claim_failed(const qorb::claim_failed_event& e) override {
    std::lock_guard lock(m_);
    const std::string waited = since(claims_, e.claim, e.at);
    line(e, "span claim#%llu failed after %s ms: %s", id(e.claim), waited.c_str(),
         e.error.message().c_str());
  }
  void on_released(const qorb::released_event& e) override { returned(e, "released", {}); }
  void on_discarded(const qorb::discarded_event& e) override { returned(e, "discarded", e.reason); }
  void on_connect_started(const qorb::connect_started_event& e) override {
    std::lock_guard lock(m_);
    connects_[key(e.backend, e.slot)] = e.at;
    line(e, "connect %.*s slot %llu started", int(e.address.size()), e.address.data(), id(e.slot));
  }
  void on_connect_succeeded(const qorb::connect_succeeded_event& e) override {
    std::lock_guard lock(m_);
    const std::string took = since(connects_, key(e.backend, e.slot), e.at);
    line(e, "connect %.*s slot %llu ok in %s ms", int(e.address.size()), e.address.data(),
         id(e.slot), took.c_str());
  }
  void on_connect_failed(const qorb::connect_failed_event& e) override {
    std::lock_guard lock(m_);
    const std::string took = since(connects_, key(e.backend, e.slot), e.at);
    line(e, "connect %.*s slot %llu failed in %s ms: %.*s (retry in %.0f ms)",
         int(e.address.size()), e.address.data(), id(e.slot), took.c_str(), int(e.error.size()),
         e.error.data(), ms(e.retry_in));
  }
  void on_connection_closed(const qorb::connection_closed_event& e) override {
    std::lock_guard lock(m_);
    line(e, "closed %.*s slot %llu: %s", int(e.address.size()), e.address.data(), id(e.slot),
         qorb::to_string(e.reason));
  }
  void on_backend_online(const qorb::backend_event& e) override {
    std::lock_guard lock(m_);
    line(e, "backend %.*s online (%zu online)", int(e.address.size()), e.address.data(),
         e.online_backends);
  }
  void on_backend_offline(const qorb::backend_event& e) override {
    std::lock_guard lock(m_);
    line(e, "backend %.*s offline (%zu online)", int(e.address.size()), e.address.data(),
         e.online_backends);
  }
  void on_status_changed(const qorb::status_changed_event& e) override {
    std::lock_guard lock(m_);
    line(e, "status %s -> %s", qorb::to_string(e.from), qorb::to_string(e.to));
  }

 private:
  struct held {
    std::uint64_t claim;
    steady::time_point since;
  };
  static unsigned long long id(std::uint64_t n) { return n; }
  static std::string key(std::string_view backend, std::uint64_t slot) {
    std::string k(backend);
    k.append("#").append(std::to_string(slot));
    return k;
  }
  // How long since the start `m` noted for `k` (forgetting it), as text;
  // "?" when it began before the observer was set.
  template <class Map>
  static std::string since(Map& m, const typename Map::key_type& k, steady::time_point now) {
    auto it = m.find(k);
    if (it == m.end()) return "?";
    char text[32];
    std::snprintf(text, sizeof text, "%.3f", ms(now - it->second));
    m.erase(it);
    return text;
  }
  void returned(const qorb::connection_event& e, const char* how, std::string_view why) {
    std::lock_guard lock(m_);
    auto it = held_.find(key(e.backend, e.slot));
    if (it == held_.end()) return;
    const std::string reason = why.empty() ? std::string() : ": " + std::string(why);
    line(e, "span claim#%llu %s after %.3f ms held%s", id(it->second.claim), how,
         ms(e.at - it->second.since), reason.c_str());
    held_.erase(it);
  }
  // One line: the time since the start, the pool, then printf(fmt, ...).
  __attribute__((format(printf, 3, 4))) void line(const qorb::pool_event& e, const char* fmt, ...) {
    std::printf("%10.3f ms  pool %.*s  ", ms(e.at - origin_), int(e.pool.size()), e.pool.data());
    va_list args;
    va_start(args, fmt);
    std::vprintf(fmt, args);
    va_end(args);
    std::printf("\n");
    std::fflush(stdout);
  }

  const steady::time_point origin_;
  std::mutex m_;
  std::map<std::uint64_t, steady::time_point> claims_;
  std::map<std::string, steady::time_point> connects_;
  std::map<std::string, held> held_;
};

// A loopback port nothing listens on (bound, then closed).
unsigned short unused_port(asio::io_context& io) {
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

}  // namespace

int main(int argc, char** argv) {
  int claimers = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--claimers" && i + 1 < argc) {
      claimers = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: observer_trace [--claimers N]\n");
      return 2;
    }
  }
  if (claimers < 1 || claimers > 64) {
    std::fprintf(stderr, "observer_trace: --claimers takes 1 to 64\n");
    return 2;
  }

  qorb::examples::echo_server server;
  asio::io_context io;
  const unsigned short closed_port = unused_port(io);
  auto resolver = std::make_shared<qorb::fixed_resolver>(std::vector<tcp::endpoint>{
      server.endpoint(), {asio::ip::make_address("127.0.0.1"), closed_port}});
  qorb::policy p;
  p.max_slots = 4;  // the refused backend's slots never connect
  p.spares_wanted = 4;
  p.claim_timeout = 5s;
  p.set_config.min_connection_backoff = 50ms;
  p.set_config.max_connection_backoff = 200ms;
  qorb::pool<tcp::socket> pool(io.get_executor(), "trace", resolver, qorb::tcp_connector{}, p);
  pool.set_observer(std::make_shared<trace_printer>(steady::now()));
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) threads.emplace_back([&] { io.run(); });

  // Claimers sharing two connections: some claims wait for a return.
  std::vector<std::thread> users;
  for (int i = 0; i < claimers; ++i) {
    users.emplace_back([&] {
      for (int n = 0; n < 2; ++n) {
        auto h = pool.claim();
        std::this_thread::sleep_for(20ms);  // "using" the connection
      }
    });
  }
  for (auto& t : users) t.join();
  {
    // Every connection held: the next claim times out (its span fails).
    std::vector<qorb::handle<tcp::socket>> held;
    qorb::error_code ec;
    for (std::size_t i = 0; i <= p.max_slots && !ec; ++i) {
      if (auto h = pool.claim(100ms, ec)) held.push_back(std::move(h));
    }
  }
  pool.terminate();
  for (auto& t : threads) t.join();
  return 0;
}
