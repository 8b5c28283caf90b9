// SPDX-License-Identifier: BSL-1.0
// The DNS resolver's I/O: c-ares channels (one per DNS server) driven by
// the pool's executor through c-ares' socket-state callback. The decisions
// live in dns_lookup/dns_state; this file sends, waits and reports.
#include <qorb/resolvers/dns.hpp>

#include "resolvers/dns_state.hpp"

#include <ares.h>
#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <thread>

namespace qorb {

namespace {

using namespace detail::dns;
using strand_type = asio::strand<asio::any_io_executor>;
using udp_endpoint = asio::ip::udp::endpoint;

void init_cares_once() {
  // ares_library_init is not thread-safe; a function-local static is.
  static const int rc = ares_library_init(ARES_LIB_INIT_ALL);
  static_cast<void>(rc);
}

std::string to_string(const udp_endpoint& e) {
  return qorb::to_string(asio::ip::tcp::endpoint(e.address(), e.port()));
}

std::string join(const std::vector<udp_endpoint>& servers) {
  std::string out;
  for (const auto& s : servers) out += (out.empty() ? "" : ", ") + to_string(s);
  return out.empty() ? "none" : out;
}

// The servers of /etc/resolv.conf, as c-ares reads them.
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

// What c-ares made of one query.
struct query_outcome {
  bool answered = false;  // `bytes` holds a response (any rcode)
  bool timeout = false;
  std::vector<std::uint8_t> bytes;
  std::string reason;
};

// One c-ares channel talking to one DNS server. c-ares owns the sockets;
// each is watched through a stream_descriptor that is released, never
// closed. Every member is used on the strand only (or by the destructor,
// once nothing else can reach the object).
class server_channel : public std::enable_shared_from_this<server_channel> {
 public:
  using completion = std::function<void(query_outcome)>;

  server_channel(strand_type strand, const udp_endpoint& server, std::chrono::milliseconds timeout)
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

  server_channel(const server_channel&) = delete;
  server_channel& operator=(const server_channel&) = delete;
  ~server_channel() { close(); }

  // Sends `q`; `done` is posted to the strand with the outcome, unless the
  // channel is closed first.
  void send(const question& q, completion done) {
    if (!channel_) {
      query_outcome failed;
      failed.reason = error_.empty() ? "resolver stopped" : error_;
      asio::post(strand_, [done = std::move(done), failed = std::move(failed)]() mutable {
        done(std::move(failed));
      });
      return;
    }
    unsigned char* buf = nullptr;
    int len = 0;
    const int rc = ares_create_query(q.name.c_str(), 1 /* IN */, static_cast<int>(q.type), 0,
                                     1 /* recursion desired */, &buf, &len, 0);
    if (rc != ARES_SUCCESS) {
      query_outcome failed;
      failed.reason = std::string("cannot encode the query: ") + ares_strerror(rc);
      asio::post(strand_, [done = std::move(done), failed = std::move(failed)]() mutable {
        done(std::move(failed));
      });
      return;
    }
    auto* p = new pending{strand_, std::move(done)};
    // c-ares may call on_answer from inside ares_send; on_answer only posts.
    ares_send(channel_, buf, len, &server_channel::on_answer, p);
    ares_free_string(buf);
    arm_timer();
  }

  // Cancels everything: pending queries are dropped without completion.
  void close() {
    if (!channel_) return;
    auto* channel = channel_;
    ares_destroy(channel);  // closes its sockets through on_socket_state
    channel_ = nullptr;
    for (auto& [fd, w] : watches_) release(*w);
    watches_.clear();
    timer_.cancel();
  }

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

