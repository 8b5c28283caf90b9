// SPDX-License-Identifier: BSL-1.0
// Runs an etcd_resolver on its own io_context thread and records every set
// it publishes; a TCP proxy that a test can cut, to break the resolver's
// connections to a member that stays up.
#pragma once

#include "support/etcd_server.hpp"
#include "support/require_tool.hpp"
#include "support/wait.hpp"

#include <qorb/resolvers/etcd.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <atomic>
#include <future>
#include <list>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace qorb::test {

/// A config for tests: quick retries, no logging unless QORB_LOG asks.
inline etcd_resolver_config etcd_config(std::vector<asio::ip::tcp::endpoint> endpoints,
                                        std::string prefix) {
  etcd_resolver_config c;
  c.endpoints = std::move(endpoints);
  c.prefix = std::move(prefix);
  c.retry_min = 20ms;
  c.retry_max = 200ms;
  c.request_timeout = 5s;
  return c;
}

class etcd_harness {
 public:
  explicit etcd_harness(etcd_resolver_config config)
      : resolver_(std::make_shared<etcd_resolver>(std::move(config))) {}
  ~etcd_harness() { stop(); }

  void start() {
    resolver_->start(io_.get_executor(), [this](const backend_map& m) {
      std::lock_guard lock(mutex_);
      sets_.push_back(m);
    });
    thread_ = std::thread([this] {
      io_.run();
      drained_ = true;
    });
  }

  /// Stops the resolver; true when its io_context then ran out of work by
  /// itself within `timeout` (nothing left behind).
  bool stop(std::chrono::milliseconds timeout = 10s) {
    if (!thread_.joinable()) return true;
    resolver_->stop();
    const bool drained = wait_until([&] { return drained_.load(); }, timeout);
    if (!drained) io_.stop();
    thread_.join();
    return drained;
  }

  etcd_resolver& resolver() { return *resolver_; }
  etcd_resolver_stats stats() const { return resolver_->stats(); }

  std::vector<backend_map> sets() const {
    std::lock_guard lock(mutex_);
    return sets_;
  }
  std::size_t publications() const {
    std::lock_guard lock(mutex_);
    return sets_.size();
  }
  std::set<std::string> names() const {
    std::lock_guard lock(mutex_);
    std::set<std::string> out;
    if (!sets_.empty()) {
      for (const auto& entry : sets_.back()) out.insert(entry.first);
    }
    return out;
  }
  /// Waits until the last published set has exactly these names.
  bool wait_for(const std::set<std::string>& expected, std::chrono::milliseconds timeout = 20s) {
    return wait_until([&] { return names() == expected; }, timeout);
  }

 private:
  asio::io_context io_;
  std::shared_ptr<etcd_resolver> resolver_;
  std::thread thread_;
  std::atomic<bool> drained_{false};
  mutable std::mutex mutex_;
  std::vector<backend_map> sets_;
};

/// Forwards TCP connections on a loopback port to `upstream`. `cut()`
/// closes every forwarded connection and refuses new ones (accepted, then
/// closed at once) until `restore()`.
class cut_proxy {
 public:
  explicit cut_proxy(asio::ip::tcp::endpoint upstream)
      : upstream_(upstream),
        acceptor_(io_, asio::ip::tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0)),
        work_(io_.get_executor()) {
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~cut_proxy() {
    asio::post(io_, [this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
      close_all();
    });
    work_.reset();
    thread_.join();
  }

  asio::ip::tcp::endpoint endpoint() const { return acceptor_.local_endpoint(); }

  void cut() {
    run([this] {
      cut_ = true;
      close_all();
    });
  }
  void restore() {
    run([this] { cut_ = false; });
  }

 private:
  struct session {
    explicit session(asio::io_context& io) : client(io), server(io) {}
    asio::ip::tcp::socket client;
    asio::ip::tcp::socket server;
    std::array<char, 16384> up{};
    std::array<char, 16384> down{};
  };

  template <class F>
  void run(F f) {
    std::promise<void> done;
    asio::post(io_, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

  void close_all() {
    for (auto& weak : sessions_) {
      if (auto s = weak.lock()) {
        boost::system::error_code ec;
        s->client.close(ec);
        s->server.close(ec);
      }
    }
    sessions_.clear();
  }

  void accept() {
    auto s = std::make_shared<session>(io_);
    acceptor_.async_accept(s->client, [this, s](boost::system::error_code ec) {
      if (ec) return;
      if (cut_) {
        s->client.close(ec);
      } else {
        sessions_.push_back(s);
        s->server.async_connect(upstream_, [this, s](boost::system::error_code cec) {
          if (cec) {
            s->client.close(cec);
            return;
          }
          pump(s, s->client, s->server, s->up);
          pump(s, s->server, s->client, s->down);
        });
      }
      accept();
    });
  }

  void pump(const std::shared_ptr<session>& s, asio::ip::tcp::socket& from,
            asio::ip::tcp::socket& to, std::array<char, 16384>& buf) {
    from.async_read_some(asio::buffer(buf), [this, s, &from, &to, &buf](
                                                boost::system::error_code ec, std::size_t n) {
      if (ec) {
        to.close(ec);
        from.close(ec);
        return;
      }
      asio::async_write(to, asio::buffer(buf.data(), n),
                        [this, s, &from, &to, &buf](boost::system::error_code wec, std::size_t) {
                          if (wec) {
                            from.close(wec);
                            return;
                          }
                          pump(s, from, to, buf);
                        });
    });
  }

  asio::ip::tcp::endpoint upstream_;
  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
  bool cut_ = false;  // on the proxy's thread
  std::list<std::weak_ptr<session>> sessions_;
};

/// Skips the test (with the reason) when etcd is not installed; fails
/// instead under QORB_REQUIRE_TOOLS=1 (tests/support/require_tool.hpp).
#define QORB_REQUIRE_ETCD()                                                                      \
  do {                                                                                           \
    std::string why_;                                                                            \
    if (!::qorb::test::etcd_cluster::available(why_)) QORB_MISSING_TOOL("etcd") << ": " << why_; \
  } while (false)

}  // namespace qorb::test
