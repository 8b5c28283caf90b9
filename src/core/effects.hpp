// SPDX-License-Identifier: BSL-1.0
// What the core asks the driver to do, and what it saw happen. Every event
// of pool_state appends here; the driver carries the effects out after it
// has released its lock, and turns observations into probes, logs and
// nothing else.
#pragma once

#include <qorb/backend.hpp>
#include <qorb/detail/core_port.hpp>
#include <qorb/stats.hpp>

#include <boost/container/small_vector.hpp>

#include <cstdint>
#include <memory>
#include <source_location>
#include <string>
#include <vector>

namespace qorb::core {

using op_id = std::uint64_t;  // unique in a pool; 0 is "no operation"

/// `watch` runs while a slot is idle and borrows its connection; it ends
/// only when the connection is lost, or is cancelled.
enum class op_kind : std::uint8_t { connect, is_valid, on_acquire, on_recycle, watch };

enum class slot_state : std::uint8_t {
  backing_off,  // waiting to connect again
  connecting,
  idle,  // connected and claimable
  checking,
  acquiring,  // on_acquire runs for a claim
  abandoned,  // on_acquire runs for a claim that went away (counted with the claims until it
              // answers: the slot is not free before)
  claimed,
  recycling,  // on_recycle runs after a return
  cooling,    // holds a healthy connection, not claimable for a backoff after on_acquire failed
  replacing,  // connecting again after its connection ended normally: still online
  ready,      // a healthy connection and no operation, within an event: the pool makes it idle,
              // gives it to a claim or closes it before the event ends (never seen between events;
              // counted in the state it came from until then)
  closed,
  count_,  // the number of states, not one
};
const char* to_string(slot_state s) noexcept;
const char* to_string(op_kind k) noexcept;
/// Whether a slot in state `st` belongs to a claim (on_acquire runs for it,
/// or it is claimed).
constexpr bool is_claimed(slot_state st) noexcept {
  // acquiring, abandoned, claimed: consecutive, one comparison on the claim path.
  return st >= slot_state::acquiring && st <= slot_state::claimed;
}
static_assert(int(slot_state::abandoned) == int(slot_state::acquiring) + 1 &&
              int(slot_state::claimed) == int(slot_state::abandoned) + 1);

enum class claim_outcome : std::uint8_t {
  served,
  no_backends,
  no_backends_online,
  all_claims_used,
  terminated,
  cancelled,
  acquire_failed,  // timed out after on_acquire failed on the last connection offered
  pool_failed,     // the pool is failed (and policy::wait_when_failed is not set)
};

/// A backend's name and printed address, shared by the observations that
/// name it (so a removed backend can still be named after it is gone).
struct backend_label {
  std::string name;
  std::string address;
};
using label_ptr = std::shared_ptr<const backend_label>;

/// Complete a claim: served with slot `s` (and its connection), or failed.
struct completion {
  claim_node* claim;
  claim_outcome outcome;
  slot* s = nullptr;
  detail::connection_box* box = nullptr;
};

/// Start a connector operation; report its end with `id`. A check takes the
/// connection (`box`) with it and gives it back with the result.
struct op_start {
  slot* s;
  op_id id;
  op_kind kind;
  detail::box_ptr box;                        // checks
  backend target;                             // connect
  detail::connection_box* watched = nullptr;  // watch: the idle slot's connection, borrowed
};

struct set_counts {
  std::size_t connecting = 0, unclaimed = 0, checking = 0, claimed = 0;
  std::uint64_t total_claims = 0;
};

/// Something that happened, for probes and logs.
struct observation {
  enum class kind : std::uint8_t {
    claim_started,    // traced only
    claim_queued,     // traced only: no backend had an unclaimed slot
    claim_served,     // traced only
    claim_failed,     // traced only
    acquire_failed,   // a claim's on_acquire failed (`flag`: its connection ended
                      // normally instead): it tries again
    handle_returned,  // traced only (`flag`: discarded)
    state_changed,    // traced only
    op_started,       // traced only (connect_start, health_check_start, recycle_start)
    op_succeeded,     // traced only
    op_failed,        // `op`, `reason`; `timed_out`; connect: `delay`, `first`, `count` 1:
                      // failed permanently
    discarded,        // a handle said its connection was broken (`reason`)
    reported,         // a handle reported a failed request (`reason`): the connection stays
    lost,             // an idle connection was lost
    ended,            // `op` said the connection ended normally (`reason`): replaced, no failure
    set_online,       // `flag`: has an unclaimed slot; `count`: backends online now
    set_offline,
    backend_added,
    backend_removed,  // `count`: claimed slots still out
    rebalance_started,
    rebalance_done,
    terminating,
    status_changed,  // `status_from` -> `status_to`; `seq` orders them
    drained,         // async_drain: every claim came back
    hold_warning,    // a claim held its slot past policy::hold_warning (`delay`: the age)
    closed,          // traced only: a connection was closed (`closed_for`)
  };
  kind what;
  op_kind op = op_kind::connect;
  slot_state from = slot_state::closed, to = slot_state::closed;
  bool flag = false;   // set_online: has unclaimed; op_failed: timed out
  bool first = false;  // op_failed (connect): the first failure of a streak;
                       // set_online/offline: it went online or offline now
  std::uint64_t claim = 0;
  std::uint64_t slot = 0;  // slot id
  std::size_t count = 0;
  duration delay{};
  set_counts counts{};
  label_ptr set = nullptr;
  std::string reason = {};
  pool_status status_from = pool_status::starting, status_to = pool_status::starting;
  std::uint64_t seq = 0;                               // status_changed: 1, 2, ... per pool
  close_reason closed_for = close_reason::terminated;  // closed
  std::source_location site{};                         // claims: where the claim was made
};

struct effects {
  /// Set by the driver: record the per-claim observations (a tracer
  /// listens). Rare events are always recorded.
  bool trace = false;

  /// Some deadline may have moved earlier: ask next_wakeup() again.
  bool rearm = false;

  boost::container::small_vector<completion, 1> completions;
  std::vector<op_start> starts;
  std::vector<op_id> cancels;
  std::vector<detail::box_ptr> closing;
  std::vector<observation> seen;

  /// Nothing for the driver to do (a try_claim or a plain return, mostly).
  bool empty() const noexcept {
    return completions.empty() && starts.empty() && cancels.empty() && closing.empty() &&
           seen.empty();
  }
};

}  // namespace qorb::core
