// SPDX-License-Identifier: BSL-1.0
// An io_context run by background threads for the length of a test.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <optional>
#include <thread>
#include <vector>

namespace qorb::test {

class io_threads {
 public:
  explicit io_threads(int n = 2) : work_(io.get_executor()) {
    for (int i = 0; i < n; ++i) threads_.emplace_back([this] { io.run(); });
  }
  ~io_threads() { join(); }
  /// Lets run() return once the pool's work is done, and waits for that.
  void join() {
    work_.reset();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  boost::asio::any_io_executor executor() { return io.get_executor(); }

  boost::asio::io_context io;

 private:
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
};

}  // namespace qorb::test