  static void on_answer(void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
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

  static void on_socket_state(void* data, ares_socket_t fd, int readable, int writable) {
    static_cast<server_channel*>(data)->socket_state(fd, readable != 0, writable != 0);
  }

  void socket_state(int fd, bool readable, bool writable) {
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

  static void release(fd_watch& w) {
    w.open = false;
    // c-ares owns the fd: stop watching it (pending waits end with
    // operation_aborted) but never close it.
    static_cast<void>(w.descriptor.release());
  }

  void arm(const std::shared_ptr<fd_watch>& w, int fd) {
    if (w->want_read && !w->reading) {
      w->reading = true;
      w->descriptor.async_wait(asio::posix::stream_descriptor::wait_read,
                               [self = shared_from_this(), w, fd](boost::system::error_code ec) {
                                 w->reading = false;
                                 if (ec || !w->open || !self->channel_) return;
                                 self->process(fd, ARES_SOCKET_BAD);
                                 if (w->open) self->arm(w, fd);
                               });
    }
    if (w->want_write && !w->writing) {
      w->writing = true;
      w->descriptor.async_wait(asio::posix::stream_descriptor::wait_write,
                               [self = shared_from_this(), w, fd](boost::system::error_code ec) {
                                 w->writing = false;
                                 if (ec || !w->open || !self->channel_) return;
                                 self->process(ARES_SOCKET_BAD, fd);
                                 if (w->open) self->arm(w, fd);
                               });
    }
  }

  void process(int read_fd, int write_fd) {
    ares_process_fd(channel_, read_fd, write_fd);
    arm_timer();
  }

  // c-ares' timeouts are driven by calls to ares_process_fd; this timer
  // makes that call when the earliest pending query is due. Re-armed after
  // every send and every processing, since sock_state_cb alone says nothing
  // about queries to a server that never answers.
  void arm_timer() {
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

  strand_type strand_;
  ares_channel channel_ = nullptr;
  std::string error_;
  std::map<int, std::shared_ptr<fd_watch>> watches_;
  asio::steady_timer timer_;
};

}  // namespace

std::optional<asio::ip::udp::endpoint> parse_dns_server(std::string_view text) {
  const auto parsed = parse_endpoint(text, 53);
  if (!parsed || parsed->port() == 0) return std::nullopt;
  return asio::ip::udp::endpoint(parsed->address(), parsed->port());
}

class dns_resolver::impl : public std::enable_shared_from_this<impl> {
 public:
  explicit impl(dns_resolver_config config) : config_(std::move(config)), log_(config_.logger) {}

  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;

  ~impl() {
    for (auto& channel : channels_) channel->close();
  }

  void start(asio::any_io_executor executor, listener on_change) {
    {
      std::lock_guard lock(start_mutex_);
      if (strand_ || stopped_) return;
      strand_.emplace(asio::make_strand(std::move(executor)));
      round_timer_.emplace(*strand_);
      expiry_timer_.emplace(*strand_);
      listener_ = std::move(on_change);
    }
    asio::post(*strand_, [self = shared_from_this()] { self->begin(); });
  }

  void stop() {
    if (callback_thread_.load() == std::this_thread::get_id()) {
      // Called from inside our own listener: the lock is ours already.
      stopped_ = true;
    } else {
      std::lock_guard lock(callback_mutex_);
      stopped_ = true;
    }
    std::lock_guard lock(start_mutex_);
    if (!strand_ || shutdown_posted_) return;
    shutdown_posted_ = true;
    // Always posted, never run inline: stop() may come from inside a
    // handler of ours that is still using what shutdown() tears down.
    asio::post(*strand_, [self = shared_from_this()] { self->shutdown(); });
  }

  dns_resolver_stats stats() const {
    std::lock_guard lock(state_mutex_);
    return {rounds_, servers_.stats()};
  }

  std::vector<dns_backend_info> backends() const {
    std::lock_guard lock(state_mutex_);
    return table_.info();
  }

 private:
  enum class kind { service, discovery };

  struct active_lookup {
    std::size_t server;
    std::uint64_t round;
    kind what;
    server_lookup fsm;
  };

  struct round_state {
    std::uint64_t id;
    lookup_round round;
  };

  // Runs `f` (a user callback) unless stopped; stop() waits for it.
  template <class F>
  void invoke_callback(F&& f) {
    std::lock_guard lock(callback_mutex_);
    if (stopped_) return;
    struct thread_mark {
      std::atomic<std::thread::id>& id;
      explicit thread_mark(std::atomic<std::thread::id>& i) : id(i) {
        id = std::this_thread::get_id();
      }
      ~thread_mark() { id = std::thread::id(); }
    } mark(callback_thread_);
    f();
  }

  const std::string& name() const { return config_.service; }

  lookup_limits limits() const {
    lookup_limits l;
    l.max_backends = std::max<std::size_t>(1, config_.max_backends_per_answer);
    const auto max_ttl = std::clamp<std::chrono::seconds::rep>(config_.max_ttl.count(), 0,
                                                               0x7FFFFFFF);  // RFC 2181
    l.max_ttl = static_cast<std::uint32_t>(max_ttl);
    return l;
  }

  void begin() {
    if (stopped_) return;
    auto servers = config_.servers;
    if (servers.empty()) {
      std::string error;
      servers = system_servers(error);
      if (log_ && !error.empty()) {
        log_->warn("dns resolver {}: reading the system's DNS servers: {}", name(), error);
      }
    }
    if (log_) {
      log_->info("dns resolver {}: started, servers: {}{}", name(), join(servers),
                 config_.resolver_service
                     ? ", discovering more through " + *config_.resolver_service
                     : std::string());
    }
    for (const auto& s : servers) add_server(s, false);
    start_round();
  }

  std::pair<std::size_t, bool> add_server(const udp_endpoint& server, bool discovered) {
    std::pair<std::size_t, bool> added;
    {
      std::lock_guard lock(state_mutex_);
      added = servers_.add(server, discovered);
    }
    if (added.second) {
      channels_.push_back(
          std::make_shared<server_channel>(*strand_, server, config_.query_timeout));
    }
    return added;
  }

  void shutdown() {
    round_timer_->cancel();
    expiry_timer_->cancel();
    lookups_.clear();
    service_round_.reset();
    discovery_round_.reset();
    for (auto& channel : channels_) channel->close();
    if (log_) log_->info("dns resolver {}: stopped", name());
  }

  void start_round() {
    if (stopped_) return;
    std::vector<std::size_t> order;
    {
      std::lock_guard lock(state_mutex_);
      order = servers_.ask_order();
    }
    const auto id = ++next_round_id_;
    if (log_) log_->debug("dns resolver {}: round {}, {} servers", name(), id, order.size());
    service_round_.emplace(round_state{id, lookup_round(order, config_.max_dns_concurrency)});
    start_lookups(kind::service, id, service_round_->round.start());
    if (config_.resolver_service && !discovery_round_) {
      discovery_round_.emplace(round_state{id, lookup_round(order, config_.max_dns_concurrency)});
      start_lookups(kind::discovery, id, discovery_round_->round.start());
      if (discovery_round_->round.done()) end_round(kind::discovery);
    }
    if (service_round_ && service_round_->round.done()) end_round(kind::service);
  }

  void start_lookups(kind what, std::uint64_t round, const std::vector<std::size_t>& servers) {
    for (const auto server : servers) {
      const auto id = ++next_lookup_id_;
      const std::string& target =
          what == kind::service ? config_.service : *config_.resolver_service;
      server_lookup fsm(target, config_.family,
                        what == kind::service ? config_.fallback_port : std::nullopt, limits());
      const auto first = fsm.first_question();
      lookups_.emplace(id, active_lookup{server, round, what, std::move(fsm)});
      {
        std::lock_guard lock(state_mutex_);
        servers_.lookup_started(server);
      }
      send(id, server, first);
    }
  }

  void send(std::uint64_t lookup_id, std::size_t server, const question& q) {
    if (log_ && log_->should_log(spdlog::level::debug)) {
      log_->debug("dns resolver {}: asking {} for {} {}", name(), server_name(server),
                  to_string(q.type), q.name);
    }
    channels_[server]->send(q, [weak = weak_from_this(), lookup_id, q](query_outcome outcome) {
      if (auto self = weak.lock()) self->on_query_done(lookup_id, q, std::move(outcome));
    });
  }

  std::string server_name(std::size_t server) const {
    std::lock_guard lock(state_mutex_);
    return to_string(servers_.stats(server).server);
  }

  void on_query_done(std::uint64_t lookup_id, const question& q, query_outcome outcome) {
    if (stopped_) return;
    const auto it = lookups_.find(lookup_id);
    if (it == lookups_.end()) return;
    auto& l = it->second;
    std::vector<question> next;
    if (outcome.answered) {
      if (log_ && log_->should_log(spdlog::level::debug)) {
        log_->debug("dns resolver {}: {} answered {} {} ({} bytes)", name(), server_name(l.server),
                    to_string(q.type), q.name, outcome.bytes.size());
      }
      next = l.fsm.on_answer(q, outcome.bytes);
    } else {
      l.fsm.on_failure(q, {outcome.timeout, outcome.reason});
    }
    for (const auto& n : next) send(lookup_id, l.server, n);
    if (l.fsm.done()) finish_lookup(it);
  }

  void finish_lookup(std::map<std::uint64_t, active_lookup>::iterator it) {
    const auto server = it->second.server;
    const auto round = it->second.round;
    const auto what = it->second.what;
    const lookup_result result = it->second.fsm.result();
    lookups_.erase(it);
    {
      std::lock_guard lock(state_mutex_);
      servers_.lookup_finished(server, result);
    }
    const char* looked_up = what == kind::service ? "service" : "resolver service";
    if (log_ && result.capped) {
      log_->warn(
          "dns resolver {}: {} listed more than {} backends for the {}; using the first {} "
          "(max_backends_per_answer)",
          name(), server_name(server), limits().max_backends, looked_up, limits().max_backends);
    }
    if (log_ && result.port_zero > 0) {
      log_->warn("dns resolver {}: {} listed {} SRV records with port 0 for the {}; skipped",
                 name(), server_name(server), result.port_zero, looked_up);
    }
    if (log_ && result.ttls_clamped > 0) {
      log_->warn("dns resolver {}: {} gave {} backends a TTL above {} s (max_ttl); clamped", name(),
                 server_name(server), result.ttls_clamped, limits().max_ttl);
    }
    if (log_) {
      switch (result.status) {
        case lookup_status::records:
          log_->debug("dns resolver {}: {} has {} backends for the {}", name(), server_name(server),
                      result.backends.size(), looked_up);
          break;
        case lookup_status::no_records:
          log_->debug("dns resolver {}: {} has no records for the {}", name(), server_name(server),
                      looked_up);
          break;
        case lookup_status::timeout:
        case lookup_status::error:
          log_->warn("dns resolver {}: DNS server {} failed ({}): {}", name(), server_name(server),
                     detail::dns::to_string(result.status), result.reason);
          break;
      }
    }
    auto& state = what == kind::service ? service_round_ : discovery_round_;
    if (!state || state->id != round || state->round.done()) return;
    start_lookups(what, round, state->round.finished(server, result));
    // start_lookups never completes a lookup inline, so `state` is intact.
    if (state->round.done()) end_round(what);
  }

  void end_round(kind what) {
    if (what == kind::discovery) {
      end_discovery_round();
      return;
    }
    const auto outcome = service_round_->round.outcome();
    const auto winner = service_round_->round.winner();
    service_round_.reset();
    const auto now = clock::now();
    bool changed = false;
    {
      std::lock_guard lock(state_mutex_);
      ++rounds_;
      switch (outcome) {
        case dns_lookup_outcome::records:
          table_.hold(false);
          changed = table_.merge(winner->backends, now, config_.hardcoded_ttl);
          break;
        case dns_lookup_outcome::no_records:
          table_.hold(false);
          changed = table_.expire(now);
          break;
        case dns_lookup_outcome::failed:
          table_.hold(true);
          break;
      }
    }
    std::optional<std::chrono::milliseconds> shortest_ttl = config_.hardcoded_ttl;
    if (outcome == dns_lookup_outcome::records && !shortest_ttl) {
      for (const auto& b : winner->backends) {
        const std::chrono::milliseconds ttl = std::chrono::seconds(b.ttl);
        if (!shortest_ttl || ttl < *shortest_ttl) shortest_ttl = ttl;
      }
    }
    const auto delay = delay_after(outcome, config_.query_interval,
                                   config_.query_retry_if_no_records_found, shortest_ttl);
    if (log_) {
      if (outcome == dns_lookup_outcome::failed) {
        log_->warn(
            "dns resolver {}: every DNS server failed; keeping the last known backends, "
            "next try in {} ms",
            name(), delay.count());
      } else {
        log_->debug("dns resolver {}: round ended with {}, next in {} ms", name(),
                    outcome == dns_lookup_outcome::records ? "records" : "no records",
                    delay.count());
      }
    }
    if (changed) publish();
    arm_expiry();
    round_timer_->expires_after(delay);
    round_timer_->async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->start_round();
    });
    if (config_.on_lookup_done) invoke_callback([&] { config_.on_lookup_done(outcome); });
  }

