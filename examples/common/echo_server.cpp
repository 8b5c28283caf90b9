// SPDX-License-Identifier: BSL-1.0
#include "common/echo_server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <future>
#include <list>
#include <optional>
#include <thread>

namespace qorb::examples {

namespace asio = boost::asio;
using asio::ip::tcp;

struct echo_server::impl {
  asio::io_context io;
  tcp::endpoint ep;
  std::list<tcp::acceptor> acceptors;  // closed ones stay until the end
  // While stopped, the port stays bound (not listening), so connects are
  // refused and no other socket can take the port meanwhile.
  std::optional<tcp::acceptor> placeholder;
  std::list<std::shared_ptr<tcp::socket>> sessions;  // only touched on `io`'s thread
  std::atomic<std::size_t> accepted{0};
  std::atomic<std::size_t> open{0};
  std::thread thread;

  asio::awaitable<void> session(std::shared_ptr<tcp::socket> socket) {
    char data[4096];
    try {
      for (;;) {
        const std::size_t n =
            co_await socket->async_read_some(asio::buffer(data), asio::use_awaitable);
        co_await asio::async_write(*socket, asio::buffer(data, n), asio::use_awaitable);
      }
    } catch (const std::exception&) {
    }
    sessions.remove(socket);
    --open;
  }

  asio::awaitable<void> accept_loop(tcp::acceptor& a) {
    try {
      for (;;) {
        auto socket = std::make_shared<tcp::socket>(io);
        co_await a.async_accept(*socket, asio::use_awaitable);
        // An accept that completed just before stop() closed the acceptor
        // is still delivered: the server is stopped, so refuse it.
        if (!a.is_open()) {
          boost::system::error_code ignored;
          socket->close(ignored);
          break;
        }
        ++accepted;
        ++open;
        sessions.push_back(socket);
        asio::co_spawn(io, session(socket), asio::detached);
      }
    } catch (const std::exception&) {
    }
  }

  void listen() {
    auto& acceptor = acceptors.emplace_back(io);
    acceptor.open(ep.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen();
    ep = acceptor.local_endpoint();
    asio::co_spawn(io, accept_loop(acceptor), asio::detached);
  }

  // Runs `f` on the server's thread and waits for it.
  template <class F>
  void on_server(F f) {
    std::promise<void> done;
    asio::post(io, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }
};

echo_server::echo_server(const asio::ip::address& address, unsigned short port)
    : impl_(std::make_unique<impl>()) {
  impl_->ep = tcp::endpoint(address, port);
  impl_->listen();
  impl_->thread = std::thread([this] {
    auto guard = asio::make_work_guard(impl_->io);
    impl_->io.run();
  });
}

echo_server::~echo_server() {
  stop();
  impl_->io.stop();
  impl_->thread.join();
}

tcp::endpoint echo_server::endpoint() const { return impl_->ep; }
std::size_t echo_server::accepted() const { return impl_->accepted; }
std::size_t echo_server::open_connections() const { return impl_->open; }

void echo_server::stop() {
  impl_->on_server([this] {
    for (auto& a : impl_->acceptors) {
      boost::system::error_code ignored;
      a.close(ignored);
    }
    if (!impl_->placeholder) {
      boost::system::error_code ec;
      auto& p = impl_->placeholder.emplace(impl_->io);
      p.open(impl_->ep.protocol(), ec);
      if (!ec) p.set_option(tcp::acceptor::reuse_address(true), ec);
      if (!ec) p.bind(impl_->ep, ec);
    }
    for (auto& s : impl_->sessions) {
      boost::system::error_code ignored;
      s->shutdown(tcp::socket::shutdown_both, ignored);
      s->close(ignored);
    }
  });
}

void echo_server::restart() {
  impl_->on_server([this] {
    impl_->placeholder.reset();
    impl_->listen();
  });
}

}  // namespace qorb::examples
