// SPDX-License-Identifier: BSL-1.0
// Registration against a real etcd: the key lives while the lease is kept
// alive, goes at once on stop, comes back after a lost lease, survives the
// loss of a member; tcp_echo_server --register killed or stopped.
#include "etcd_harness.hpp"

#include <qorb/resolvers/etcd_registration.hpp>

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <sstream>

namespace {

using namespace qorb::test;
using names = std::set<std::string>;
using clock_type = std::chrono::steady_clock;

const std::string prefix = "/services/echo/";

qorb::etcd_registration_config registration_config(etcd_cluster& etcd, std::string name,
                                                   std::chrono::seconds ttl) {
  qorb::etcd_registration_config c;
  c.endpoints = etcd.clients();
  c.key = prefix + name;
  c.value = "127.0.0.1:6001";
  c.ttl = ttl;
  c.retry_min = 20ms;
  c.retry_max = 200ms;
  c.request_timeout = 2s;
  return c;
}

// A registration on its own io_context thread.
class registration_harness {
 public:
  explicit registration_harness(qorb::etcd_registration_config config)
      : registration_(std::move(config)) {}
  ~registration_harness() {
    stop();
    if (thread_.joinable()) thread_.join();
  }
  void start() {
    registration_.start(io_.get_executor());
    thread_ = std::thread([this] { io_.run(); });
  }
  /// Stops and waits until the revoke is done; returns its outcome.
  bool stop() {
    if (stopped_) return revoked_;
    stopped_ = true;
    std::promise<bool> done;
    registration_.stop([&](bool revoked) { done.set_value(revoked); });
    auto f = done.get_future();
    if (f.wait_for(20s) != std::future_status::ready) return false;
    revoked_ = f.get();
    return revoked_;
  }
  qorb::etcd_registration_stats stats() const { return registration_.stats(); }