  void end_discovery_round() {
    const auto winner = discovery_round_->round.winner();
    discovery_round_.reset();
    if (!winner) return;
    std::vector<std::size_t> fresh;
    for (const auto& b : winner->backends) {
      const auto [id, is_new] = add_server(udp_endpoint(b.address, b.port), true);
      if (!is_new) continue;
      fresh.push_back(id);
      if (log_) {
        log_->info("dns resolver {}: discovered DNS server {} ({})", name(), server_name(id),
                   b.target);
      }
    }
    if (!fresh.empty() && service_round_) {
      const auto round = service_round_->id;
      start_lookups(kind::service, round, service_round_->round.add(fresh));
    }
  }

  void arm_expiry() {
    std::optional<clock::time_point> next;
    {
      std::lock_guard lock(state_mutex_);
      next = table_.next_expiry();
    }
    if (!next) {
      expiry_timer_->cancel();
      return;
    }
    expiry_timer_->expires_at(*next);
    expiry_timer_->async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->stopped_) return;
      bool changed = false;
      {
        std::lock_guard lock(self->state_mutex_);
        changed = self->table_.expire(clock::now());
      }
      if (changed) self->publish();
      self->arm_expiry();
    });
  }

  void publish() {
    backend_map current;
    {
      std::lock_guard lock(state_mutex_);
      current = table_.backends();
    }
    if (current == published_) return;
    if (log_ && log_->should_log(spdlog::level::info)) {
      std::string added;
      std::string removed;
      for (const auto& [n, b] : current) {
        if (!published_.contains(n)) added += " +" + n;
      }
      for (const auto& [n, b] : published_) {
        if (!current.contains(n)) removed += " -" + n;
      }
      log_->info("dns resolver {}: backends changed:{}{} ({} now)", name(), added, removed,
                 current.size());
    }
    published_ = current;
    invoke_callback([&] { listener_(current); });
  }

  const dns_resolver_config config_;
  const logger_ptr log_;

  std::mutex start_mutex_;  // strand_, timers and listener_ are set once, under it
  std::optional<strand_type> strand_;
  std::optional<asio::steady_timer> round_timer_;
  std::optional<asio::steady_timer> expiry_timer_;
  listener listener_;
  bool shutdown_posted_ = false;

  // On the strand only.
  std::vector<std::shared_ptr<server_channel>> channels_;  // by server id
  std::map<std::uint64_t, active_lookup> lookups_;
  std::uint64_t next_lookup_id_ = 0;
  std::uint64_t next_round_id_ = 0;
  std::optional<round_state> service_round_;
  std::optional<round_state> discovery_round_;
  backend_map published_;

  // Written on the strand, read by stats() and backends() from anywhere.
  mutable std::mutex state_mutex_;
  server_registry servers_;
  backend_table table_;
  std::uint64_t rounds_ = 0;

  // Held while a user callback runs, so that stop() can promise no call
  // starts after it returns.
  std::mutex callback_mutex_;
  std::atomic<bool> stopped_{false};
  std::atomic<std::thread::id> callback_thread_{};
};

dns_resolver::dns_resolver(dns_resolver_config config)
    : impl_(std::make_shared<impl>(std::move(config))) {}

dns_resolver::~dns_resolver() { impl_->stop(); }

void dns_resolver::start(asio::any_io_executor executor, listener on_change) {
  impl_->start(std::move(executor), std::move(on_change));
}

void dns_resolver::stop() { impl_->stop(); }

dns_resolver_stats dns_resolver::stats() const { return impl_->stats(); }

std::vector<dns_backend_info> dns_resolver::backends() const { return impl_->backends(); }

}  // namespace qorb
