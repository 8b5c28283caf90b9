// SPDX-License-Identifier: BSL-1.0
// The pieces of explained errors, without a pool: Boost's "[category:N]"
// suffix stripped (and nothing else), durations as people read them, and
// a pool_explanation's text from a hand-made pool_stats.
#include <qorb/claim_error.hpp>

#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>

#include <gtest/gtest.h>

#include <sstream>
#include <string>

namespace qorb::test {
namespace {

using namespace std::chrono_literals;

TEST(strip_error_suffix, removes_what_boost_appends_to_a_system_error) {
  const boost::system::system_error refused(boost::asio::error::connection_refused, "connect");
  const std::string what = refused.what();
  ASSERT_NE(what.find(" [system:"), std::string::npos) << "Boost appends it: " << what;
  EXPECT_EQ(strip_error_suffix(what), "connect: Connection refused");
  const boost::system::system_error ours(make_error_code(errc::no_backends_online));
  ASSERT_NE(std::string(ours.what()).find("[std:qorb:2]"), std::string::npos) << ours.what();
  EXPECT_EQ(strip_error_suffix(ours.what()), category().message(2));
  EXPECT_EQ(strip_error_suffix("x [system:111 at /a/b.hpp:12:3 in function 'f']"), "x");
  EXPECT_EQ(strip_error_suffix("x [qorb.tls:-3]"), "x");
}

TEST(strip_error_suffix, keeps_other_brackets) {
  for (const char* kept : {"ok", "a [note]", "a [b:c]", "[system:111]x", "a [system:]", "a [:3]",
                           "a [system:1 2]", "a [b c:1]", ""}) {
    EXPECT_EQ(strip_error_suffix(kept), kept);
  }
}

TEST(format_duration, reads_as_people_write_it) {
  EXPECT_EQ(format_duration(0ms), "0 ms");
  EXPECT_EQ(format_duration(15ms), "15 ms");
  EXPECT_EQ(format_duration(400ms), "0.4 s");
  EXPECT_EQ(format_duration(2s), "2.0 s");
  EXPECT_EQ(format_duration(200s), "3 min 20 s");
  EXPECT_EQ(format_duration(3h + 5min), "3 h 5 min");
  EXPECT_EQ(format_duration(duration::max()), "forever");
  EXPECT_EQ(format_duration(-5ms), "0 ms");
}

pool_stats two_backends(std::chrono::system_clock::time_point at) {
  pool_stats s;
  s.name = "db";
  s.status = pool_status::running;
  s.max_slots = 16;
  s.claims_waiting = 3;
  backend_stats a;
  a.address = {boost::asio::ip::make_address("127.0.0.1"), 5432};
  a.connecting = 1;
  a.retry_in = 600ms;
  a.offline_for = 2s;
  a.last_error = backend_error{"connect", "Connection refused", at - 400ms};
  backend_stats b;
  b.address = {boost::asio::ip::make_address("127.0.0.1"), 5433};
  b.connecting = 1;
  b.offline_for = 2s;
  b.last_error = backend_error{"connect", "Connection reset by peer", at - 3s};
  backend_stats c;  // removed, with the newest error: not the cause
  c.address = {boost::asio::ip::make_address("127.0.0.1"), 5434};
  c.removed = true;
  c.claimed = 1;
  c.last_error = backend_error{"on_recycle", "timed out", at - 10ms};
  s.backends.emplace("db1", a);
  s.backends.emplace("db2", b);
  s.backends.emplace("old", c);
  return s;
}

TEST(pool_explanation, says_each_backends_state_and_the_most_recent_live_error) {
  const auto at = std::chrono::system_clock::now();
  const auto e = explain(two_backends(at), at);
  EXPECT_EQ(e.text(),
            "pool 'db': running; 2 backends known, 0 online; 1 of 16 slots claimed, 0 idle, 2 "
            "connecting; 3 claims waiting\n"
            "  db1 (127.0.0.1:5432): backing off, retry in 0.6 s; offline for 2.0 s; 0 claimed, 0 "
            "idle, 1 connecting; last error: connect: Connection refused, 0.4 s ago\n"
            "  db2 (127.0.0.1:5433): connecting; offline for 2.0 s; 0 claimed, 0 idle, 1 "
            "connecting; last error: connect: Connection reset by peer, 3.0 s ago\n"
            "  old (127.0.0.1:5434): removed; 1 claimed, 0 idle, 0 connecting; last error: "
            "on_recycle: timed out, 10 ms ago\n"
            "last error: db1 connect: Connection refused, 0.4 s ago");
  EXPECT_EQ(to_string(e), e.text());
  std::ostringstream os;
  os << e;
  EXPECT_EQ(os.str(), e.text());
}

TEST(pool_explanation, names_online_offline_and_permanently_failed_backends) {
  backend_stats b;
  b.online = true;
  EXPECT_EQ(pool_explanation::state_of(b), "online");
  b = {};
  b.offline_for = 1s;
  EXPECT_EQ(pool_explanation::state_of(b), "offline; offline for 1.0 s");
  b.failed_permanently = true;
  b.retry_in = 30s;
  EXPECT_EQ(pool_explanation::state_of(b),
            "failed permanently, retry in 30.0 s; offline for 1.0 s");
}

TEST(claim_error, is_one_sentence_with_the_pool_the_wait_the_state_and_the_cause) {
  const auto at = std::chrono::system_clock::now();
  auto stats = two_backends(at);
  for (auto& [name, b] : stats.backends) b.last_error->at = std::chrono::system_clock::now();
  stats.backends.at("db1").last_error->at += 1h;  // the newest, whatever the test's pace
  const claim_error e(make_error_code(errc::no_backends_online), stats, 2s);
  EXPECT_EQ(std::string(e.what()),
            "pool 'db': no backend online after waiting 2.0 s (running; 2 backends known, 0 "
            "online; 1 of 16 slots claimed, 3 claims waiting); last error: db1 connect: "
            "Connection refused, 0 ms ago");
  EXPECT_EQ(e.code(), errc::no_backends_online);
  EXPECT_EQ(e.pool_name(), "db");
  EXPECT_EQ(e.waited(), 2s);
  EXPECT_EQ(e.explanation().stats.claims_waiting, 3u);
  const boost::system::system_error& base = e;
  EXPECT_STREQ(base.what(), e.what()) << "what() is the sentence through the base too";
}

TEST(claim_error, has_a_head_for_every_claim_error) {
  EXPECT_EQ(claim_error_head(make_error_code(errc::no_backends)), "no backends known");
  EXPECT_EQ(claim_error_head(make_error_code(errc::all_claims_used)), "all connections claimed");
  EXPECT_EQ(claim_error_head(make_error_code(errc::terminated)), "pool terminated");
  EXPECT_EQ(claim_error_head(make_error_code(errc::pool_failed)), "pool failed");
  EXPECT_EQ(claim_error_head(make_error_code(errc::acquire_failed)), "on_acquire failed");
  EXPECT_EQ(claim_error_head(boost::asio::error::operation_aborted), "claim cancelled");
  pool_stats s;
  s.name = "p";
  s.max_slots = 1;
  const claim_error deadlock(make_error_code(errc::would_deadlock), s, 0ms);
  EXPECT_EQ(std::string(deadlock.what()),
            "pool 'p': a blocking claim on a thread that runs the pool's executor would deadlock "
            "(starting; 0 backends known, 0 online; 0 of 1 slot claimed, 0 claims waiting)");
}

}  // namespace
}  // namespace qorb::test
