// SPDX-License-Identifier: BSL-1.0
// The etcd client against hostile members (fake gateways on loopback): HTTP
// parser limits, watch lines that never end, revisions and TTLs at the edge
// of int64, keys outside the prefix, watches ended or cancelled at once
// (retry storms), and events published as changes, not whole sets.
#include "etcd_harness.hpp"
#include "fake_gateway.hpp"

#include "resolvers/etcd_codec.hpp"
#include "resolvers/etcd_http.hpp"

#include <qorb/pool.hpp>
#include <qorb/resolvers/etcd_registration.hpp>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <sstream>

namespace {

using namespace qorb::test;
using namespace std::chrono_literals;
using qorb::detail::etcd::base64_encode;
using names = std::set<std::string>;

const std::string prefix = "/services/echo/";

std::string kv(const std::string& key, const std::string& value, int revision = 2) {
  return R"({"key":")" + base64_encode(key) + R"(","value":")" + base64_encode(value) +
         R"(","mod_revision":")" + std::to_string(revision) + R"("})";
}

std::string range_json(const std::string& revision, const std::vector<std::string>& kvs) {
  std::string out = R"({"header":{"revision":")" + revision + R"("},"kvs":[)";
  for (std::size_t i = 0; i < kvs.size(); ++i) out += (i ? "," : "") + kvs[i];
  return out + "]}";
}

const std::string created_line = R"({"result":{"header":{"revision":"5"},"created":true}})"
                                 "\n";

// A logger whose lines the test reads, at debug level.
struct captured_log {
  std::shared_ptr<std::ostringstream> stream = std::make_shared<std::ostringstream>();
  qorb::logger_ptr logger = [this] {
    auto l = std::make_shared<spdlog::logger>(
        "etcd-hostile", std::make_shared<spdlog::sinks::ostream_sink_mt>(*stream));
    l->set_level(spdlog::level::debug);
    return l;
  }();
  std::size_t count(const std::string& what) {
    logger->flush();
    const auto text = stream->str();
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  }
};

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

// ----- HTTP limits (item 1, 2) ---------------------------------------------------

TEST(EtcdHostile, TrailerFieldOf64KiBFailsTheMemberInsteadOfAborting) {
  fake_gateway member([](const fake_request&) {
    const std::string body = range_json("3", {kv(prefix + "a", "127.0.0.1:7001")});
    return fake_reply{
        chunked_header() + chunk(body) + "0\r\nX-T: " + std::string(65536, 'x') + "\r\n\r\n",
        false};
  });
  etcd_harness h(etcd_config({member.endpoint()}, prefix));
  h.start();
  ASSERT_TRUE(wait_until([&] { return h.stats().failures >= 2; }));
  const auto s = h.stats();
  EXPECT_TRUE(contains(s.last_error, "trailer is over 16384 bytes")) << s.last_error;
  EXPECT_EQ(h.publications(), 0U);
  EXPECT_TRUE(h.stop());
}

TEST(EtcdHostile, ChunkExtensionsOverTheirBoundFailTheMember) {
  fake_gateway member([](const fake_request&) {
    const std::string body = range_json("3", {kv(prefix + "a", "127.0.0.1:7001")});
    char size[32];
    std::snprintf(size, sizeof size, "%zx", body.size());
    return fake_reply{chunked_header() + size + ";x=" + std::string(1 << 20, 'e') + "\r\n" + body +
                          "\r\n0\r\n\r\n",
                      false};
  });
  etcd_harness h(etcd_config({member.endpoint()}, prefix));
  h.start();
  ASSERT_TRUE(wait_until([&] { return h.stats().failures >= 2; }));
  const auto s = h.stats();
  EXPECT_TRUE(contains(s.last_error, "over 16384 bytes") || contains(s.last_error, "extensions"))
      << s.last_error;
  EXPECT_EQ(h.publications(), 0U);
  EXPECT_TRUE(h.stop());
}

