// SPDX-License-Identifier: BSL-1.0
// qorb internals: a user's connector behind connector_ops.
#pragma once

#include <qorb/connector.hpp>
#include <qorb/detail/pool_core.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/system_error.hpp>

namespace qorb::detail {

// A hook the pool would not call must not compile: a member named like a
// hook (any signature, also a data member or a hook that takes something
// else) but not matching the hook's signature exactly, or a member named
// like a misspelt hook. Without these checks such a connector compiles and
// its hook is silently never called.
#define QORB_DETAIL_MEMBER_NAMED(member)                                     \
  template <class C>                                                         \
  concept has_member_named_##member = requires {                             \
    &C::member;                                                              \
  }                                                                          \
  || requires(C & c, typename C::connection_type & conn) { c.member(conn); } \
  || requires(C & c) { c.member(); };
QORB_DETAIL_MEMBER_NAMED(is_valid)
QORB_DETAIL_MEMBER_NAMED(on_acquire)
QORB_DETAIL_MEMBER_NAMED(on_recycle)
QORB_DETAIL_MEMBER_NAMED(watch)
// Misspellings, and the names other pools give these hooks.
QORB_DETAIL_MEMBER_NAMED(on_aquire)
QORB_DETAIL_MEMBER_NAMED(on_acquired)
QORB_DETAIL_MEMBER_NAMED(on_accquire)
QORB_DETAIL_MEMBER_NAMED(on_aqcuire)
QORB_DETAIL_MEMBER_NAMED(onacquire)
QORB_DETAIL_MEMBER_NAMED(on_recyle)
QORB_DETAIL_MEMBER_NAMED(on_recylce)
QORB_DETAIL_MEMBER_NAMED(on_recycled)
QORB_DETAIL_MEMBER_NAMED(onrecycle)
QORB_DETAIL_MEMBER_NAMED(is_vaild)
QORB_DETAIL_MEMBER_NAMED(is_valide)
QORB_DETAIL_MEMBER_NAMED(isvalid)
QORB_DETAIL_MEMBER_NAMED(isValid)
QORB_DETAIL_MEMBER_NAMED(on_release)
QORB_DETAIL_MEMBER_NAMED(on_return)
QORB_DETAIL_MEMBER_NAMED(on_checkout)
QORB_DETAIL_MEMBER_NAMED(on_checkin)
QORB_DETAIL_MEMBER_NAMED(has_broken)
QORB_DETAIL_MEMBER_NAMED(recycle)
QORB_DETAIL_MEMBER_NAMED(wacth)
QORB_DETAIL_MEMBER_NAMED(whatch)
QORB_DETAIL_MEMBER_NAMED(watcher)
QORB_DETAIL_MEMBER_NAMED(on_watch)
QORB_DETAIL_MEMBER_NAMED(watch_idle)
QORB_DETAIL_MEMBER_NAMED(on_idle)
QORB_DETAIL_MEMBER_NAMED(on_closed)
QORB_DETAIL_MEMBER_NAMED(on_close)
#undef QORB_DETAIL_MEMBER_NAMED

#define QORB_DETAIL_HOOK_SIGNATURE(hook, meaning)                             \
  static_assert(!has_member_named_##hook<C> || connector_with_##hook<C>,      \
                "qorb connector: `" #hook                                     \
                "` does not have the hook's signature, so the pool "          \
                "would never call it; expected `asio::awaitable<void> " #hook \
                "(connection_type& c)` (" meaning "; fail by throwing, see docs/connectors.md)");
#define QORB_DETAIL_NOT_A_HOOK(name, hook)                                                \
  static_assert(                                                                          \
      !has_member_named_##name<C>,                                                        \
      "qorb connector: `" #name                                                           \
      "` is not a hook and would never be called; did "                                   \
      "you mean `asio::awaitable<void> " #hook                                            \
      "(connection_type& c)`? (hooks: connect, is_valid, on_acquire, on_recycle, watch; " \
      "see docs/connectors.md)");

