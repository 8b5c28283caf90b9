// SPDX-License-Identifier: BSL-1.0
#include "resolvers/ares_transport.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <cstring>
#include <limits>

namespace qorb::detail::dns {

namespace {

void init_cares_once() {
  // ares_library_init is not thread-safe; a function-local static is.
  static const int rc = ares_library_init(ARES_LIB_INIT_ALL);
  static_cast<void>(rc);
}

}  // namespace

std::vector<udp_endpoint> system_servers(std::string& error) {
  init_cares_once();
  std::vector<udp_endpoint> out;
  ares_channel channel = nullptr;
  ares_options options{};
  char lookups[] = "b";
  options.lookups = lookups;
  if (const int rc = ares_init_options(&channel, &options, ARES_OPT_LOOKUPS); rc != ARES_SUCCESS) {
    error = ares_strerror(rc);
    return out;
  }
  ares_addr_port_node* list = nullptr;
  if (const int rc = ares_get_servers_ports(channel, &list); rc != ARES_SUCCESS) {
    error = ares_strerror(rc);
  }
  for (auto* node = list; node; node = node->next) {
    const auto port = static_cast<unsigned short>(node->udp_port ? node->udp_port : 53);
    if (node->family == AF_INET) {
      asio::ip::address_v4::bytes_type b;
      std::memcpy(b.data(), &node->addr.addr4, b.size());
      out.emplace_back(asio::ip::address_v4(b), port);
    } else if (node->family == AF_INET6) {
      asio::ip::address_v6::bytes_type b;
      std::memcpy(b.data(), &node->addr.addr6, b.size());
      out.emplace_back(asio::ip::address_v6(b), port);
    }
  }
  ares_free_data(list);
  ares_destroy(channel);
  return out;
}

server_channel::server_channel(strand_type strand, const udp_endpoint& server,
                               std::chrono::milliseconds timeout)
    : strand_(std::move(strand)), timer_(strand_) {
  init_cares_once();
  ares_options options{};
  // NOCHECKRESP: give every answer (SERVFAIL, REFUSED...) to qorb, which
  // decides what it means.
  options.flags = ARES_FLAG_NOCHECKRESP | ARES_FLAG_NOSEARCH;
  // Clamped to what c-ares takes (an int of milliseconds).
  options.timeout = static_cast<int>(std::clamp<std::chrono::milliseconds::rep>(
      timeout.count(), 1, std::numeric_limits<int>::max()));
  options.tries = 1;
  char lookups[] = "b";
  options.lookups = lookups;
  options.sock_state_cb = &server_channel::on_socket_state;
  options.sock_state_cb_data = this;
  const int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS |
                   ARES_OPT_SOCK_STATE_CB;
  if (const int rc = ares_init_options(&channel_, &options, mask); rc != ARES_SUCCESS) {
    channel_ = nullptr;
    error_ = std::string("c-ares init: ") + ares_strerror(rc);
    return;
  }
  ares_addr_port_node node{};
  node.next = nullptr;
  node.udp_port = node.tcp_port = server.port();
  if (server.address().is_v4()) {
    node.family = AF_INET;
    const auto b = server.address().to_v4().to_bytes();
    std::memcpy(&node.addr.addr4, b.data(), b.size());
  } else {
    node.family = AF_INET6;
    const auto b = server.address().to_v6().to_bytes();
    std::memcpy(&node.addr.addr6, b.data(), b.size());
  }
  if (const int rc = ares_set_servers_ports(channel_, &node); rc != ARES_SUCCESS) {
    error_ = std::string("c-ares set servers: ") + ares_strerror(rc);
    close();
  }
}

void server_channel::send(const question& q, completion done) {
  if (!channel_) {
    fail(std::move(done), error_.empty() ? "resolver stopped" : error_);
    return;
  }
  unsigned char* buf = nullptr;
  int len = 0;
  const int rc = ares_create_query(q.name.c_str(), 1 /* IN */, static_cast<int>(q.type), 0,
                                   1 /* recursion desired */, &buf, &len, 0);
  if (rc != ARES_SUCCESS) {
    fail(std::move(done), std::string("cannot encode the query: ") + ares_strerror(rc));
    return;
  }
  auto* p = new pending{strand_, std::move(done)};
  // c-ares may call on_answer from inside ares_send; on_answer only posts.
  ares_send(channel_, buf, len, &server_channel::on_answer, p);
  ares_free_string(buf);
  arm_timer();
}

void server_channel::fail(completion done, std::string reason) {
  query_outcome failed;
  failed.reason = std::move(reason);
  asio::post(strand_, [done = std::move(done), failed = std::move(failed)]() mutable {
    done(std::move(failed));
  });
}

void server_channel::close() {
  if (!channel_) return;
  auto* channel = channel_;
  ares_destroy(channel);  // closes its sockets through on_socket_state
  channel_ = nullptr;
  for (auto& [fd, w] : watches_) release(*w);
  watches_.clear();
  timer_.cancel();
}

void server_channel::on_answer(void* arg, int status, int /*timeouts*/, unsigned char* abuf,
                               int alen) {
  std::unique_ptr<pending> p(static_cast<pending*>(arg));
  if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) return;
  query_outcome outcome;
  if (status == ARES_SUCCESS && abuf && alen >= 0) {
    outcome.answered = true;
    outcome.bytes.assign(abuf, abuf + alen);
  } else {
    outcome.timeout = status == ARES_ETIMEOUT;
    outcome.reason = ares_strerror(status);
  }
  asio::post(p->strand, [done = std::move(p->done), outcome = std::move(outcome)]() mutable {
    done(std::move(outcome));
  });
}