 private:
  boost::asio::io_context io_;
  qorb::etcd_registration registration_;
  std::thread thread_;
  bool stopped_ = false;
  bool revoked_ = false;
};

// One etcd member, a resolver watching the prefix and a registration of
// key "a" with `ttl`, started.
struct scene {
  explicit scene(std::chrono::seconds ttl)
      : resolver(etcd_config(etcd.clients(), prefix)), r(registration_config(etcd, "a", ttl)) {
    resolver.start();
    r.start();
  }
  /// Waits until the registration says it is up and the resolver lists it.
  bool up() {
    return resolver.wait_for({"a@127.0.0.1:6001"}) &&
           wait_until([&] { return r.stats().registered; });
  }
  etcd_cluster etcd;
  etcd_harness resolver;
  registration_harness r;
};

TEST(EtcdRegistration, KeepAliveHoldsTheKeyPastItsTtl) {
  QORB_REQUIRE_ETCD();
  scene sc(2s);
  auto& [etcd, resolver, r] = sc;
  ASSERT_TRUE(sc.up()) << etcd.logs();
  EXPECT_EQ(r.stats().granted_ttl, 2);
  // Four keep-alives, a third of the TTL apart: longer than the TTL.
  const auto start = clock_type::now();
  ASSERT_TRUE(wait_until([&] { return r.stats().keepalives >= 4; }, 20s));
  EXPECT_GT(clock_type::now() - start, 2s);
  EXPECT_NE(etcd.ctl({"get", prefix + "a"}).find("127.0.0.1:6001"), std::string::npos);
  EXPECT_EQ(resolver.names(), names({"a@127.0.0.1:6001"}));
  EXPECT_EQ(r.stats().registrations, 1U);
  EXPECT_EQ(r.stats().lost_leases, 0U);
  EXPECT_TRUE(resolver.stop());
}

TEST(EtcdRegistration, StopRevokesTheLeaseSoTheKeyGoesAtOnce) {
  QORB_REQUIRE_ETCD();
  // A TTL far longer than the wait below: only the revoke can remove it.
  scene sc(600s);
  auto& [etcd, resolver, r] = sc;
  ASSERT_TRUE(sc.up());
  EXPECT_TRUE(r.stop());
  ASSERT_TRUE(resolver.wait_for({}, 20s));
  EXPECT_EQ(etcd.ctl({"get", "--prefix", prefix}), "");
  EXPECT_FALSE(r.stats().registered);
  EXPECT_TRUE(resolver.stop());
}

TEST(EtcdRegistration, RegistersAgainAfterItsLeaseIsLost) {
  QORB_REQUIRE_ETCD();
  scene sc(3s);
  auto& [etcd, resolver, r] = sc;
  ASSERT_TRUE(sc.up());
  const auto lease = r.stats().lease;
  ASSERT_FALSE(lease.empty());
  // Someone revokes it (etcdctl names leases in hex): the key goes...
  std::ostringstream hex;
  hex << std::hex << std::stoll(lease);
  etcd.ctl({"lease", "revoke", hex.str()});
  // ...and the next keep-alive finds the lease gone and registers again.
  ASSERT_TRUE(wait_until([&] { return r.stats().registrations == 2; }, 20s));
  EXPECT_EQ(r.stats().lost_leases, 1U);
  EXPECT_NE(r.stats().lease, lease);
  ASSERT_TRUE(resolver.wait_for({"a@127.0.0.1:6001"}));
  EXPECT_NE(etcd.ctl({"get", prefix + "a"}).find("127.0.0.1:6001"), std::string::npos);
  EXPECT_TRUE(resolver.stop());
}

TEST(EtcdRegistration, KeepsTheLeaseAliveThroughTheLossOfAMember) {
  QORB_REQUIRE_ETCD();
  etcd_cluster etcd(3);
  registration_harness r(registration_config(etcd, "a", 3s));
  r.start();
  ASSERT_TRUE(wait_until([&] { return r.stats().registered; }, 20s)) << etcd.logs();
  etcd.kill(0);  // the member it talks to first
  const auto before = r.stats().keepalives;
  ASSERT_TRUE(wait_until([&] { return r.stats().keepalives >= before + 4; }, 30s))
      << r.stats().last_error;
  EXPECT_EQ(r.stats().lost_leases, 0U);
  EXPECT_EQ(r.stats().registrations, 1U);
  EXPECT_NE(etcd.ctl({"get", prefix + "a"}).find("127.0.0.1:6001"), std::string::npos);
  EXPECT_TRUE(r.stop());
}

#ifdef TCP_ECHO_SERVER_PATH
std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// tcp_echo_server --register, its output in a file of `dir`.
struct registered_server {
  registered_server(const temp_dir& dir, etcd_cluster& etcd, const std::string& ttl)
      : log(dir.path() + "/server.log"),
        process({"sh", "-c", "exec \"$@\" >\"$0\" 2>&1", log, TCP_ECHO_SERVER_PATH, "--register",
                 etcd.urls() + prefix, "--ttl", ttl, "127.0.0.1:0"}) {}
  std::string output() const { return read_file(log); }
  std::string log;
  child_process process;
};

TEST(EtcdEchoServer, KilledServerDisappearsAtItsLeaseTtl) {
  QORB_REQUIRE_ETCD();
  etcd_cluster etcd;
  temp_dir dir("qorb-etcd-echo");
  etcd_harness resolver(etcd_config(etcd.clients(), prefix));
  resolver.start();
  registered_server server(dir, etcd, "2");
  ASSERT_TRUE(wait_until([&] { return resolver.names().size() == 1; }, 20s)) << server.output();
  // It says so once the put is done, which the resolver may see first.
  EXPECT_TRUE(wait_until([&] {
    return server.output().find("registered " + prefix + "127.0.0.1:") != std::string::npos;
  })) << server.output();
  const auto killed = clock_type::now();
  server.process.stop(SIGKILL);
  ASSERT_TRUE(resolver.wait_for({}, 20s));
  // Gone through the lease's expiry, not a revoke: at least 2/3 of the TTL
  // (the last keep-alive was at most a third of it before the kill).
  EXPECT_GE(clock_type::now() - killed, 1s);
  EXPECT_TRUE(resolver.stop());
}

TEST(EtcdEchoServer, StoppedServerDisappearsAtOnce) {
  QORB_REQUIRE_ETCD();
  etcd_cluster etcd;
  temp_dir dir("qorb-etcd-echo");
  etcd_harness resolver(etcd_config(etcd.clients(), prefix));
  resolver.start();
  registered_server server(dir, etcd, "600");
  ASSERT_TRUE(wait_until([&] { return resolver.names().size() == 1; }, 20s)) << server.output();
  const int status = server.process.stop(SIGTERM, 20s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << server.output();
  EXPECT_NE(server.output().find("unregistered\n"), std::string::npos) << server.output();
  ASSERT_TRUE(resolver.wait_for({}, 10s));  // the TTL is 10 min: revoked
  EXPECT_TRUE(resolver.stop());
}

TEST(EtcdEchoServer, BadRegisterUrlIsRefused) {
  temp_dir dir("qorb-etcd-echo");
  std::string output;
  EXPECT_EQ(run_command({TCP_ECHO_SERVER_PATH, "--register", "etcd:2379/x/", "127.0.0.1:0"},
                        &output, 20s),
            2);
  EXPECT_NE(output.find("--register: 'etcd:2379/x/' is not an http:// URL"), std::string::npos)
      << output;
  EXPECT_EQ(run_command({TCP_ECHO_SERVER_PATH, "--ttl", "0", "127.0.0.1:0"}, &output, 20s), 2);
  EXPECT_NE(output.find("--ttl"), std::string::npos) << output;
}
#endif

}  // namespace
