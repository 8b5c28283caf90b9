// SPDX-License-Identifier: BSL-1.0
// One slot: a commitment to hold one connection to one backend, and its
// whole life as a state machine. It decides; the pool (its port) does.
#pragma once

#include <qorb/detail/core_port.hpp>

#include "core/backoff.hpp"
#include "core/effects.hpp"

#include <qorb/stats.hpp>

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace qorb::core {

class slot_set;

/// What a slot needs to know of the policy and the connector.
struct slot_rules {
  const set_config* cfg = nullptr;
  bool has_is_valid = false;
  bool has_on_acquire = false;
  bool has_on_recycle = false;  // on_recycle, or is_valid standing in for it
  // is_valid stands in for on_recycle: an end it finds on return is judged
  // by age as a health check's is (it cannot tell a meant close from a drop).
  bool recycle_is_is_valid = false;
  bool has_watch = false;  // a watch runs while the slot is idle
};

/// `ended`: the connector said the connection ended normally (a server's
/// close of an idle keep-alive connection): not the backend's fault.
/// `refused`: a connect failed permanently (the connector threw
/// qorb::permanent_error): retrying will not help soon.
enum class verdict : std::uint8_t { ok, failed, timed_out, cancelled, ended, refused };

/// A connection a health check or on_acquire finds ended normally younger
/// than this (or than max_connection_backoff, if that is shorter) counts as
/// a failure and backs off: a backend that ends every connection right
/// after connect is failing, and replacing its connections at once would
/// hammer it. Older ones are replaced at once, so a slot reconnects at most
/// once per this long for such ends. An end on_recycle finds is never young:
/// the connection served a claim, so such reconnects are bounded by claims.
inline constexpr duration normal_end_min_age = std::chrono::seconds(1);

/// A slot's named timers (quinn's TimerTable): each is armed or not, and
/// the earliest armed one is what the pool's timer heap holds for the slot.
enum class slot_timer : std::uint8_t {
  step,      // what the state waits for: an operation's deadline, the end of a
             // backoff or of a cooling hold, the next health check
  lifetime,  // the connection's lifetime ends (acted on while idle; else when ready)
  idle,      // an idle connection has been unused for idle_timeout
  count_,
};

/// A connection's lifetime: drawn uniformly from [max - jitter, max], the
/// jitter 10% of max unless set; none without a max_lifetime.
std::optional<duration> draw_lifetime(const set_config& cfg, double random01) noexcept;

/// The pool, as a slot sees it.
class slot_port {
 public:
  /// Not virtual: read on every claim and return.
  const slot_rules& rules() const noexcept { return *rules_; }
  virtual time_point now() = 0;
  virtual double random01() = 0;
  /// Starts a connector operation (a check takes `box`); its id.
  virtual op_id start(slot& s, op_kind kind, detail::box_ptr box) = 0;
  /// Whether operation `op` runs (a connect may wait for a turn first).
  virtual bool running(op_id op) const noexcept = 0;
  /// Cancels an operation. `abandon`: its result, whenever it comes, is
  /// stale; otherwise the slot still waits for it (and what it gives back).
  virtual void cancel(op_id op, bool abandon) = 0;
  virtual void close(detail::box_ptr box) = 0;
  /// The slot's wake time moved earlier (or was set).
  virtual void arm(slot& s) = 0;
  virtual void moved(slot& s, slot_state from) = 0;
  /// An operation ended; failures count against the backend. `retry`: the
  /// delay before the slot tries again, where one follows.
  virtual void ended(slot& s, op_kind kind, verdict v, std::string_view why, duration retry) = 0;
  /// A handle discarded the connection, or an idle one was lost.
  virtual void dropped(slot& s, bool discarded, std::string_view why) = 0;
  /// The slot closed (or gave up) its connection for `why` (counted).
  virtual void closed(slot& s, close_reason why) = 0;
  /// An idle slot's idle_timeout passed: whether the pool closed it (it
  /// holds more idle connections than it keeps).
  virtual bool idle_expired(slot& s) = 0;

 protected:
  explicit slot_port(const slot_rules& r) noexcept : rules_(&r) {}
  ~slot_port() = default;

 private:
  const slot_rules* rules_;
};

/// What a slot's event leaves for the pool to do.
struct slot_result {
  enum class next : std::uint8_t {
    nothing,
    ready,        // a healthy connection and no operation: make it idle, serve a waiter or close
    handed_over,  // the claim it acquired for gets the connection
  };
  next then = next::nothing;
  /// `retry` tries again because its connection ended normally: no failure
  /// of the hook. (Beside `then`: the result stays 16 bytes, which the
  /// claim path returns in registers; 24 cost every claim and return a
  /// store-forwarding stall, 6% of a claim.)
  bool retry_after_end = false;
  /// A claim whose on_acquire failed or timed out: it must try again.
  claim_node* retry = nullptr;
};
static_assert(sizeof(slot_result) <= 16, "returned in registers on the claim path");

struct slot_event {
  enum class kind : std::uint8_t {
    op_ok,      // the operation `op` succeeded (`box`: the connection)
    op_failed,  // the operation `op` failed (`box`: the connection if it came back)
    op_ended,   // the operation `op` said the connection ended normally (`box`: as op_failed)
    timer,      // the slot's wake time came
    claim,      // an idle slot is claimed by `claim`
    release,    // a claimed slot's handle returned it
    discard,    // ... saying the connection is broken
    cancel,     // the claim it is acquiring for went away
  };
  kind what;
  op_id op = 0;
  detail::box_ptr box = nullptr;
  std::string why = {};
  claim_node* claim = nullptr;
  bool permanent = false;  // op_failed of a connect: qorb::permanent_error
};

class slot {
 public:
  slot(std::uint64_t id, slot_set& owner) noexcept : id_(id), set_(&owner) {}
  slot(const slot&) = delete;
  slot& operator=(const slot&) = delete;

  /// A new slot: starts connecting.
  void open(slot_port& port);
  /// The pool started the connect it held back for a turn (max_connecting):
  /// its time bound starts now.
  void connect_began(slot_port& port);
  slot_result resume(slot_port& port, slot_event ev);
  /// The pool decided: the ready slot becomes claimable.
  void make_idle(slot_port& port);
  /// Removed (the set shrank, the backend left, the pool terminated): the
  /// operation is cancelled and the connection closed, counted for `why`.
  /// Never while claimed, but for terminate, which takes acquiring slots too.
  void close(slot_port& port, close_reason why);
  /// evict_all: an idle connection is closed and replaced now; one claimed,
  /// checked or cooling when it is next ready.
  slot_result evict(slot_port& port);

  std::uint64_t id() const noexcept { return id_; }
  slot_set& set() const noexcept { return *set_; }
  slot_state state() const noexcept { return state_; }
  detail::connection_box* connection() const noexcept { return conn_.get(); }
  claim_node* claim() const noexcept { return claim_; }
  /// The earliest armed timer, if any.
  std::optional<time_point> wake_at() const noexcept;
  /// Whether the slot holds a connection (itself, or the operation it runs).
  bool holds_connection() const noexcept;
  const backoff& retries() const noexcept { return retry_; }
  bool running() const noexcept { return op_ != 0; }
  /// When its latest connect started (after any wait for a turn).
  time_point connect_started() const noexcept { return connect_began_; }

  // Owned by the slot_set and the pool's timer heap.
  list_hook<slot> in_set;
  list_hook<slot> in_idle;
  deadline_hook timer;
  // Owned by the pool's hold_tracker: while claimed, who holds it.
  list_hook<slot> in_held;
  struct hold_info {
    time_point since{};       // handed to its claim
    std::uint64_t claim = 0;  // the claim's id
    std::uint16_t site = 0;   // claim_sites index
    bool timed = false;       // `since` is known (holds are timed)
    bool warned = false;      // policy::hold_warning said so already
  } held;

 private:
  slot_result on_timer(slot_port& port);
  bool due(slot_timer t, time_point now) noexcept;
  void disarm(slot_timer t) noexcept { timers_[std::size_t(t)] = never; }
  bool retire_due(slot_port& port) { return retire_at_ != never && retire_at_ <= port.now(); }
  slot_result retire(slot_port& port);
  slot_result finished(slot_port& port, bool ok, detail::box_ptr box, const std::string& why,
                       bool permanent = false);
  slot_result timed_out(slot_port& port);
  slot_result acquire_over(slot_port& port, bool ok, detail::box_ptr box, std::string_view why,
                           bool timed_out);
  slot_result ended_normally(slot_port& port, detail::box_ptr box, const std::string& why);
  slot_result recycle(slot_port& port);
  slot_result ready_or_hold(slot_port& port);
  void begin_connect(slot_port& port, slot_state st = slot_state::connecting);
  void start_check(slot_port& port, slot_state st, op_kind kind);
  void reconnect_after_loss(slot_port& port);
  slot_result lost(slot_port& port, const std::string& why);
  /// Leaving idle: the watch, if one runs, is cancelled (its result, when
  /// it comes, is stale).
  void unwatch(slot_port& port) {
    if (op_ != 0) port.cancel(std::exchange(op_, 0), true);
  }
  void reconnect_in(slot_port& port, duration delay);
  duration loss_delay(slot_port& port);
  void wake(slot_port& port, time_point at, slot_timer t = slot_timer::step);
  void to(slot_port& port, slot_state st);
  slot_result ready(slot_port& port);

  const std::uint64_t id_;
  slot_set* set_;
  slot_state state_ = slot_state::closed;
  // The state the set counts this slot in: state_, but for `ready`, which
  // lasts only within an event and leaves the counts where they were (a
  // return goes claimed -> ready -> idle and moves the counts once).
  slot_state counted_ = slot_state::closed;
  op_id op_ = 0;
  detail::box_ptr conn_;
  claim_node* claim_ = nullptr;  // acquiring for, or claimed by
  backoff retry_;
  time_point up_since_{};    // the connection's health clock (connect, or last failure)
  time_point hold_until_{};  // after a failed on_acquire: not claimable before
  time_point connect_began_{};
  time_point last_used_{};  // connected, or last returned (idle_timeout counts from it)
  static constexpr time_point never = time_point::max();
  // The connection is closed and replaced once ready at or after this
  // (its lifetime's end; time_point::min() once evicted).
  time_point retire_at_ = never;
  close_reason retire_why_ = close_reason::lifetime;
  std::array<time_point, std::size_t(slot_timer::count_)> timers_{never, never, never};
};

}  // namespace qorb::core
