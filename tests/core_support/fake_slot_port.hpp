// SPDX-License-Identifier: BSL-1.0
// A slot_port for driving core::slot (and a slot_set) by hand: it records
// every call the slot makes and answers now() and random01() from fields the
// test sets. No pool, no clock, no I/O.
#pragma once

#include <qorb/backend.hpp>
#include <qorb/policy.hpp>

#include "core/slot.hpp"
#include "core/slot_set.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace qorb::test {

using core::time_point;

/// A connection that counts itself, so a test sees every one closed.
struct counted_box final : detail::connection_box {
  counted_box(int* live_count, int n) : live(live_count), id(n) { ++*live; }
  ~counted_box() override { --*live; }
  counted_box(const counted_box&) = delete;
  counted_box& operator=(const counted_box&) = delete;
  int* live;
  int id;
};

inline int box_id(const detail::connection_box* b) {
  return b ? static_cast<const counted_box*>(b)->id : 0;
}

class fake_slot_port final : public core::slot_port {
 public:
  struct start_call {
    core::slot* s;
    core::op_id id;
    core::op_kind kind;
    detail::box_ptr box;  // what a check took
  };
  struct cancel_call {
    core::op_id id;
    bool abandon;
  };
  struct ended_call {
    core::op_kind kind;
    core::verdict v;
    std::string why;
    duration retry;
  };
  struct dropped_call {
    bool discarded;
    std::string why;
  };
  struct moved_call {
    core::slot_state from, to;
  };

  fake_slot_port() : slot_port(hooks) { hooks.cfg = &cfg; }
  fake_slot_port(const fake_slot_port&) = delete;
  fake_slot_port& operator=(const fake_slot_port&) = delete;

  // What the slot sees; tests set these.
  set_config cfg;
  core::slot_rules hooks;  // hooks.cfg is &cfg
  time_point t{std::chrono::seconds(1000)};
  double random = 0;

  // What the slot did.
  int live = 0;  // counted_boxes alive (held anywhere)
  std::vector<start_call> starts;
  std::vector<cancel_call> cancels;
  std::vector<detail::box_ptr> closed_boxes;
  std::vector<ended_call> ends;
  std::vector<dropped_call> drops;
  std::vector<moved_call> moves;
  int arms = 0;
  std::vector<close_reason> close_reasons;  // every connection the slot counted closed
  int idle_expiries = 0;
  bool close_when_idle_expires = false;  // what idle_expired answers

  detail::box_ptr make_box() { return std::make_unique<counted_box>(&live, ++made_); }
  /// The connection the latest check took with it.
  detail::box_ptr take_box() { return std::move(starts.back().box); }
  core::op_id last_op() const { return starts.empty() ? 0 : starts.back().id; }

  time_point now() override { return t; }
  double random01() override { return random; }
  core::op_id start(core::slot& s, core::op_kind kind, detail::box_ptr box) override {
    starts.push_back({&s, ++ops_, kind, std::move(box)});
    return ops_;
  }
  bool running(core::op_id op) const noexcept override { return op != 0; }
  void cancel(core::op_id op, bool abandon) override { cancels.push_back({op, abandon}); }
  void close(detail::box_ptr box) override { closed_boxes.push_back(std::move(box)); }
  void arm(core::slot&) override { ++arms; }
  void moved(core::slot& s, core::slot_state from) override {
    moves.push_back({from, s.state()});
    s.set().moved(s, from);
  }
  void ended(core::slot&, core::op_kind kind, core::verdict v, std::string_view why,
             duration retry) override {
    ends.push_back({kind, v, std::string(why), retry});
  }
  void dropped(core::slot&, bool discarded, std::string_view why) override {
    drops.push_back({discarded, std::string(why)});
  }
  void closed(core::slot&, close_reason why) override { close_reasons.push_back(why); }
  bool idle_expired(core::slot&) override {
    ++idle_expiries;
    return close_when_idle_expires;
  }

 private:
  core::op_id ops_ = 100;  // not 1, 2...: a test cannot pass by guessing ids
  int made_ = 0;
};

inline backend test_backend(const std::string& name = "a", unsigned short port = 1) {
  return backend{name, {asio::ip::make_address("127.0.0.1"), port}};
}

}  // namespace qorb::test
