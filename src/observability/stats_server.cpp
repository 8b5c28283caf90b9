// SPDX-License-Identifier: BSL-1.0
// stats_server: the listener, accepting clients within the limits
// (stats_limits), and the public class. The pools and their snapshot are in
// stats_registry, the output in stats_json and stats_prometheus, each client
// in stats_session.
#include <qorb/stats_server.hpp>

#include <netinet/in.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <list>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "observability/stats_limits.hpp"
#include "observability/stats_server_state.hpp"
#include "observability/stats_session.hpp"

namespace qorb {
namespace {

using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using detail::stats_limits::check_config;
using detail::stats_limits::refuse;
using detail::stats_limits::within_fd_budget;

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

}  // namespace

asio::awaitable<void> detail::stats_server_state::accept_loop() {
  const auto self = shared_from_this();
  asio::steady_timer pause(acceptor.get_executor());
  constexpr auto first_pause = 10ms, last_pause = 1000ms;
  auto next_pause = first_pause;
  for (;;) {
    auto [ec] = co_await acceptor.async_wait(tcp::acceptor::wait_read, use_nothrow);
    if (!acceptor.is_open() || ec == asio::error::operation_aborted) co_return;
    // accept4 with SOCK_CLOEXEC, as Asio's accept cannot: a client's socket
    // must not leak into processes the application starts.
    const int fd = ec ? -1 : ::accept4(acceptor.native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (!ec &&
          (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)) {
        continue;
      }
      // Out of descriptors, most likely (EMFILE, ENFILE), or of kernel
      // memory: stop accepting for a while, longer each time, rather than
      // spin; the clients wait in the listen backlog.
      accept_errors.fetch_add(1, std::memory_order_relaxed);
      const auto why = ec ? ec.message() : std::generic_category().message(errno);
      log_limited(accept_log, spdlog::level::warn,
                  "stats_server: accept: {}; pausing accepts for {} ms", why, next_pause.count());
      pause.expires_after(next_pause);
      next_pause = std::min(next_pause * 2, last_pause);
      co_await pause.async_wait(use_nothrow);
      continue;
    }
    next_pause = first_pause;
    if (connections.load(std::memory_order_relaxed) >= config.max_connections ||
        !within_fd_budget(fd, config.reserved_fds)) {
      refused.fetch_add(1, std::memory_order_relaxed);
      refuse(fd);
      log_limited(refuse_log, spdlog::level::warn,
                  "stats_server: refused a client: {} clients connected (max_connections {}, "
                  "reserved_fds {})",
                  connections.load(std::memory_order_relaxed), config.max_connections,
                  config.reserved_fds);
      continue;
    }
    connections.fetch_add(1, std::memory_order_relaxed);
    tcp::socket socket(asio::make_strand(executor));
    boost::system::error_code aec;
    socket.assign(acceptor.local_endpoint().protocol(), fd, aec);
    if (aec) {
      ::close(fd);
      connections.fetch_sub(1, std::memory_order_relaxed);
      continue;
    }
    auto session = std::make_shared<detail::stats_session>(self, std::move(socket));
    if (!track(session)) co_return;
    asio::co_spawn(session->get_executor(), session->run(), asio::detached);
  }
}

// --- stats_server --------------------------------------------------------------

stats_server::stats_server(asio::any_io_executor executor, stats_server_config config)
    : state_((check_config(config), std::make_shared<detail::stats_server_state>(
                                        std::move(executor), std::move(config)))) {}

stats_server::~stats_server() { stop(); }

void stats_server::attach(std::string pool_name, stats_source source) {
  if (pool_name.empty()) throw std::invalid_argument("qorb: stats_server::attach: empty name");
  if (!source) throw std::invalid_argument("qorb: stats_server::attach: empty source");
  state_->registry.attach(std::move(pool_name), std::move(source));
}

void stats_server::detach(const std::string& pool_name) { state_->registry.detach(pool_name); }

void stats_server::start() {
  std::lock_guard lock(state_->mu);
  if (state_->started || state_->stopped) {
    throw std::logic_error("qorb: stats_server::start: already started or stopped");
  }
  auto& acceptor = state_->acceptor;
  const auto& listen = state_->config.listen;
  // Opened with SOCK_CLOEXEC (Asio cannot): the listener must not leak into
  // processes the application starts, which would keep the port bound.
  const int fd =
      ::socket(listen.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP);
  if (fd < 0) {
    throw boost::system::system_error(errno, boost::system::system_category(),
                                      "qorb: stats_server: socket");
  }
  acceptor.assign(listen.protocol(), fd);
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  acceptor.bind(listen);
  acceptor.listen();
  state_->endpoint = acceptor.local_endpoint();
  state_->started = true;
  asio::co_spawn(acceptor.get_executor(), state_->accept_loop(), asio::detached);
}

void stats_server::stop() {
  std::list<std::weak_ptr<detail::stats_session>> sessions;
  {
    std::lock_guard lock(state_->mu);
    if (state_->stopped) return;
    state_->stopped = true;
    sessions.swap(state_->sessions);
  }
  // No output is built from here on: jobs hold the server plainly, and
  // sessions waiting for output are closed below.
  state_->builder.stop();
  state_->builder.join();
  {
    std::lock_guard lock(state_->mu);
    if (!state_->started) return;
  }
  asio::dispatch(state_->acceptor.get_executor(), [s = state_] {
    boost::system::error_code ignored;
    s->acceptor.close(ignored);
  });
  for (auto& weak : sessions) {
    if (auto session = weak.lock()) {
      asio::dispatch(session->get_executor(), [session] { session->close(); });
    }
  }
}

stats_server_counters stats_server::counters() const {
  const auto& s = *state_;
  stats_server_counters c;
  c.connections = s.connections.load(std::memory_order_relaxed);
  c.refused = s.refused.load(std::memory_order_relaxed);
  c.accept_errors = s.accept_errors.load(std::memory_order_relaxed);
  c.malformed_requests = s.malformed.load(std::memory_order_relaxed);
  c.snapshots = s.registry.snapshots();
  return c;
}

asio::ip::tcp::endpoint stats_server::local_endpoint() const {
  std::lock_guard lock(state_->mu);
  if (!state_->endpoint) throw std::logic_error("qorb: stats_server::local_endpoint: not started");
  return *state_->endpoint;
}

}  // namespace qorb