TEST(EtcdHostile, RegistrationFailsTheMemberOnATrailerOf64KiB) {
  fake_gateway member([](const fake_request&) {
    return fake_reply{chunked_header() + chunk(R"({"ID":"7","TTL":"5"})") +
                          "0\r\nX-T: " + std::string(65536, 'x') + "\r\n\r\n",
                      false};
  });
  qorb::etcd_registration_config c;
  c.endpoints = {member.endpoint()};
  c.key = prefix + "a";
  c.value = "127.0.0.1:7001";
  c.retry_min = 20ms;
  c.retry_max = 100ms;
  c.logger = nullptr;
  qorb::asio::io_context io;
  qorb::etcd_registration r(c);
  r.start(io.get_executor());
  std::thread t([&] { io.run_for(20s); });
  const bool failed = wait_until([&] { return r.stats().failures >= 2; });
  std::atomic<bool> done{false};
  r.stop([&](bool) { done = true; });
  ASSERT_TRUE(wait_until([&] { return done.load(); }));
  io.stop();
  t.join();
  ASSERT_TRUE(failed);
  EXPECT_TRUE(contains(r.stats().last_error, "trailer is over 16384 bytes"))
      << r.stats().last_error;
  EXPECT_FALSE(r.stats().registered);
}

// ----- watch lines (item 6) ------------------------------------------------------

TEST(EtcdHostile, WatchLineThatNeverEndsFailsTheMemberAtItsBound) {
  // One line of 64 MiB and a bit, never ended; the connection stays open.
  const std::size_t line = qorb::detail::etcd::max_reply + 16 * 1024;
  fake_gateway member([&](const fake_request& r) {
    if (r.path == "/v3/kv/range")
      return json_reply(range_json("3", {kv(prefix + "a", "127.0.0.1:7001")}));
    return fake_reply{chunked_header() + chunk(created_line) +
                          chunk(R"({"result":{"events":[)" + std::string(line, ' ')),
                      true};
  });
  etcd_harness h(etcd_config({member.endpoint()}, prefix));
  h.start();
  ASSERT_TRUE(h.wait_for({"a@127.0.0.1:7001"}));
  ASSERT_TRUE(wait_until([&] { return h.stats().failures >= 1; }, 30s));
  const auto s = h.stats();
  EXPECT_TRUE(contains(s.last_error, "a watch message is over 64 MiB")) << s.last_error;
  EXPECT_EQ(h.names(), names({"a@127.0.0.1:7001"}));  // the last known set stays
  EXPECT_TRUE(h.stop());
}

TEST(EtcdCodecHostile, LineSplitterBoundsALineAndSearchesEachByteOnce) {
  qorb::detail::etcd::line_splitter lines;
  std::string pending = "{\"a\":1}\n\n  \r\n{\"b\"";
  std::string line;
  using status = qorb::detail::etcd::line_splitter::status;
  ASSERT_EQ(lines.next(pending, line, 64), status::line);
  EXPECT_EQ(line, "{\"a\":1}");
  EXPECT_EQ(lines.next(pending, line, 64), status::more);  // blank lines skipped
  EXPECT_EQ(pending, "{\"b\"");
  pending += ":2}\n";
  ASSERT_EQ(lines.next(pending, line, 64), status::line);
  EXPECT_EQ(line, "{\"b\":2}");
  EXPECT_TRUE(pending.empty());
  // A line that reaches the bound without its end, whether more is coming
  // or its end is already there.
  pending = std::string(63, 'x');
  EXPECT_EQ(lines.next(pending, line, 64), status::more);
  pending += "x";
  EXPECT_EQ(lines.next(pending, line, 64), status::too_long);
  qorb::detail::etcd::line_splitter other;
  pending = std::string(64, 'y') + "\n";
  EXPECT_EQ(other.next(pending, line, 64), status::too_long);
}

// ----- hostile numbers (item 7) --------------------------------------------------

