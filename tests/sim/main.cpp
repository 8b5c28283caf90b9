// SPDX-License-Identifier: BSL-1.0
// qorb_sim: runs the simulator (simulator.hpp) over seeds.
//
//   qorb_sim --seeds K [--first S] [--events N]   seeds 1..K (or S..S+K-1)
//   qorb_sim --seed S [--events N] [--trace]
//
// Exit status 0 only when every invariant held for every seed. A failure
// prints the seed, the event, the invariant and the command that replays it.
#include "sim/simulator.hpp"

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

namespace {

void usage() {
  std::fprintf(
      stderr,
      "usage: qorb_sim (--seeds K [--first S] | --seed S) [--events N] [--trace]\n"
      "                [--keep-going] [--skip INVARIANT]...\n"
      "  --seeds K     run seeds 1..K (default 100)\n"
      "  --first S     with --seeds: run seeds S..S+K-1\n"
      "  --seed S      run seed S only\n"
      "  --events N    random steps per seed before the drain (default 10000)\n"
      "  --trace       print every step and what the core did\n"
      "  --keep-going  run the remaining seeds after a failure\n"
      "  --skip NAME   count violations of invariant NAME instead of failing (repeatable;\n"
      "                the run still fails if any were seen)\n");
}

bool number(const char* text, std::uint64_t& out) {
  char* end = nullptr;
  if (!text || !*text) return false;
  out = std::strtoull(text, &end, 10);
  return *end == '\0';
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t first = 1, count = 100;
  std::optional<std::uint64_t> from, single;
  bool keep_going = false;
  qorb::sim::options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    std::uint64_t n = 0;
    if (arg == "--seeds" && number(value, n) && n > 0) {
      count = n;
      ++i;
    } else if (arg == "--seed" && number(value, n)) {
      single = n;
      ++i;
    } else if (arg == "--first" && number(value, n)) {
      from = n;
      ++i;
    } else if (arg == "--events" && number(value, n)) {
      opt.events = n;
      ++i;
    } else if (arg == "--trace") {
      opt.trace = true;
    } else if (arg == "--skip" && value) {
      opt.skip.emplace(value);
      ++i;
    } else if (arg == "--keep-going") {
      keep_going = true;
    } else {
      usage();
      return 2;
    }
  }

  if (single) {
    first = *single;
    count = 1;
  } else if (from) {
    first = *from;
  }
  const auto started = std::chrono::steady_clock::now();
  qorb::sim::totals all;
  std::uint64_t failed = 0;
  for (std::uint64_t seed = first; seed < first + count; ++seed) {
    const qorb::sim::result r = qorb::sim::run_seed(seed, opt);
    all.add(r.counts);
    if (!r.ok) {
      ++failed;
      std::printf("%s\n", r.failure.c_str());
      std::fflush(stdout);
      if (!keep_going) break;
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const std::string traced = opt.trace ? ", traced " + std::to_string(all.events) + " events" : "";
  using o = qorb::core::claim_outcome;
  auto n = [&](o x) { return all.by_outcome[std::size_t(x)]; };
  std::printf("qorb_sim: %s: %" PRIu64 " seeds, %" PRIu64 " events, %" PRIu64
              " core calls%s; claims %" PRIu64 ": served %" PRIu64 " (+%" PRIu64
              " try_claim), no_backends %" PRIu64 ", no_backends_online %" PRIu64
              ", all_claims_used %" PRIu64 ", terminated %" PRIu64 ", cancelled %" PRIu64
              ", acquire_failed %" PRIu64 ", pool_failed %" PRIu64 "; connects %" PRIu64
              ", checks %" PRIu64 ", failed ops %" PRIu64 " (ended normally %" PRIu64
              "), hung %" PRIu64 ", late %" PRIu64 "; watches %" PRIu64 " (ended %" PRIu64
              "); %.2f s\n",
              failed                ? "FAILED"
              : all.skipped.empty() ? "all invariants held"
                                    : "FAILED (skipped invariants broke)",
              all.seeds, all.events, all.calls, traced.c_str(), all.claims, n(o::served),
              all.try_served, n(o::no_backends), n(o::no_backends_online), n(o::all_claims_used),
              n(o::terminated), n(o::cancelled), n(o::acquire_failed), n(o::pool_failed),
              all.connects, all.checks, all.ops_failed, all.ops_ended, all.ops_hung,
              all.late_finishes, all.watches, all.watches_ended, secs);
  for (const auto& [name, times] : all.skipped) {
    std::printf("qorb_sim: skipped invariant %s broken %" PRIu64 " times\n", name.c_str(), times);
  }
  return failed || !all.skipped.empty() ? 1 : 0;
}