// Instantiated by the pool's constructor: the messages show there.
template <class C>
struct connector_checks {
  QORB_DETAIL_HOOK_SIGNATURE(is_valid, "health check of an idle connection")
  QORB_DETAIL_HOOK_SIGNATURE(on_acquire, "per claim, before the claimer gets the connection")
  QORB_DETAIL_HOOK_SIGNATURE(on_recycle, "when a claim returns the connection")
  QORB_DETAIL_HOOK_SIGNATURE(watch, "runs while the connection is idle; ends when it is lost")
  QORB_DETAIL_NOT_A_HOOK(on_aquire, on_acquire)
  QORB_DETAIL_NOT_A_HOOK(on_acquired, on_acquire)
  QORB_DETAIL_NOT_A_HOOK(on_accquire, on_acquire)
  QORB_DETAIL_NOT_A_HOOK(on_aqcuire, on_acquire)
  QORB_DETAIL_NOT_A_HOOK(onacquire, on_acquire)
  QORB_DETAIL_NOT_A_HOOK(on_checkout, on_acquire)
  QORB_DETAIL_NOT_A_HOOK(on_recyle, on_recycle)
  QORB_DETAIL_NOT_A_HOOK(on_recylce, on_recycle)
  QORB_DETAIL_NOT_A_HOOK(on_recycled, on_recycle)
  QORB_DETAIL_NOT_A_HOOK(onrecycle, on_recycle)
  QORB_DETAIL_NOT_A_HOOK(on_release, on_recycle)
  QORB_DETAIL_NOT_A_HOOK(on_return, on_recycle)
  QORB_DETAIL_NOT_A_HOOK(on_checkin, on_recycle)
  QORB_DETAIL_NOT_A_HOOK(recycle, on_recycle)
  QORB_DETAIL_NOT_A_HOOK(is_vaild, is_valid)
  QORB_DETAIL_NOT_A_HOOK(is_valide, is_valid)
  QORB_DETAIL_NOT_A_HOOK(isvalid, is_valid)
  QORB_DETAIL_NOT_A_HOOK(isValid, is_valid)
  QORB_DETAIL_NOT_A_HOOK(has_broken, is_valid)
  QORB_DETAIL_NOT_A_HOOK(wacth, watch)
  QORB_DETAIL_NOT_A_HOOK(whatch, watch)
  QORB_DETAIL_NOT_A_HOOK(watcher, watch)
  QORB_DETAIL_NOT_A_HOOK(on_watch, watch)
  QORB_DETAIL_NOT_A_HOOK(watch_idle, watch)
  QORB_DETAIL_NOT_A_HOOK(on_idle, watch)
  QORB_DETAIL_NOT_A_HOOK(on_closed, watch)
  QORB_DETAIL_NOT_A_HOOK(on_close, watch)
  static constexpr bool checked = true;
};
#undef QORB_DETAIL_HOOK_SIGNATURE
#undef QORB_DETAIL_NOT_A_HOOK

template <connector C>
class typed_connector_ops final : public connector_ops {
  static_assert(connector_checks<C>::checked);

 public:
  using connection_type = typename C::connection_type;

  explicit typed_connector_ops(C c) : connector_(std::make_shared<C>(std::move(c))) {
    has_is_valid = connector_with_is_valid<C>;
    has_on_acquire = connector_with_on_acquire<C>;
    has_on_recycle = connector_with_on_recycle<C> || connector_with_is_valid<C>;
    recycle_is_is_valid = !connector_with_on_recycle<C> && connector_with_is_valid<C>;
    has_watch = connector_with_watch<C>;
  }

  void start_connect(op_context ctx, const backend& b) override {
    auto ex = ctx.executor;
    asio::post(ex, [c = connector_, ctx = std::move(ctx), b]() mutable {
      if (ctx.signal->cancelled.load(std::memory_order_acquire)) {
        ctx.core->connect_done(ctx, cancelled_before_start(), nullptr);
        return;
      }
      auto where = ctx.executor;
      auto cancel = ctx.signal->slot();
      asio::co_spawn(where, run_connect(std::move(c), std::move(b)),
                     asio::bind_cancellation_slot(
                         cancel, [ctx = std::move(ctx)](std::exception_ptr e, box_ptr box) mutable {
                           ctx.core->connect_done(ctx, e, std::move(box));
                         }));
    });
  }

