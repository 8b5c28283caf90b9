// SPDX-License-Identifier: BSL-1.0
// The demo's summary (see summary.hpp).
#include "summary.hpp"

#include <fmt/format.h>

#include <cstddef>
#include <string_view>
#include <utility>

#include "say.hpp"

namespace qorb::demo {
namespace {

// The backend the workload knows under `host`, if it saw it.
const examples::backend_record* find_backend(const examples::workload_snapshot& s,
                                             const echo_process& e, std::string* name) {
  if (e.port == 0) return nullptr;  // not started
  const auto address = "127.0.0.1:" + std::to_string(e.port);
  const auto suffix = "@" + address;
  for (const auto& [n, b] : s.backends) {
    // DNS names it after its host (echo001.test.com@...), etcd after its key.
    if ((n.starts_with(e.host + ".") || n.starts_with(address + "@")) && n.ends_with(suffix)) {
      *name = n;
      return &b;
    }
  }
  return nullptr;
}

// The kill's figures of issue 20: how long the pool took to say the dead
// backend was offline (its "offline" log line), and the claims that met a
// dead connection (see dead_grace), with the failures not counted.
void dead_connection_figures(const examples::backend_record& dead, const std::string& name,
                             steady_clock::time_point kill, const story& st,
                             std::vector<std::string>& headlines) {
  const auto line = [&](std::string text) {
    say("{}", text);
    headlines.push_back(std::move(text));
  };
  const auto offline =
      st.pool_said ? st.pool_said->offline_between(name, kill, steady_clock::time_point::max())
                   : std::nullopt;
  if (offline) {
    line(fmt::format("{:<48} {:>6.1f} ms", "kill -> the pool said the dead backend is offline:",
                     std::chrono::duration<double, std::milli>(*offline - kill).count()));
    say("      when it logged \"offline\"; the goal with idle connections watched: < 5 ms");
  } else {
    line(
        fmt::format("{:<48} {:>9}", "kill -> the pool said the dead backend is offline:", "never"));
  }
  std::size_t counted = 0, in_grace = 0, claimed_at_kill = 0;
  for (const auto handed : dead.failed_handed) {
    if (handed < kill) {
      ++claimed_at_kill;
    } else if (handed - kill <= dead_grace) {
      ++in_grace;
    } else {
      ++counted;
    }
  }
  line(fmt::format("{:<48} {:>6}    (1 kill)", "dead-connection claims per kill:", counted));
  say("      handed a connection more than {} ms after the kill, dead on first use (write or "
      "echo)",
      dead_grace.count());
  say("      not counted: {} claimed at the kill (died while claimed), {} within {} ms of it",
      claimed_at_kill, in_grace, dead_grace.count());
}

}  // namespace

std::vector<std::string> summarize(const examples::workload_snapshot& s,
                                   const std::vector<echo_process>& echo, const story& st,
                                   std::vector<std::string>& headlines) {
  // A figure's line, and its details one per line under it: every line fits
  // 100 columns.
  const auto figure = [&](std::string_view label, long millis_value, const std::string& details) {
    std::string line = fmt::format("{:<48} {:>6} ms", label, millis_value);
    say("{}", line);
    headlines.push_back(std::move(line));
    std::string_view rest = details;
    while (!rest.empty()) {
      const auto end = rest.find("; ");
      say("      {}", rest.substr(0, end));
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 2);
    }
  };
  const auto t = [&](steady_clock::time_point at) {
    return fmt::format("{:.2f}", seconds(st.start, at));
  };
  say("");
  say("=== Summary: {:.1f} s, {} backends seen, {} claims served, {} failed on a broken "
      "connection,",
      seconds(st.start, s.taken), s.backends.size(), s.ok, s.server_failures);
  say("    {} claims failed", s.claim_failures);
  // Times are seconds since the start; CLAIMS is the first and last claim.
  say("{:<34} {:>6} {:>6} {:>6} {:>7} {:>12}  {}", "BACKEND", "SERVED", "FAILED", "ADDED",
      "REMOVED", "CLAIMS", "WHAT (t in s)");
  std::vector<std::string> problems;
  if (s.ok == 0) problems.push_back("no claim was served");
  for (std::size_t i = 0; i < echo.size(); ++i) {
    std::string name;
    const auto* b = find_backend(s, echo[i], &name);
    if (b == nullptr) {
      say("{:<34} {:>6} {:>6} {:>6} {:>7} {:>12}  {}",
          echo[i].host + " (127.0.0.1:" + std::to_string(echo[i].port) + ")", 0, 0, "-", "-", "-",
          i == 3 ? "never seen by the pool" : "never seen by the pool (!)");
      if (i == 3 && st.dns_changed)
        problems.push_back(st.etcd ? "the pool never found the backend that registered"
                                   : "the pool never found the backend added to DNS");
      if (i < 3) problems.push_back(echo[i].host + " was never seen by the pool");
      continue;
    }
    const std::string added = b->listed_at ? t(*b->listed_at) : "-";
    std::optional<steady_clock::time_point> removed;
    if (!b->listed)
      removed = b->unlisted_at;
    else if (!b->pool.online)
      removed = b->offline_at;
    std::string what;
    if (i == 1) {
      what = st.killed ? "killed t=" + t(*st.killed) : "to be killed (not reached)";
    } else if (i == 3) {
      const std::string how = st.etcd ? "registered" : "added to DNS";
      what = st.dns_changed ? how + " t=" + t(*st.dns_changed) : "to be " + how + " (not reached)";
    } else if (i == 2 && st.etcd) {
      what = st.stopped_clean ? "stopped t=" + t(*st.stopped_clean) : "to be stopped (not reached)";
    } else {
      what = "in service throughout";
    }
    std::string claims = "-";
    if (b->first_ok) {
      claims = t(*b->first_ok);
      claims += '-';
      claims += b->last_claim ? t(*b->last_claim) : std::string("?");
    }
    // The story needs the servers in DNS from the start to serve: the one
    // to be killed before its kill (else routing around it proves nothing).
    if (i < 3 && !b->first_ok) {
      problems.push_back(echo[i].host + " never served a claim");
    } else if (i == 1 && st.killed && *b->first_ok >= *st.killed) {
      problems.push_back("echo002 served no claim before it was killed");
    }
    say("{:<34.34} {:>6} {:>6} {:>6} {:>7} {:>12}  {}", name, b->ok, b->server_failures, added,
        removed ? t(*removed) : "-", claims, what);
  }
  say("");

