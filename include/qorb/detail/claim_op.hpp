// SPDX-License-Identifier: BSL-1.0
// qorb internals: an async_claim in flight, for any completion handler.
#pragma once

#include <qorb/claim.hpp>
#include <qorb/detail/pool_core.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/prefer.hpp>

#include <memory>
#include <type_traits>

namespace qorb::detail {

template <class Conn, class Handler>
class claim_op final : public claim_request {
 public:
  using handler_executor = asio::associated_executor_t<Handler, asio::any_io_executor>;
  // Keeps the handler's executor from running out of work while we wait.
  // (decayed: for executors without the property, prefer() is the identity
  // and its result type a reference.)
  using tracked_executor = std::decay_t<typename asio::prefer_result<
      handler_executor, asio::execution::outstanding_work_t::tracked_t>::type>;

  claim_op(std::shared_ptr<pool_core> core, Handler&& h)
      : core_(std::move(core)),
        handler_(std::move(h)),
        work_(asio::prefer(asio::get_associated_executor(handler_, core_->executor()),
                           asio::execution::outstanding_work.tracked)) {}

  /// Hooks per-operation cancellation: a cancelled claim leaves the queue
  /// and completes with operation_aborted.
  void watch_cancellation() {
    auto cs = asio::get_associated_cancellation_slot(handler_);
    if (cs.is_connected()) cs.template emplace<on_cancel>(core_.get(), this);
  }

  void complete(error_code ec, core::slot* s, connection_box* box) override {
    handle<Conn> h;
    if (s) h = handle<Conn>(core_.get(), s, &static_cast<typed_box<Conn>*>(box)->conn);
    // The function below owns this op, and so `work_`, until it runs: it
    // is the outstanding work. Submitting it through an untracked copy
    // spares Asio's shared work counter two atomic updates per copy.
    auto ex = asio::prefer(work_, asio::execution::outstanding_work.untracked);
    // The handle travels with the function object: if the handler's
    // executor drops it without running it, the connection still returns.
    auto finish = [op = std::unique_ptr<claim_op>(this), ec, h = std::move(h)]() mutable {
      auto cs = asio::get_associated_cancellation_slot(op->handler_);
      if (cs.is_connected()) cs.clear();
      Handler handler = std::move(op->handler_);
      op.reset();
      std::move(handler)(ec, std::move(h));
    };
    // Never inline: not inside async_claim (a coroutine claiming in a loop
    // would nest one resumption per claim until the stack overflows), nor
    // inside the pool's own calls (a handle's return, a cancellation), where
    // a throwing or re-entrant handler must not land. defer: a continuation
    // of the caller, so on an io_context thread it is queued on that
    // thread without waking another.
    asio::defer(ex, std::move(finish));
  }

 private:
  struct on_cancel {
    pool_core* core;
    claim_request* request;
    void operator()(asio::cancellation_type type) const {
      if ((type & (asio::cancellation_type::terminal | asio::cancellation_type::partial |
                   asio::cancellation_type::total)) != asio::cancellation_type::none) {
        core->cancel(request);
      }
    }
  };

  std::shared_ptr<pool_core> core_;
  Handler handler_;
  tracked_executor work_;
};

}  // namespace qorb::detail
