// SPDX-License-Identifier: BSL-1.0
// The DNS resolver: wires the c-ares transport (ares_transport) to the
// decisions (dns_lookup, dns_state) on the pool's executor, and reports:
// the clock is read, timers armed, logs written and listeners called here.
#include <qorb/resolvers/dns.hpp>

#include "resolvers/ares_transport.hpp"
#include "resolvers/callback_gate.hpp"
#include "resolvers/dns_state.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <map>
#include <mutex>

namespace qorb {

namespace {

using namespace detail::dns;

std::string to_string(const udp_endpoint& e) {
  return qorb::to_string(asio::ip::tcp::endpoint(e.address(), e.port()));
}

std::string join(const std::vector<udp_endpoint>& servers) {
  std::string out;
  for (const auto& s : servers) out += (out.empty() ? "" : ", ") + to_string(s);
  return out.empty() ? "none" : out;
}

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
      if (strand_ || gate_.closed()) return;
      strand_.emplace(asio::make_strand(std::move(executor)));
      round_timer_.emplace(*strand_);
      expiry_timer_.emplace(*strand_);
      listener_ = std::move(on_change);
    }
    asio::post(*strand_, [self = shared_from_this()] { self->begin(); });
  }

  void stop() {
    gate_.close();
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

  const std::string& name() const { return config_.service; }

  lookup_limits limits() const { return limits_of(config_); }

  void begin() {
    if (gate_.closed()) return;
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
    if (gate_.closed()) return;
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
    if (gate_.closed()) return;
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
    round_decision decided;
    {
      std::lock_guard lock(state_mutex_);
      ++rounds_;
      decided = detail::dns::end_round(table_, outcome, winner, config_, clock::now());
    }
    const auto delay = decided.next_round;
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
    if (decided.changed) publish();
    arm_expiry();
    round_timer_->expires_after(delay);
    round_timer_->async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->start_round();
    });
    if (config_.on_lookup_done) gate_.run([&] { config_.on_lookup_done(outcome); });
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
      if (ec || self->gate_.closed()) return;
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
      log_->info("dns resolver {}: backends changed:{} ({} now)", name(),
                 describe_change(published_, current), current.size());
    }
    published_ = current;
    gate_.run([&] { listener_(current); });
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

  // Through which user callbacks run, so that stop() can promise no call
  // starts after it returns.
  detail::callback_gate gate_;
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