  void start_check(op_context ctx, check_kind kind, box_ptr box) override {
    auto ex = ctx.executor;
    asio::post(ex, [c = connector_, ctx = std::move(ctx), kind, box = std::move(box)]() mutable {
      // No early exit here, unlike a connect: a check cancelled before it
      // starts (an abandoned claim's on_acquire) still runs and hands its
      // connection back, so a good connection is not counted as failed.
      auto where = ctx.executor;
      auto cancel = ctx.signal->slot();
      asio::co_spawn(
          where, run_check(std::move(c), kind, std::move(box)),
          asio::bind_cancellation_slot(
              cancel, [ctx = std::move(ctx), kind](std::exception_ptr e, check_result r) mutable {
                ctx.core->check_done(ctx, kind, e, std::move(r));
              }));
    });
  }

  void start_watch(op_context ctx, connection_box* box) override {
    if constexpr (connector_with_watch<C>) {
      auto ex = ctx.executor;
      asio::post(ex, [c = connector_, ctx = std::move(ctx), box]() mutable {
        // Claimed (or closed) before the watch began: the connection may be
        // in a claimer's hands already. The report only retires the op.
        if (ctx.signal->cancelled.load(std::memory_order_acquire)) {
          ctx.core->watch_done(ctx, cancelled_before_start());
          return;
        }
        auto where = ctx.executor;
        auto cancel = ctx.signal->slot();
        asio::co_spawn(where, run_watch(std::move(c), box),
                       asio::bind_cancellation_slot(
                           cancel, [ctx = std::move(ctx)](std::exception_ptr e) mutable {
                             ctx.core->watch_done(ctx, e);
                           }));
      });
    } else {
      (void)box;
      ctx.core->watch_done(ctx, cancelled_before_start());  // never asked for
    }
  }

 private:
  static std::exception_ptr cancelled_before_start() {
    return std::make_exception_ptr(
        boost::system::system_error(asio::error::operation_aborted, "cancelled before it began"));
  }

  static asio::awaitable<box_ptr> run_connect(std::shared_ptr<C> c, backend b) {
    // Not `new typed_box(co_await ...)`: GCC 12 leaks the allocation when
    // the awaited call throws inside a new-expression.
    auto conn = co_await c->connect(b);
    co_return std::make_unique<typed_box<connection_type>>(std::move(conn));
  }

  // Ends when the connection is lost: a normal return says so as well.
  static asio::awaitable<void> run_watch(std::shared_ptr<C> c, connection_box* box) {
    if constexpr (connector_with_watch<C>) {
      co_await c->watch(static_cast<typed_box<connection_type>&>(*box).conn);
    }
  }

  static asio::awaitable<check_result> run_check(std::shared_ptr<C> c, check_kind kind,
                                                 box_ptr box) {
    auto& conn = static_cast<typed_box<connection_type>&>(*box).conn;
    std::exception_ptr error;
    try {
      switch (kind) {
        case check_kind::is_valid:
          if constexpr (connector_with_is_valid<C>) co_await c->is_valid(conn);
          break;
        case check_kind::on_acquire:
          if constexpr (connector_with_on_acquire<C>) co_await c->on_acquire(conn);
          break;
        case check_kind::on_recycle:
          if constexpr (connector_with_on_recycle<C>) {
            co_await c->on_recycle(conn);
          } else if constexpr (connector_with_is_valid<C>) {
            co_await c->is_valid(conn);
          }
          break;
      }
    } catch (...) {
      error = std::current_exception();
    }
    co_return check_result{std::move(box), error};
  }

  std::shared_ptr<C> connector_;
};

}  // namespace qorb::detail
