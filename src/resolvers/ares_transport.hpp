// SPDX-License-Identifier: BSL-1.0
// qorb internal: the DNS resolver's transport. c-ares channels (one per DNS
// server) driven by an Asio strand through c-ares' socket-state callback:
// they send questions and hand back the bytes of the answers. No decisions
// here; those are in dns_lookup/dns_state.
#pragma once

#include "resolvers/dns_lookup.hpp"

#include <ares.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace qorb::detail::dns {

using strand_type = asio::strand<asio::any_io_executor>;
using udp_endpoint = asio::ip::udp::endpoint;

/// The servers of /etc/resolv.conf, as c-ares reads them; `error` says why
/// there are none when reading them failed.
std::vector<udp_endpoint> system_servers(std::string& error);

/// What c-ares made of one query.
struct query_outcome {
  bool answered = false;  // `bytes` holds a response (any rcode)
  bool timeout = false;
  std::vector<std::uint8_t> bytes;
  std::string reason;
};

/// One c-ares channel talking to one DNS server. c-ares owns the sockets;
/// each is watched through a stream_descriptor that is released, never
/// closed. Every member is used on the strand only (or by the destructor,
/// once nothing else can reach the object).
class server_channel : public std::enable_shared_from_this<server_channel> {
 public:
  using completion = std::function<void(query_outcome)>;

  server_channel(strand_type strand, const udp_endpoint& server, std::chrono::milliseconds timeout);
  server_channel(const server_channel&) = delete;
  server_channel& operator=(const server_channel&) = delete;
  ~server_channel() { close(); }

  /// Sends `q`; `done` is posted to the strand with the outcome, unless the
  /// channel is closed first.
  void send(const question& q, completion done);

  /// Cancels everything: pending queries are dropped without completion.
  void close();

 private:
  struct pending {
    strand_type strand;
    completion done;
  };

  struct fd_watch {
    explicit fd_watch(const strand_type& strand) : descriptor(strand) {}
    asio::posix::stream_descriptor descriptor;
    bool want_read = false;
    bool want_write = false;
    bool reading = false;
    bool writing = false;
    bool open = true;
  };

  static void on_answer(void* arg, int status, int timeouts, unsigned char* abuf, int alen);
  static void on_socket_state(void* data, ares_socket_t fd, int readable, int writable);
  void socket_state(int fd, bool readable, bool writable);
  static void release(fd_watch& w);
  void arm(const std::shared_ptr<fd_watch>& w, int fd);
  // Waits for `fd` to be readable (`read`) or writable, then lets c-ares
  // process it.
  void wait(const std::shared_ptr<fd_watch>& w, int fd, bool read);
  void process(int read_fd, int write_fd);
  void arm_timer();
  void fail(completion done, std::string reason);

  strand_type strand_;
  ares_channel channel_ = nullptr;
  std::string error_;
  std::map<int, std::shared_ptr<fd_watch>> watches_;
  asio::steady_timer timer_;
};

}  // namespace qorb::detail::dns
