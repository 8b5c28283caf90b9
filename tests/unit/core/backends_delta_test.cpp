// SPDX-License-Identifier: BSL-1.0
// A resolver's change applied as a change (pool_state::backends_delta):
// the same pool as publishing the changed set whole, whatever the changes,
// at the cost of the change. A manual clock only.
#include <gtest/gtest.h>

#include "core_support/harness.hpp"

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace qorb::test {
namespace {

using core::claim_outcome;
using core::op_kind;
using kind = core::observation::kind;

backend at_port(const std::string& name, unsigned short port) {
  return backend{name, {asio::ip::make_address("127.0.0.1"), port}};
}

// What a pool looks like from outside: each live set's address and slots.
std::map<std::string, std::pair<std::string, std::size_t>> shape(core_harness& h) {
  std::map<std::string, std::pair<std::string, std::size_t>> out;
  h.state().for_each_set([&](const core::slot_set& s) {
    if (s.removed) return;
    out[s.target().name] = {to_string(s.target().address), s.size()};
  });
  return out;
}

TEST(backends_delta, adds_moves_and_removes_as_a_whole_set_would) {
  core_harness whole(small_policy(64));
  core_harness changes(small_policy(64));
  std::mt19937 random(7);
  backend_map set;
  for (int step = 0; step < 300; ++step) {
    backend_map added;
    std::vector<std::string> removed;
    const int n = 1 + static_cast<int>(random() % 4);
    for (int i = 0; i < n; ++i) {
      std::string name = std::to_string(random() % 24);
      name.insert(0, 1, 'b');
      if (added.contains(name) ||
          std::find(removed.begin(), removed.end(), name) != removed.end()) {
        continue;
      }
      const auto what = random() % 3;
      if (what == 0 && set.contains(name)) {
        removed.push_back(name);
      } else {
        // New, or moved to another port (or the same one again: no change).
        added.emplace(name, at_port(name, static_cast<unsigned short>(1 + random() % 3)));
      }
    }
    for (const auto& name : removed) set.erase(name);
    for (const auto& [name, b] : added) set.insert_or_assign(name, b);
    {
      core::effects fx;
      whole.state().backends_changed(set, fx);
    }
    changes.delta(added, removed);
    // Half the connects succeed, in both pools alike.
    for (int i = 0; i < 6; ++i) {
      auto* a = whole.find(op_kind::connect);
      auto* b = changes.find(op_kind::connect);
      if (!a || !b) break;
      const bool ok = random() % 2 == 0;
      whole.finish(a->id, ok);
      changes.finish(b->id, ok);
    }
    ASSERT_EQ(shape(whole), shape(changes)) << "step " << step;
  }
}

TEST(backends_delta, unknown_removals_and_unchanged_additions_change_nothing) {
  core_harness h(small_policy());
  h.delta({{"a", at_port("a", 1)}, {"b", at_port("b", 2)}}, {});
  h.connect_ok();
  const auto before = h.seen().size();
  const auto slots = h.slots_of("a") + h.slots_of("b");
  h.delta({{"a", at_port("a", 1)}}, {"nobody"});
  EXPECT_EQ(h.slots_of("a") + h.slots_of("b"), slots);
  for (std::size_t i = before; i < h.seen().size(); ++i) {
    EXPECT_NE(h.seen()[i].what, kind::backend_added);
    EXPECT_NE(h.seen()[i].what, kind::backend_removed);
  }
  // A moved address is one backend removed and one added, under one name.
  h.delta({{"a", at_port("a", 9)}}, {});
  std::size_t added = 0, removed = 0;
  for (std::size_t i = before; i < h.seen().size(); ++i) {
    added += h.seen()[i].what == kind::backend_added ? 1 : 0;
    removed += h.seen()[i].what == kind::backend_removed ? 1 : 0;
  }
  EXPECT_EQ(added, 1u);
  EXPECT_EQ(removed, 1u);
}

TEST(backends_delta, removing_the_last_backend_fails_waiting_claims_fast) {
  auto p = small_policy();
  p.fail_fast_without_backends = true;
  core_harness h(p);
  h.delta({{"a", at_port("a", 1)}}, {});
  auto& c = h.claim();  // waits: no connection yet
  ASSERT_FALSE(c.outcome);
  h.delta({}, {"a"});
  ASSERT_TRUE(c.outcome);
  EXPECT_EQ(*c.outcome, claim_outcome::no_backends);
}

}  // namespace
}  // namespace qorb::test