  // Figure 1: from the kill until no claim went to the dead backend.
  if (st.killed) {
    std::string name;
    const auto* dead = find_backend(s, echo[1], &name);
    const auto kill = *st.killed;
    const bool after = dead != nullptr && dead->last_claim && *dead->last_claim > kill;
    const auto last = after ? millis(kill, *dead->last_claim) : 0;
    std::string detail = after ? fmt::format("its last claim at t={}", t(*dead->last_claim))
                               : "no claim went to it after the kill";
    figure("kill -> no more claims to the dead backend:", last, detail);
    if (dead != nullptr) dead_connection_figures(*dead, name, kill, st, headlines);
    const auto deadline = st.dns_changed ? *st.dns_changed : s.taken;
    if (after && *dead->last_claim >= deadline) {
      problems.push_back(
          "the dead backend kept getting claims (the last at t=" + t(*dead->last_claim) + ")");
    }
    if (st.etcd && dead != nullptr) {
      if (!dead->listed && dead->unlisted_at) {
        say("kill -> the dead backend left the set:        {:>6} ms   (its lease expired; TTL {} "
            "s)",
            millis(kill, *dead->unlisted_at), etcd_ttl_s);
      } else {
        say("kill -> the dead backend left the set:         never");
        problems.push_back("the killed backend stayed registered");
      }
    }
  }
  // Figure 2: from the DNS change until the new backend served a claim.
  if (st.dns_changed) {
    std::string name;
    const auto* fresh = find_backend(s, echo[3], &name);
    const char* label = st.etcd ? "registration -> the new backend served a claim:"
                                : "DNS change -> the new backend served a claim:";
    if (fresh != nullptr && fresh->first_ok) {
      std::string detail = "the resolver asks DNS every second; the pool listed it after ";
      if (st.etcd) {
        // Appended: GCC 12 -O3 misjudges "literal" + a temporary string.
        detail = "from the start of its registration (lease grant and put, done after ";
        detail.append(st.registered ? std::to_string(millis(*st.dns_changed, *st.registered))
                                    : std::string("?"));
        detail.append(" ms); etcd's watch pushed it; the pool listed it after ");
      }
      detail += fresh->listed_at
                    ? std::to_string(millis(*st.dns_changed, *fresh->listed_at)) + " ms"
                    : std::string("?");
      figure(label, millis(*st.dns_changed, *fresh->first_ok), detail);
    } else {
      say("{}  never", label);
      if (fresh != nullptr) problems.push_back("the new backend never served a claim");
    }
  }
  // etcd, figure 3: from the clean stop until the pool's set lost it.
  if (st.etcd && st.stopped_clean) {
    std::string name;
    const auto* gone = find_backend(s, echo[2], &name);
    if (gone != nullptr && !gone->listed && gone->unlisted_at) {
      say("clean stop -> the backend left the set:       {:>6} ms   (its lease revoked at once)",
          millis(*st.stopped_clean, *gone->unlisted_at));
    } else {
      say("clean stop -> the backend left the set:        never");
      problems.push_back("the cleanly stopped backend stayed registered");
    }
  }
  return problems;
}

}  // namespace qorb::demo
