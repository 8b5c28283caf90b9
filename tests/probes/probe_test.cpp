// SPDX-License-Identifier: BSL-1.0
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
#include "support/require_tool.hpp"
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
    "rebalance_start",       "rebalance_done",    "pool_status_change",   "connection_lost",
    "connection_discarded",  "failure_reported",  "hold_warning"};

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
    QORB_MISSING_TOOL("bpftrace") << ": " << version;
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
  // A second pool only proves the tracer is attached: it prints "claimed"
  // and "returned" on that pool's first events. The claims of the traced
  // pool made after both are then all seen, and counted apart.
  pool<fake_conn> warmup(io.executor(), "warmup", resolver, c, p, nullptr);
  const std::string usdt = "usdt:" + exe + ":qorb:";
  const std::string script =
      usdt +
      "handle_claimed /str(arg0) == \"traced\"/ { @claimed = count(); @to[str(arg3)] = count(); "
      "} " +
      usdt + "handle_returned /str(arg0) == \"traced\"/ { @returned = count(); } " + usdt +
      "handle_claimed /str(arg0) == \"warmup\" && @c == 0/ { @c = 1; printf(\"claimed\\n\"); } " +
      usdt +
      "handle_returned /str(arg0) == \"warmup\" && @r == 0/ { @r = 1; printf(\"returned\\n\"); "
      "}";
  child_process tracer(
      {"sh", "-c", "exec bpftrace -p " + pid + " -e '" + script + "' > " + out + " 2>&1"});
  auto output = [&] {
    std::ifstream f(out);
    std::stringstream text;
    text << f.rdbuf();
    return text.str();
  };
  const bool attached = wait_until(
      [&] {
        if (qorb_handle_claimed_semaphore == 0 || qorb_handle_returned_semaphore == 0) return false;
        warmup.claim().reset();
        const auto text = output();
        return text.find("claimed\n") != std::string::npos &&
               text.find("returned\n") != std::string::npos;
      },
      20s);
  if (!attached) {
    tracer.stop(SIGINT);
    // Probe arguments bpftrace cannot read are our fault, not the machine's.
    ASSERT_EQ(output().find("couldn't get argument"), std::string::npos) << output();
    GTEST_SKIP() << "bpftrace could not attach here: " << output();
  }
  constexpr int claims = 100;
  for (int i = 0; i < claims; ++i) pool_.claim().reset();
  tracer.stop(SIGINT, 10s);  // bpftrace prints its maps as it exits
  const auto text = output();
  EXPECT_NE(text.find("@claimed: " + std::to_string(claims) + "\n"), std::string::npos) << text;
  EXPECT_NE(text.find("@returned: " + std::to_string(claims) + "\n"), std::string::npos) << text;
  // Every argument is readable: the backend's address is the fourth one.
  EXPECT_NE(text.find("@to[127.0.0.1:9]: " + std::to_string(claims) + "\n"), std::string::npos)
      << text;
  EXPECT_TRUE(wait_until([] { return qorb_handle_claimed_semaphore == 0; }))
      << "detaching lowers the semaphore again";
}

}  // namespace
}  // namespace qorb::test
