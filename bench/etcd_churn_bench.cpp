// SPDX-License-Identifier: BSL-1.0
// qorb_etcd_churn_bench: claim latency on an io_context that also runs an
// etcd resolver applying a steady rate of watch events over a large prefix.
// A fake etcd member (in-process, loopback) serves KEYS keys and then one
// put per event moving a key to another port (one backend removed, one
// added); a pool over the resolver claims and returns a connection every
// millisecond on the same one-thread io_context, and each claim's latency
// counts from when it was due. Two runs: the resolver publishing changes
// (start_incremental, what the pool uses) and publishing whole sets (the
// resolver::start path every event took before). Prints figures; never
// passes or fails.
//
//   qorb_etcd_churn_bench [--keys N] [--rate EVENTS_PER_S] [--seconds S]
#include <qorb/pool.hpp>
#include <qorb/resolvers/etcd.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "etcd/fake_gateway.hpp"
#include "resolvers/etcd_codec.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using qorb::detail::etcd::base64_encode;

const std::string prefix = "/bench/churn/";

struct churn_conn {};

// Connects at once: the figures are the pool's and the resolver's, not a
// network's.
struct instant_connector {
  using connection_type = churn_conn;
  asio::awaitable<churn_conn> connect(const qorb::backend&) { co_return churn_conn{}; }
};

// The whole-set path: a resolver that only has `start`, so the pool's
// start_incremental falls back to it and every event republishes the set.
class whole_sets final : public qorb::resolver {
 public:
  explicit whole_sets(std::shared_ptr<qorb::etcd_resolver> inner) : inner_(std::move(inner)) {}
  void start(asio::any_io_executor ex, listener on_change) override {
    inner_->start(std::move(ex), std::move(on_change));
  }
  void stop() override { inner_->stop(); }

 private:
  std::shared_ptr<qorb::etcd_resolver> inner_;
};

std::string kv_json(std::size_t key, unsigned short port, std::int64_t revision) {
  std::string name = prefix;
  name.append("k").append(std::to_string(key));
  std::string value("127.0.0.1:");
  value.append(std::to_string(port));
  std::string out(R"({"key":")");
  out.append(base64_encode(name)).append(R"(","value":")").append(base64_encode(value));
  out.append(R"(","mod_revision":")").append(std::to_string(revision)).append(R"("})");
  return out;
}

double percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  const auto at = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(at), v.end());
  return v[at];
}

struct figures {
  double p50_us = 0, p99_us = 0, max_us = 0;
  std::size_t claims = 0;
  std::uint64_t events = 0;
};

figures run(bool changes, std::size_t keys, int rate, int seconds) {
  std::string range = R"({"header":{"revision":"1"},"kvs":[)";
  for (std::size_t i = 0; i < keys; ++i) {
    if (i) range += ",";
    range += kv_json(i, static_cast<unsigned short>(1000 + i % 50000), 1);
  }
  range += "]}";
  qorb::test::fake_gateway member([&](const qorb::test::fake_request& r) {
    if (r.path == "/v3/kv/range") return qorb::test::json_reply(range);
    return qorb::test::fake_reply{
        qorb::test::chunked_header() +
            qorb::test::chunk(R"({"result":{"header":{"revision":"1"},"created":true}})"
                              "\n"),
        true};
  });

  qorb::etcd_resolver_config config;
  config.endpoints = {member.endpoint()};
  config.prefix = prefix;
  config.logger = nullptr;
  auto etcd = std::make_shared<qorb::etcd_resolver>(config);
  std::shared_ptr<qorb::resolver> resolver = etcd;
  if (!changes) resolver = std::make_shared<whole_sets>(etcd);

  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread thread([&] { io.run(); });
  figures out;
  {
    qorb::policy p;
    p.max_slots = 64;
    qorb::pool<churn_conn> pool(io.get_executor(), "churn", resolver, instant_connector{}, p,
                                nullptr);
    // The first set, whole, and the watch.
    for (int i = 0; i < 60000 && (pool.stats().backends.size() < keys || etcd->stats().watches < 1);
         ++i) {
      std::this_thread::sleep_for(1ms);
    }
    std::atomic<bool> done{false};
    std::vector<double> us;
    us.reserve(static_cast<std::size_t>(seconds) * 1000);
    // One claim due every millisecond, on the io_context the resolver uses.
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          asio::steady_timer timer(io);
          auto due = clock_type::now();
          while (!done) {
            due += 1ms;
            timer.expires_at(due);
            co_await timer.async_wait(asio::use_awaitable);
            auto h = co_await pool.async_claim(asio::use_awaitable);
            h.reset();
            us.push_back(
                std::chrono::duration<double, std::micro>(clock_type::now() - due).count());
            if (clock_type::now() - due > 100ms) due = clock_type::now();  // no catching up
          }
        },
        asio::detached);
    // The events: key i moves to another port, one event at a time.
    const auto events0 = etcd->stats().events;
    const auto t0 = clock_type::now();
    const auto gap = std::chrono::microseconds(1000000 / std::max(1, rate));
    std::int64_t revision = 2;
    for (std::size_t i = 0; clock_type::now() - t0 < std::chrono::seconds(seconds); ++i) {
      const auto key = (i * 7919) % keys;
      const auto port = static_cast<unsigned short>(1000 + (key + i + 1) % 50000);
      member.push(qorb::test::chunk(R"({"result":{"header":{"revision":")" +
                                    std::to_string(revision) + R"("},"events":[{"kv":)" +
                                    kv_json(key, port, revision) + "}]}}\n"));
      ++revision;
      std::this_thread::sleep_until(t0 + gap * static_cast<int>(i + 1));
    }
    done = true;
    std::this_thread::sleep_for(50ms);  // the claim loop sees `done`
    out.events = etcd->stats().events - events0;
    std::promise<void> copied;
    asio::post(io, [&] {
      out.claims = us.size();
      out.p50_us = percentile(us, 0.50);
      out.p99_us = percentile(us, 0.99);
      out.max_us = us.empty() ? 0 : *std::max_element(us.begin(), us.end());
      copied.set_value();
    });
    copied.get_future().wait();
  }
  work.reset();
  etcd->stop();
  thread.join();
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t keys = 20000;
  int rate = 20;
  int seconds = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--keys" && i + 1 < argc) {
      keys = static_cast<std::size_t>(std::max(1L, std::strtol(argv[++i], nullptr, 10)));
    } else if (arg == "--rate" && i + 1 < argc) {
      rate = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--seconds" && i + 1 < argc) {
      seconds = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--help" || arg == "-h") {
      std::printf("usage: qorb_etcd_churn_bench [--keys N] [--rate EVENTS_PER_S] [--seconds S]\n");
      return 0;
    } else {
      std::fprintf(stderr, "qorb_etcd_churn_bench: unknown option '%s' (try --help)\n", argv[i]);
      return 2;
    }
  }
  std::printf("qorb_etcd_churn_bench: %zu keys, %d events/s for %d s, a claim due every ms\n", keys,
              rate, seconds);
  for (const bool changes : {false, true}) {
    const auto f = run(changes, keys, rate, seconds);
    std::printf(
        "  %-13s claim p50 %9.1f us  p99 %9.1f us  max %9.1f us  (%zu claims, %llu events)\n",
        changes ? "changes:" : "whole sets:", f.p50_us, f.p99_us, f.max_us, f.claims,
        static_cast<unsigned long long>(f.events));
  }
  return 0;
}