void server_channel::on_socket_state(void* data, ares_socket_t fd, int readable, int writable) {
  static_cast<server_channel*>(data)->socket_state(fd, readable != 0, writable != 0);
}

void server_channel::socket_state(int fd, bool readable, bool writable) {
  auto it = watches_.find(fd);
  if (!readable && !writable) {
    if (it != watches_.end()) {
      release(*it->second);
      watches_.erase(it);
    }
    return;
  }
  if (it == watches_.end()) {
    auto w = std::make_shared<fd_watch>(strand_);
    boost::system::error_code ec;
    w->descriptor.assign(fd, ec);
    // Never throw through c-ares; an unwatched socket's query times out.
    if (ec) return;
    it = watches_.emplace(fd, std::move(w)).first;
  }
  it->second->want_read = readable;
  it->second->want_write = writable;
  arm(it->second, fd);
}

void server_channel::release(fd_watch& w) {
  w.open = false;
  // c-ares owns the fd: stop watching it (pending waits end with
  // operation_aborted) but never close it.
  static_cast<void>(w.descriptor.release());
}

void server_channel::arm(const std::shared_ptr<fd_watch>& w, int fd) {
  if (w->want_read && !w->reading) wait(w, fd, true);
  if (w->want_write && !w->writing) wait(w, fd, false);
}

void server_channel::wait(const std::shared_ptr<fd_watch>& w, int fd, bool read) {
  (read ? w->reading : w->writing) = true;
  w->descriptor.async_wait(
      read ? asio::posix::stream_descriptor::wait_read : asio::posix::stream_descriptor::wait_write,
      [self = shared_from_this(), w, fd, read](boost::system::error_code ec) {
        (read ? w->reading : w->writing) = false;
        if (ec || !w->open || !self->channel_) return;
        self->process(read ? fd : ARES_SOCKET_BAD, read ? ARES_SOCKET_BAD : fd);
        if (w->open) self->arm(w, fd);
      });
}

void server_channel::process(int read_fd, int write_fd) {
  ares_process_fd(channel_, read_fd, write_fd);
  arm_timer();
}

// c-ares' timeouts are driven by calls to ares_process_fd; this timer
// makes that call when the earliest pending query is due. Re-armed after
// every send and every processing, since sock_state_cb alone says nothing
// about queries to a server that never answers.
void server_channel::arm_timer() {
  if (!channel_) return;
  timeval tv{};
  if (!ares_timeout(channel_, nullptr, &tv)) {
    timer_.cancel();
    return;
  }
  timer_.expires_after(std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec));
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec || !self->channel_) return;
    self->process(ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  });
}

}  // namespace qorb::detail::dns