TEST(EtcdHostile, RevisionOfInt64MaxSaturatesTheNextWatch) {
  fake_gateway member([](const fake_request& r) {
    if (r.path == "/v3/kv/range") {
      return json_reply(range_json("9223372036854775807", {kv(prefix + "a", "127.0.0.1:7001")}));
    }
    return fake_reply{chunked_header() + chunk(created_line), true};
  });
  etcd_harness h(etcd_config({member.endpoint()}, prefix));
  h.start();
  ASSERT_TRUE(wait_until([&] { return member.count("/v3/watch") >= 1; }));
  const auto requests = member.requests();
  std::string watch;
  for (const auto& r : requests) {
    if (r.path == "/v3/watch") watch = r.body;
  }
  EXPECT_TRUE(contains(watch, R"("start_revision":"9223372036854775807")")) << watch;
  EXPECT_FALSE(contains(watch, "-")) << watch;
  EXPECT_EQ(h.stats().revision, INT64_MAX);
  EXPECT_TRUE(h.stop());
}

TEST(EtcdHostile, NegativeRevisionsAreRefusedByName) {
  fake_gateway member([](const fake_request&) {
    return json_reply(range_json("-5", {kv(prefix + "a", "127.0.0.1:7001")}));
  });
  etcd_harness h(etcd_config({member.endpoint()}, prefix));
  h.start();
  ASSERT_TRUE(wait_until([&] { return h.stats().failures >= 2; }));
  const auto s = h.stats();
  EXPECT_TRUE(contains(s.last_error, "header.revision is not a revision")) << s.last_error;
  EXPECT_EQ(h.publications(), 0U);
  EXPECT_TRUE(h.stop());
}

TEST(EtcdHostile, GrantedTtlOfInt64MaxIsActedOnAsOneDay) {
  fake_gateway member([](const fake_request& r) {
    if (r.path == "/v3/lease/grant" || r.path == "/v3/lease/keepalive") {
      return json_reply(R"({"header":{},"ID":"7","TTL":"9223372036854775807"})");
    }
    return json_reply(R"({"header":{"revision":"3"}})");
  });
  qorb::etcd_registration_config c;
  c.endpoints = {member.endpoint()};
  c.key = prefix + "a";
  c.value = "127.0.0.1:7001";
  c.logger = nullptr;
  qorb::asio::io_context io;
  qorb::etcd_registration r(c);
  r.start(io.get_executor());
  std::thread t([&] { io.run_for(20s); });
  const bool registered = wait_until([&] { return r.stats().registered; });
  // The next keep-alive is due in 8 hours; before the bound it came every
  // 100 ms (INT64_MAX * 1000 overflowed). Half a second shows which.
  const bool kept_alive =
      wait_until([&] { return member.count("/v3/lease/keepalive") > 0; }, 500ms);
  const auto s = r.stats();
  std::atomic<bool> done{false};
  r.stop([&](bool) { done = true; });
  EXPECT_TRUE(wait_until([&] { return done.load(); }));
  io.stop();
  t.join();
  ASSERT_TRUE(registered);
  EXPECT_FALSE(kept_alive) << member.count("/v3/lease/keepalive") << " keep-alives";
  EXPECT_EQ(s.granted_ttl, 24 * 60 * 60);
}

// ----- keys outside the prefix (item 11) -----------------------------------------

TEST(EtcdHostile, KeysOutsideThePrefixAreSkippedAndCounted) {
  fake_gateway member([](const fake_request& r) {
    if (r.path == "/v3/kv/range") {
      return json_reply(
          range_json("3", {kv(prefix + "a", "127.0.0.1:7001"), kv("/other/x", "127.0.0.1:7000"),
                           kv(prefix, "127.0.0.1:7002")}));
    }
    const std::string events = R"({"result":{"header":{"revision":"4"},"events":[{"kv":)" +
                               kv("/x", "127.0.0.1:7003", 4) + R"(},{"kv":)" +
                               kv(prefix + "b", "127.0.0.1:7004", 4) + "}]}}\n";
    return fake_reply{chunked_header() + chunk(created_line) + chunk(events), true};
  });
  captured_log log;
  auto config = etcd_config({member.endpoint()}, prefix);
  config.logger = log.logger;
  etcd_harness h(config);
  h.start();
  ASSERT_TRUE(h.wait_for({"a@127.0.0.1:7001", "b@127.0.0.1:7004"}));
  for (const auto& set : h.sets()) {
    for (const auto& [name, b] : set) EXPECT_NE(name.front(), '@') << name;
  }
  EXPECT_EQ(h.stats().outside_prefix, 3U);
  EXPECT_EQ(log.count("not under the prefix"), 3U);
  EXPECT_EQ(log.count("[warning] etcd resolver /services/echo/: skipping key"), 1U);
  EXPECT_TRUE(h.stop());
}

