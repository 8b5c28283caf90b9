// SPDX-License-Identifier: BSL-1.0
// qorb internals: whether this thread runs an executor's execution context,
// so that a blocking call made there (pool::claim) can refuse instead of
// stopping the pool it waits for.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <type_traits>
#include <utility>

namespace qorb::detail {

// Whether this thread runs the execution context behind `ex` (an executor
// of type `Inner`; also through a strand, or with work tracking).
template <class Inner>
bool runs_inner(const boost::asio::any_io_executor& ex) {
  namespace asio = boost::asio;
  using tracked = std::decay_t<decltype(asio::prefer(std::declval<Inner>(),
                                                     asio::execution::outstanding_work.tracked))>;
  if (auto* e = ex.target<Inner>()) return e->running_in_this_thread();
  if (auto* e = ex.target<tracked>()) return e->running_in_this_thread();
  if (auto* e = ex.target<asio::strand<Inner>>()) {
    return e->get_inner_executor().running_in_this_thread();
  }
  if (auto* e = ex.target<asio::strand<tracked>>()) {
    return e->get_inner_executor().running_in_this_thread();
  }
  return false;
}

// Whether this thread runs the io_context or thread_pool behind `ex` (also
// through a strand, or with work tracking): blocking it would stop the
// pool. False for any other kind of executor (not detected).
inline bool runs_here(const boost::asio::any_io_executor& ex) {
  namespace asio = boost::asio;
  if (runs_inner<asio::io_context::executor_type>(ex)) return true;
  if (runs_inner<asio::thread_pool::executor_type>(ex)) return true;
  if (auto* s = ex.target<asio::strand<asio::any_io_executor>>())
    return runs_here(s->get_inner_executor());
  return false;
}

}  // namespace qorb::detail
