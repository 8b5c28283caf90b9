// The USDT probes: present in the binary, and traceable on a live pool.
#include <qorb/pool.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "support/fake_connector.hpp"
#include "support/io_threads.hpp"
#include "support/wait.hpp"

extern "C" unsigned short qorb_handle_claimed_semaphore;
extern "C" unsigned short qorb_handle_returned_semaphore;

namespace qorb::test {
namespace {

using namespace std::chrono_literals;

const char* const all_probes[] = {
    "claim_start",           "claim_done",        "claim_failed",         "claim_acquire_failed",
    "connect_start",         "connect_done",      "connect_failed",       "pool_claim_start",
    "pool_claim_done",       "pool_claim_failed", "slot_set_claim_start", "slot_set_claim_done",
    "slot_set_claim_failed", "slot_set_online",   "slot_set_offline",     "slot_state_change",
    "handle_claimed",        "handle_returned",   "health_check_start",   "health_check_done",
    "health_check_failed",   "recycle_start",     "recycle_done",         "recycle_failed",
    "rebalance_start",       "rebalance_done"};

std::string self_path() {
  char buf[4096];
  const auto n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, std::size_t(n)) : std::string();
}

TEST(probes, every_probe_is_in_the_stapsdt_notes_with_a_semaphore) {
  std::string notes;
  ASSERT_EQ(run_command({"readelf", "-n", self_path()}, &notes), 0) << notes;
  for (const char* probe : all_probes) {
    const std::regex entry(std::string("Provider: qorb\\s+Name: ") + probe +
                           "\\s+Location: 0x[0-9a-f]+, Base: 0x[0-9a-f]+, Semaphore: 0x0*[1-9a-f]");
    EXPECT_TRUE(std::regex_search(notes, entry)) << "probe qorb:" << probe;
  }
}

TEST(probes, bpftrace_counts_the_claims_a_live_pool_makes) {
  if (::geteuid() != 0) GTEST_SKIP() << "attaching bpftrace needs root";
  std::string version;
  if (run_command({"bpftrace", "--version"}, &version) != 0) {
    GTEST_SKIP() << "bpftrace is not installed: " << version;
  }
  io_threads io(2);
  fake_connector c;
  policy p;
  p.max_slots = 4;
  auto resolver = std::make_shared<fixed_resolver>(
      std::vector{asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 9)});
  pool<fake_conn> pool_(io.executor(), "traced", resolver, c, p, nullptr);

  temp_dir dir("qorb-bpf");
  const std::string out = dir.path() + "/out";
  const std::string exe = self_path();
  const std::string pid = std::to_string(::getpid());
  const std::string script = "usdt:" + exe +
                             ":qorb:handle_claimed { @claimed = count(); } usdt:" + exe +
                             ":qorb:handle_returned { @returned = count(); }";
  child_process tracer(
      {"sh", "-c", "exec bpftrace -p " + pid + " -e '" + script + "' > " + out + " 2>&1"});
  // Attached means the tracer raised the probes' semaphores.
  if (!wait_until(
          [] { return qorb_handle_claimed_semaphore != 0 && qorb_handle_returned_semaphore != 0; },
          20s)) {
    tracer.stop(SIGINT);
    std::ifstream f(out);
    std::stringstream why;
    why << f.rdbuf();
    GTEST_SKIP() << "bpftrace could not attach here: " << why.str();
  }
  constexpr int claims = 100;
  for (int i = 0; i < claims; ++i) pool_.claim().reset();
  tracer.stop(SIGINT, 10s);  // bpftrace prints its maps as it exits
  std::ifstream f(out);
  std::stringstream text;
  text << f.rdbuf();
  EXPECT_NE(text.str().find("@claimed: " + std::to_string(claims)), std::string::npos)
      << text.str();
  EXPECT_NE(text.str().find("@returned: " + std::to_string(claims)), std::string::npos)
      << text.str();
  EXPECT_TRUE(wait_until([] { return qorb_handle_claimed_semaphore == 0; }))
      << "detaching lowers the semaphore again";
}

}  // namespace
}  // namespace qorb::test
