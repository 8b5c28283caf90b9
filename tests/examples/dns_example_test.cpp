// SPDX-License-Identifier: BSL-1.0
// examples/dns (knot.conf and test.com.zone) run the way its comments tell a
// user to, with two changes so a test never touches what a user runs:
// /tmp/qorb-dns becomes a temp dir and port 1234 a free port.
#include "knot_server.hpp"  // dns_answers
#include "support/wait.hpp"

#include <sys/wait.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace qorb::test {
namespace {

const std::string source_dir = QORB_SOURCE_DIR;
const std::string resolve_tool = QORB_RESOLVE_PATH;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Replaces every `from` in `text`; returns how many.
int replace_all(std::string& text, const std::string& from, const std::string& to) {
  int n = 0;
  for (std::size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += to.size(), ++n) {
    text.replace(at, from.size(), to);
  }
  return n;
}

std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// The commands of the walkthrough in knot.conf's comments that start with
// `program`: the lines "#   program ...".
std::vector<std::string> documented_commands(const std::string& config,
                                             const std::string& program) {
  std::vector<std::string> out;
  std::istringstream in(config);
  const std::regex command("#   (" + program + " .*)");
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_match(line, m, command)) out.push_back(m[1]);
  }
  return out;
}

// knotd and knotc are in /usr/sbin, which a non-root PATH may lack.
std::string sbin(const std::string& program) {
  const auto path = "/usr/sbin/" + program;
  return std::filesystem::exists(path) ? path : program;
}

// The (address, port) of each backend qorb-resolve --json prints, checking
// each name is "<target>@[<address>]:<port>" and each TTL at most 5 s.
std::multiset<std::pair<std::string, int>> resolve(unsigned short dns_port) {
  std::string out;
  const int rc = run_command({resolve_tool, "--server", "127.0.0.1:" + std::to_string(dns_port),
                              "--json", "_echo._tcp.test.com."},
                             &out, 30s);
  EXPECT_EQ(rc, 0) << out;
  const std::string object =
      R"re(\{"name":"(echo00\d)\.test\.com@\[([^\]"]*)\]:(\d+)","address":"([^"]*)",)re"
      R"re("port":(\d+),"ttl_remaining_s":(\d+)\})re";
  EXPECT_TRUE(std::regex_match(out, std::regex("\\[(" + object + "(," + object + ")*)?\\]\n")))
      << out;
  std::multiset<std::pair<std::string, int>> backends;
  const std::regex one(object);
  for (auto it = std::sregex_iterator(out.begin(), out.end(), one); it != std::sregex_iterator();
       ++it) {
    const auto& m = *it;
    EXPECT_EQ(m[2], m[4]) << out;
    EXPECT_EQ(m[3], m[5]) << out;
    EXPECT_EQ(m[1].str().back(), m[5].str().back()) << "echo00N serves port 600N: " << out;
    EXPECT_LE(std::stoi(m[6]), 5) << out;
    backends.emplace(m[4], std::stoi(m[5]));
  }
  return backends;
}

TEST(DnsExample, KnotServesTheThreeEchoServersAndTheDocumentedLiveEditAddsAFourth) {
  temp_dir dir("qorb-dns-example");
  const auto& d = dir.path();

  std::string config = read_file(source_dir + "/examples/dns/knot.conf");
  ASSERT_GE(replace_all(config, "/tmp/qorb-dns", d), 5) << config;
  const auto config_path = d + "/knot.conf";

  // The walkthrough's first two commands, run from the top of the tree.
  const auto setup = documented_commands(config, "mkdir");
  ASSERT_EQ(setup.size(), 1u) << config;
  std::string out;
  ASSERT_EQ(run_command({"sh", "-c", "cd '" + source_dir + "' && " + setup[0]}, &out, 10s), 0)
      << setup[0] << ": " << out;
  ASSERT_TRUE(std::filesystem::is_directory(d + "/db"));
  ASSERT_TRUE(std::filesystem::exists(d + "/test.com.zone"));
  ASSERT_EQ(documented_commands(config, "knotd"),
            std::vector<std::string>{"knotd -c examples/dns/knot.conf"});

  // knotd as a direct child on a free port; another process may take the
  // port first, then knotd exits and the next attempt picks another.
  child_process knotd;
  unsigned short port = 0;
  for (int attempt = 0; attempt < 5 && port == 0; ++attempt) {
    const unsigned short candidate = free_port(true);
    std::string on_port = config;
    std::string at_port = "@";  // appended: GCC 12 -O3 misreads "@" + ... (-Wrestrict)
    at_port += std::to_string(candidate);
    ASSERT_EQ(replace_all(on_port, "@1234", at_port), 2) << config;
    std::ofstream(config_path) << on_port;
    knotd = child_process({sbin("knotd"), "-c", config_path});
    if (wait_until([&] { return !knotd.running() || dns_answers(candidate, "test.com", 50ms); },
                   10s) &&
        knotd.running()) {
      port = candidate;
    } else {
      knotd.stop();
    }
  }
  ASSERT_NE(port, 0) << "knotd did not start with examples/dns/knot.conf";

  using backends = std::multiset<std::pair<std::string, int>>;
  EXPECT_EQ(resolve(port), (backends{{"::1", 6001}, {"::1", 6002}, {"::1", 6003}}));

  // The live edit exactly as documented: one knotc transaction.
  const auto edit = documented_commands(config, "knotc");
  ASSERT_EQ(edit.size(), 4u) << config;
  for (const auto& command : edit) {
    auto argv = words(command);
    argv[0] = sbin("knotc");
    ASSERT_EQ(run_command(argv, &out, 10s), 0) << command << ": " << out;
  }
  EXPECT_EQ(resolve(port), (backends{{"::1", 6001}, {"::1", 6002}, {"::1", 6003}, {"::1", 6004}}));

  const int status = knotd.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "knotd wait status " << status;
}

}  // namespace
}  // namespace qorb::test