// ----- retry storms (item 5) -----------------------------------------------------

TEST(EtcdHostile, WatchesCreatedThenEndedAreRetriedWithBackoff) {
  auto handler = [](const fake_request& r) {
    if (r.path == "/v3/kv/range") {
      return json_reply(range_json("3", {kv(prefix + "a", "127.0.0.1:7001")}));
    }
    return fake_reply{chunked_header() + chunk(created_line) + "0\r\n\r\n", false};
  };
  fake_gateway one(handler);
  fake_gateway two(handler);
  captured_log log;
  auto config = etcd_config({one.endpoint(), two.endpoint()}, prefix);
  config.retry_min = 50ms;
  config.retry_max = 400ms;
  config.logger = log.logger;
  etcd_harness h(config);
  h.start();
  ASSERT_TRUE(h.wait_for({"a@127.0.0.1:7001"}));
  // Over 1.5 s with delays of 50, 100, 200, 400, 400 ms after each sweep of
  // two members: about 12 watches. Without backoff: thousands.
  const bool storm =
      wait_until([&] { return one.count("/v3/watch") + two.count("/v3/watch") > 30; }, 1500ms);
  const auto watches = one.count("/v3/watch") + two.count("/v3/watch");
  std::printf("%zu watches in 1.5 s\n", watches);
  EXPECT_FALSE(storm) << watches << " watches in 1.5 s";
  EXPECT_GE(watches, 4U);
  EXPECT_LE(log.count("[warning]"), 2U);            // one per 10 s, the rest at debug
  EXPECT_GE(log.count(": member 127.0.0.1:"), 4U);  // every failure, at some level
  EXPECT_TRUE(h.stop());
}

TEST(EtcdHostile, WatchesCancelledAsCompactedRightAfterAReadAreRetriedWithBackoff) {
  fake_gateway member([](const fake_request& r) {
    if (r.path == "/v3/kv/range") {
      return json_reply(range_json("3", {kv(prefix + "a", "127.0.0.1:7001")}));
    }
    return fake_reply{
        chunked_header() + chunk(created_line) +
            chunk(R"({"result":{"header":{"revision":"9"},"canceled":true,"compact_revision":"8"}})"
                  "\n") +
            "0\r\n\r\n",
        false};
  });
  captured_log log;
  auto config = etcd_config({member.endpoint()}, prefix);
  config.retry_min = 50ms;
  config.retry_max = 400ms;
  config.logger = log.logger;
  etcd_harness h(config);
  h.start();
  ASSERT_TRUE(h.wait_for({"a@127.0.0.1:7001"}));
  const bool storm = wait_until([&] { return member.count("/v3/kv/range") > 20; }, 1500ms);
  std::printf("%zu reads in 1.5 s\n", member.count("/v3/kv/range"));
  EXPECT_FALSE(storm) << member.count("/v3/kv/range") << " reads in 1.5 s";
  EXPECT_GE(member.count("/v3/kv/range"), 3U);
  EXPECT_LE(log.count("[warning]"), 2U);
  EXPECT_TRUE(h.stop());
}

// ----- changes, not whole sets (item 10) -----------------------------------------

