// SPDX-License-Identifier: BSL-1.0
// Backend names and addresses: what to_string prints and parse_endpoint reads.
#include <qorb/backend.hpp>
#include <qorb/resolvers/fixed.hpp>

#include <gtest/gtest.h>

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace qorb {
namespace {

TEST(backend_names, are_ip_port_with_brackets_for_v6) {
  using asio::ip::make_address;
  EXPECT_EQ(to_string(asio::ip::tcp::endpoint(make_address("127.0.0.1"), 80)), "127.0.0.1:80");
  EXPECT_EQ(to_string(asio::ip::tcp::endpoint(make_address("::1"), 8080)), "[::1]:8080");
}

TEST(backend_names, parse_endpoint_reads_what_to_string_prints) {
  using asio::ip::make_address;
  using asio::ip::tcp;
  for (const auto& e :
       {tcp::endpoint(make_address("127.0.0.1"), 80), tcp::endpoint(make_address("::1"), 8080),
        tcp::endpoint(make_address("10.1.2.3"), 0),
        tcp::endpoint(make_address("fe80::1"), 65535)}) {
    EXPECT_EQ(parse_endpoint(to_string(e)), e) << to_string(e);
  }
  EXPECT_EQ(parse_endpoint("127.0.0.1", 53), tcp::endpoint(make_address("127.0.0.1"), 53));
  EXPECT_EQ(parse_endpoint("[::1]", 53), tcp::endpoint(make_address("::1"), 53));
  EXPECT_EQ(parse_endpoint("::1", 53), tcp::endpoint(make_address("::1"), 53));
  for (const char* bad : {"", "127.0.0.1", "::1", "[::1]", "127.0.0.1:", "[::1]:", "[::1",
                          "::1]:80", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:8x",
                          "localhost:80", "[127.0.0.1:80", "1.2.3:80", "[::1]80"}) {
    EXPECT_FALSE(parse_endpoint(bad)) << bad;
  }
}

TEST(backend_names, endpoint_error_says_why_a_text_is_not_an_address) {
  EXPECT_EQ(endpoint_error("127.0.0.1:80"), "");
  EXPECT_EQ(endpoint_error("[::1]:80"), "");
  EXPECT_EQ(endpoint_error("::1", 53), "");
  EXPECT_EQ(endpoint_error("localhost:7101"),
            "\"localhost:7101\" is a host name; the fixed resolver takes addresses: use "
            "qorb::dns_resolver or resolve it first (qorb::fixed_resolver::from_names)");
  for (const char* name : {"db-1.internal:5432", "localhost", "[localhost]:80", "a_b.svc:1"}) {
    EXPECT_NE(endpoint_error(name).find("is a host name"), std::string::npos) << name;
  }
  EXPECT_NE(endpoint_error("127.0.0.1:65536").find("no valid port"), std::string::npos);
  EXPECT_NE(endpoint_error("localhost:http").find("no valid port"), std::string::npos);
  EXPECT_NE(endpoint_error("127.0.0.1").find("has no port"), std::string::npos);
  EXPECT_NE(endpoint_error("[::1").find("[::1]:PORT"), std::string::npos);
  for (const char* bad : {"1.2.3:80", "1.2.3.4.5:80", "!x:80"}) {
    EXPECT_NE(endpoint_error(bad).find("is not an address"), std::string::npos) << bad;
  }
  EXPECT_NE(endpoint_error("").find("empty"), std::string::npos);
}

TEST(fixed_resolver_from_names, resolves_names_once_and_keeps_addresses) {
  const auto resolver = fixed_resolver::from_names({"localhost:7101", "[::1]:7102", "10.1.2.3:7"});
  const auto set = resolver->backends();
  // /etc/hosts names localhost 127.0.0.1 (and maybe ::1 too).
  EXPECT_TRUE(set.contains("127.0.0.1:7101"));
  EXPECT_TRUE(set.contains("[::1]:7102"));
  EXPECT_TRUE(set.contains("10.1.2.3:7"));
  for (const auto& [name, b] : set) {
    EXPECT_EQ(name, to_string(b.address));
    EXPECT_TRUE(b.address.port() == 7101 || name == "[::1]:7102" || name == "10.1.2.3:7") << name;
  }
}

TEST(fixed_resolver_from_names, names_the_entry_without_a_port) {
  for (const char* bad : {"localhost", "localhost:", "localhost:99999", "localhost:http", ":80"}) {
    try {
      fixed_resolver::from_names({"127.0.0.1:1", bad});
      ADD_FAILURE() << bad << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("\"") + bad + "\""), std::string::npos)
          << e.what();
    }
  }
  EXPECT_THROW(fixed_resolver::from_names({}), std::invalid_argument);
}

// A name that does not resolve: looked up in a child process in a network
// namespace of its own, where the system's DNS server cannot be reached (no
// query leaves this machine), so getaddrinfo fails at once.
TEST(fixed_resolver_from_names, names_the_entry_that_does_not_resolve) {
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(out[0]);
    if (unshare(CLONE_NEWNET) != 0) {
      const char skipped[] = "SKIP";
      static_cast<void>(write(out[1], skipped, sizeof skipped - 1));
      _exit(0);
    }
    std::string what = "accepted";
    try {
      fixed_resolver::from_names({"127.0.0.1:1", "no-such-host.invalid:80"});
    } catch (const std::invalid_argument& e) {
      what = e.what();
    }
    static_cast<void>(write(out[1], what.data(), what.size()));
    _exit(0);
  }
  close(out[1]);
  std::string what;
  char buffer[512];
  for (ssize_t n; (n = read(out[0], buffer, sizeof buffer)) > 0;) {
    what.append(buffer, static_cast<std::size_t>(n));
  }
  close(out[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  if (what == "SKIP") GTEST_SKIP() << "no network namespace can be made here (not root)";
  EXPECT_NE(what.find("\"no-such-host.invalid:80\" does not resolve: "), std::string::npos) << what;
}

}  // namespace
}  // namespace qorb
