// qorb internals: a user's connector behind connector_ops.
#pragma once

#include <qorb/connector.hpp>
#include <qorb/detail/pool_core.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

namespace qorb::detail {

template <connector C>
class typed_connector_ops final : public connector_ops {
 public:
  using connection_type = typename C::connection_type;

  explicit typed_connector_ops(C c) : connector_(std::make_shared<C>(std::move(c))) {
    has_is_valid = connector_with_is_valid<C>;
    has_on_acquire = connector_with_on_acquire<C>;
    has_on_recycle = connector_with_on_recycle<C> || connector_with_is_valid<C>;
  }

  void start_connect(op_context ctx, const backend& b) override {
    auto ex = ctx.executor;
    asio::post(ex, [c = connector_, ctx = std::move(ctx), b]() mutable {
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

 private:
  static asio::awaitable<box_ptr> run_connect(std::shared_ptr<C> c, backend b) {
    // Not `new typed_box(co_await ...)`: GCC 12 leaks the allocation when
    // the awaited call throws inside a new-expression.
    auto conn = co_await c->connect(b);
    co_return std::make_unique<typed_box<connection_type>>(std::move(conn));
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