TEST(EtcdHostile, EventsArePublishedAsChangesAfterTheFirstWholeSet) {
  fake_gateway member([](const fake_request& r) {
    if (r.path == "/v3/kv/range") {
      return json_reply(
          range_json("3", {kv(prefix + "a", "127.0.0.1:7001"), kv(prefix + "b", "127.0.0.1:7002"),
                           kv(prefix + "c", "127.0.0.1:7003")}));
    }
    const std::string events = R"({"result":{"header":{"revision":"6"},"events":[{"kv":)" +
                               kv(prefix + "d", "127.0.0.1:7004", 4) +
                               R"(},{"type":"DELETE","kv":)" + kv(prefix + "a", "", 5) +
                               R"(},{"kv":)" + kv(prefix + "b", "127.0.0.1:7102", 6) +
                               R"(},{"kv":)" + kv(prefix + "c", "127.0.0.1:7003", 6) + "}]}}\n";
    return fake_reply{chunked_header() + chunk(created_line) + chunk(events), true};
  });
  qorb::asio::io_context io;
  auto work = qorb::asio::make_work_guard(io);
  auto config = etcd_config({member.endpoint()}, prefix);
  config.logger = nullptr;
  qorb::etcd_resolver resolver(config);
  std::mutex mutex;
  std::vector<std::size_t> sets;
  std::vector<qorb::backend_changes> changes;
  resolver.start_incremental(
      io.get_executor(),
      [&](const qorb::backend_map& m) {
        std::lock_guard lock(mutex);
        sets.push_back(m.size());
      },
      [&](const qorb::backend_changes& c) {
        std::lock_guard lock(mutex);
        changes.push_back(c);
      });
  std::thread t([&] { io.run_for(20s); });
  const bool changed = wait_until([&] {
    std::lock_guard lock(mutex);
    return !changes.empty();
  });
  resolver.stop();
  work.reset();
  io.stop();
  t.join();
  ASSERT_TRUE(changed);
  ASSERT_EQ(sets, std::vector<std::size_t>{3});
  ASSERT_EQ(changes.size(), 1U);
  std::set<std::string> added;
  for (const auto& [name, b] : changes[0].added) added.insert(name);
  EXPECT_EQ(added, names({"d@127.0.0.1:7004", "b@127.0.0.1:7102"}));
  EXPECT_EQ(names(changes[0].removed.begin(), changes[0].removed.end()),
            names({"a@127.0.0.1:7001", "b@127.0.0.1:7002"}));
}

struct instant_conn {};
struct instant_connector {
  using connection_type = instant_conn;
  qorb::asio::awaitable<instant_conn> connect(const qorb::backend&) { co_return instant_conn{}; }
};

// The pool starts the etcd resolver with start_incremental: a moved key and
// a deleted one reach it as a change, and its backends follow.
TEST(EtcdHostile, APoolFollowsTheResolversChanges) {
  fake_gateway member([](const fake_request& r) {
    if (r.path == "/v3/kv/range") {
      return json_reply(range_json(
          "3", {kv(prefix + "a", "127.0.0.1:7001"), kv(prefix + "b", "127.0.0.1:7002")}));
    }
    return fake_reply{chunked_header() + chunk(created_line), true};
  });
  auto config = etcd_config({member.endpoint()}, prefix);
  config.logger = nullptr;
  // The io_context outlives the resolver: its state holds the context's timers.
  qorb::asio::io_context io;
  auto resolver = std::make_shared<qorb::etcd_resolver>(config);
  auto work = qorb::asio::make_work_guard(io);
  std::thread t([&] { io.run_for(30s); });
  {
    qorb::pool<instant_conn> pool(io.get_executor(), "etcd-changes", resolver, instant_connector{},
                                  qorb::policy{}, nullptr);
    const auto live = [&] {
      names out;
      for (const auto& [name, b] : pool.stats().backends) {
        if (!b.removed) out.insert(name);
      }
      return out;
    };
    ASSERT_TRUE(wait_until([&] {
      return live() == names({"a@127.0.0.1:7001", "b@127.0.0.1:7002"});
    }));
    ASSERT_TRUE(wait_until([&] { return resolver->stats().watching; }));
    member.push(chunk(R"({"result":{"header":{"revision":"5"},"events":[{"kv":)" +
                      kv(prefix + "b", "127.0.0.1:7102", 4) + R"(},{"type":"DELETE","kv":)" +
                      kv(prefix + "a", "", 5) + "}]}}\n"));
    EXPECT_TRUE(wait_until([&] { return live() == names({"b@127.0.0.1:7102"}); })) << live().size();
    qorb::error_code ec;
    auto h = pool.claim(5s, ec);
    EXPECT_FALSE(ec) << ec.message();
  }
  work.reset();
  io.stop();
  t.join();
}

}  // namespace
