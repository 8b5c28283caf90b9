// SPDX-License-Identifier: BSL-1.0
// A hostile stand-in for an etcd member's JSON gateway on loopback: reads
// each HTTP request (header and Content-Length body), asks the test's
// handler what to send back, byte for byte, and either closes the
// connection or keeps it open (a watch stream that never ends). Counts and
// keeps every request, so a test can measure what the client does.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <cstddef>
#include <cstdio>
#include <functional>
#include <future>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace qorb::test {

struct fake_request {
  std::string path;  ///< e.g. "/v3/watch"
  std::string body;
};

/// What the fake member sends for one request.
struct fake_reply {
  std::string bytes;  ///< sent as they are
  bool hold = false;  ///< keep the connection open afterwards (a stream)
};

/// A 200 reply with `json` as its body (Content-Length).
inline fake_reply json_reply(const std::string& json) {
  return {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
              std::to_string(json.size()) + "\r\n\r\n" + json,
          false};
}

/// The header of a chunked 200 reply (a watch stream's start).
inline std::string chunked_header() {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
}

/// One chunk holding `data`.
inline std::string chunk(const std::string& data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return size + data + "\r\n";
}

class fake_gateway {
 public:
  using handler = std::function<fake_reply(const fake_request&)>;

  explicit fake_gateway(handler h)
      : handler_(std::move(h)),
        acceptor_(io_, asio::ip::tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0)),
        work_(io_.get_executor()) {
    asio::co_spawn(io_, accept(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  fake_gateway(const fake_gateway&) = delete;
  fake_gateway& operator=(const fake_gateway&) = delete;
  ~fake_gateway() {
    std::promise<void> closed;
    asio::post(io_, [&] {
      boost::system::error_code ec;
      acceptor_.close(ec);
      for (auto& weak : sockets_) {
        if (auto s = weak.lock()) s->close(ec);
      }
      closed.set_value();
    });
    closed.get_future().wait();
    work_.reset();
    io_.stop();
    thread_.join();
  }

  asio::ip::tcp::endpoint endpoint() const { return acceptor_.local_endpoint(); }

  std::size_t connections() const {
    std::lock_guard lock(mutex_);
    return connections_;
  }
  /// Requests to `path` so far (e.g. "/v3/watch").
  std::size_t count(const std::string& path) const {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& r : requests_) n += r.path == path ? 1 : 0;
    return n;
  }
  std::vector<fake_request> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

  /// Sends `bytes` on every connection held open (e.g. one more chunk of a
  /// watch stream); returns once written (loopback: at once).
  void push(std::string bytes) {
    std::promise<void> written;
    asio::post(io_, [&] {
      for (auto& weak : held_) {
        boost::system::error_code ec;
        if (auto s = weak.lock()) asio::write(*s, asio::buffer(bytes), ec);
      }
      written.set_value();
    });
    written.get_future().wait();
  }

 private:
  using socket_ptr = std::shared_ptr<asio::ip::tcp::socket>;

  asio::awaitable<void> accept() {
    for (;;) {
      auto socket = std::make_shared<asio::ip::tcp::socket>(io_);
      boost::system::error_code ec;
      co_await acceptor_.async_accept(*socket, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      {
        std::lock_guard lock(mutex_);
        ++connections_;
      }
      std::erase_if(sockets_, [](const auto& w) { return w.expired(); });
      sockets_.push_back(socket);
      asio::co_spawn(io_, serve(socket), asio::detached);
    }
  }

  asio::awaitable<void> serve(socket_ptr socket) {
    std::string in;
    boost::system::error_code ec;
    for (;;) {
      const auto header_end =
          co_await asio::async_read_until(*socket, asio::dynamic_buffer(in), "\r\n\r\n",
                                          asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      const std::string header = in.substr(0, header_end);
      in.erase(0, header_end);
      fake_request request;
      const auto space = header.find(' ');
      request.path = header.substr(space + 1, header.find(' ', space + 1) - space - 1);
      std::size_t length = 0;
      for (const char* name : {"Content-Length: ", "content-length: "}) {
        if (const auto at = header.find(name); at != std::string::npos) {
          length = std::stoul(header.substr(at + std::char_traits<char>::length(name)));
        }
      }
      if (in.size() < length) {
        co_await asio::async_read(*socket, asio::dynamic_buffer(in),
                                  asio::transfer_exactly(length - in.size()),
                                  asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
      }
      request.body = in.substr(0, length);
      in.erase(0, length);
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(request);
      }
      const auto reply = handler_(request);
      co_await asio::async_write(*socket, asio::buffer(reply.bytes),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      if (!reply.hold) {
        socket->shutdown(asio::ip::tcp::socket::shutdown_send, ec);
        socket->close(ec);
        co_return;
      }
      std::erase_if(held_, [](const auto& w) { return w.expired(); });
      held_.push_back(socket);
    }
  }

  handler handler_;
  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
  std::list<std::weak_ptr<asio::ip::tcp::socket>> sockets_;  // on the io thread
  std::list<std::weak_ptr<asio::ip::tcp::socket>> held_;     // on the io thread
  mutable std::mutex mutex_;
  std::size_t connections_ = 0;
  std::vector<fake_request> requests_;
};

}  // namespace qorb::test
