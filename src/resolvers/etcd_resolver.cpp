// The etcd resolver: a range read of the prefix, then a watch from the
// next revision, on one member at a time, as one coroutine on a strand.
#include <qorb/resolvers/etcd.hpp>

#include "resolvers/etcd_codec.hpp"
#include "resolvers/etcd_http.hpp"
#include "resolvers/etcd_policy.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <map>
#include <mutex>

namespace qorb {

using namespace detail::etcd;

std::optional<etcd_location> parse_etcd_url(std::string_view text, std::string& error) {
  etcd_location out;
  bool has_prefix = false;
  while (!text.empty()) {
    const auto comma = text.find(',');
    auto url = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const std::string shown(url);
    if (!url.starts_with("http://")) {
      error = "'" + shown + "' is not an http:// URL";
      return std::nullopt;
    }
    url.remove_prefix(7);
    const auto slash = url.find('/');
    auto host = url.substr(0, slash);
    const auto path = slash == std::string_view::npos ? std::string_view() : url.substr(slash);
    std::string address(host);
    if (host.starts_with("localhost")) address = std::string("127.0.0.1").append(host.substr(9));
    const auto endpoint = parse_endpoint(address);
    if (!endpoint || endpoint->port() == 0) {
      error = "'" + shown + "' does not name an IP address and port, e.g. http://127.0.0.1:2379";
      return std::nullopt;
    }
    out.endpoints.push_back(*endpoint);
    if (path.size() > 1) {
      if (has_prefix && out.prefix != path) {
        error = "the URLs name different prefixes: '" + out.prefix + "' and '" +
                std::string(path) + "'";
        return std::nullopt;
      }
      has_prefix = true;
      out.prefix = std::string(path);
    }
  }
  if (out.endpoints.empty()) {
    error = "no URL";
    return std::nullopt;
  }
  return out;
}

namespace {

using strand_type = asio::strand<asio::any_io_executor>;
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

etcd_resolver_config checked(etcd_resolver_config config) {
  check_members("etcd_resolver_config", config.endpoints);
  if (config.prefix.empty()) {
    throw std::invalid_argument("etcd_resolver_config.prefix is empty (e.g. \"/services/echo/\")");
  }
  check_timing("etcd_resolver_config", config.request_timeout, config.retry_min,
               config.retry_max);
  return config;
}

}  // namespace

class etcd_resolver::impl : public std::enable_shared_from_this<impl> {
 public:
  explicit impl(etcd_resolver_config config)
      : config_(checked(std::move(config))), log_(config_.logger) {
    stats_.member = config_.endpoints.front();
  }

  void start(asio::any_io_executor executor, listener on_change) {
    {
      std::lock_guard lock(start_mutex_);
      if (strand_ || gate_.closed()) return;
      strand_.emplace(asio::make_strand(std::move(executor)));
      timer_.emplace(*strand_);
      listener_ = std::move(on_change);
    }
    asio::co_spawn(*strand_, run(shared_from_this()), asio::detached);
  }

  void stop() {
    gate_.close();
    std::lock_guard lock(start_mutex_);
    if (!strand_ || shutdown_posted_) return;
    shutdown_posted_ = true;
    asio::post(*strand_, [self = shared_from_this()] {
      self->timer_->cancel();
      if (self->connection_) self->connection_->close();
      if (self->log_) self->log_->info("etcd resolver {}: stopped", self->config_.prefix);
    });
  }

  etcd_resolver_stats stats() const {
    std::lock_guard lock(stats_mutex_);
    return stats_;
  }

 private:
  bool stopped() const { return gate_.closed(); }
  const std::string& name() const { return config_.prefix; }

  template <class F>
  void update(F&& f) {
    std::lock_guard lock(stats_mutex_);
    f(stats_);
  }

  static asio::awaitable<void> run(std::shared_ptr<impl> self) {
    co_await self->loop();
    self->connection_.reset();
  }

  asio::awaitable<void> loop() {
    if (log_) {
      std::string members;
      for (const auto& e : config_.endpoints) members.append(members.empty() ? "" : ", ").append(to_string(e));
      log_->info("etcd resolver {}: started, members: {}", name(), members);
    }
    std::size_t failures = 0;
    bool need_read = true;
    while (!stopped()) {
      const auto member = config_.endpoints[current_];
      update([&](etcd_resolver_stats& s) { s.member = member; });
      std::string error;
      if (need_read) {
        error = co_await read_all(member);
        if (error.empty()) need_read = false;
      }
      if (error.empty()) {
        bool compacted = false;
        error = co_await watch(member, failures, compacted);
        if (compacted) {
          need_read = true;
          continue;
        }
      }
      if (stopped()) break;
      ++failures;
      update([&](etcd_resolver_stats& s) {
        ++s.failures;
        s.watching = false;
        s.last_error = error;
      });
      const auto delay = retry_delay(failures, config_.endpoints.size(), config_.retry_min,
                                     config_.retry_max);
      current_ = (current_ + 1) % config_.endpoints.size();
      if (log_) {
        log_->warn(
            "etcd resolver {}: member {} failed: {}; keeping the last known backends ({}), "
            "next: {} in {} ms",
            name(), to_string(member), error, published_.size(),
            to_string(config_.endpoints[current_]), delay.count());
      }
      if (delay.count() > 0 && !stopped()) {
        timer_->expires_after(delay);
        co_await timer_->async_wait(nothrow);
      }
    }
  }

  std::shared_ptr<http_connection> connect_to(asio::ip::tcp::endpoint) {
    connection_ = std::make_shared<http_connection>(*strand_);
    if (stopped()) connection_->close();
    return connection_;
  }

  asio::awaitable<std::string> read_all(asio::ip::tcp::endpoint member) {
    auto connection = connect_to(member);
    reply r;
    if (auto error = co_await call(*connection, member, "kv/range", range_request(config_.prefix),
                                   config_.request_timeout, r);
        !error.empty()) {
      co_return error;
    }
    if (stopped()) co_return "stopped";
    table_.clear();
    for (const auto& kv : r.kvs) apply(kv, false);
    revision_ = r.revision;
    update([&](etcd_resolver_stats& s) {
      ++s.reads;
      s.revision = revision_;
    });
    if (log_) {
      log_->debug("etcd resolver {}: read {} keys at revision {} from {}", name(), r.kvs.size(),
                  revision_, to_string(member));
    }
    publish();
    co_return std::string();
  }

  asio::awaitable<std::string> watch(asio::ip::tcp::endpoint member, std::size_t& failures,
                                     bool& compacted) {
    auto connection = connect_to(member);
    if (auto error = co_await connection->connect(member, config_.request_timeout); !error.empty()) {
      co_return error;
    }
    if (auto error = co_await connection->open_stream(
            "watch", watch_request(config_.prefix, revision_ + 1), config_.request_timeout);
        !error.empty()) {
      co_return error;
    }
    for (;;) {
      const auto message = co_await connection->next_message();
      if (!message.error.empty()) co_return message.error;
      if (stopped()) co_return "stopped";
      auto r = parse_reply(message.body);
      if (!r.error.empty()) co_return "watch: " + r.error;
      if (r.canceled) {
        if (r.compact_revision > 0) {
          if (log_) {
            log_->warn(
                "etcd resolver {}: revision {} is compacted (the oldest kept is {}); reading "
                "the prefix again",
                name(), revision_ + 1, r.compact_revision);
          }
          update([&](etcd_resolver_stats& s) {
            ++s.compactions;
            s.watching = false;
          });
          compacted = true;
          co_return std::string();
        }
        co_return "the member canceled the watch: " +
            (r.cancel_reason.empty() ? std::string("no reason given") : r.cancel_reason);
      }
      if (r.created) {
        failures = 0;
        update([&](etcd_resolver_stats& s) {
          ++s.watches;
          s.watching = true;
        });
        if (log_) {
          log_->info("etcd resolver {}: watching from revision {} on {}", name(), revision_ + 1,
                     to_string(member));
        }
      }
      if (r.events.empty()) continue;
      for (const auto& e : r.events) {
        if (e.deleted) {
          table_.erase(e.kv.key);
        } else {
          apply(e.kv, true);
        }
        revision_ = std::max(revision_, e.kv.mod_revision);
      }
      update([&](etcd_resolver_stats& s) {
        s.events += r.events.size();
        s.revision = revision_;
      });
      publish();
    }
  }

  // A key's new value: its backend, or none when the value is bad.
  void apply(const key_value& kv, bool changed) {
    std::string error;
    const auto endpoint = parse_value(kv.value, error);
    if (endpoint) {
      table_[kv.key] = *endpoint;
      return;
    }
    table_.erase(kv.key);
    update([](etcd_resolver_stats& s) { ++s.bad_values; });
    if (log_) {
      std::string shown = kv.value.substr(0, 80);
      for (auto& c : shown) {
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
      }
      log_->warn("etcd resolver {}: skipping key {}{}: value '{}' is {}", name(), kv.key,
                 changed ? " (changed)" : "", shown, error);
    }
  }

  void publish() {
    backend_map current;
    for (const auto& [key, endpoint] : table_) {
      auto n = key.substr(std::min(key.size(), config_.prefix.size()));
      n.append("@").append(to_string(endpoint));
      current.emplace(n, backend{n, endpoint});
    }
    if (current == published_ && published_once_) return;
    if (log_ && log_->should_log(spdlog::level::info)) {
      std::string changes;
      for (const auto& [n, b] : current) {
        if (!published_.contains(n)) changes.append(" +").append(n);
      }
      for (const auto& [n, b] : published_) {
        if (!current.contains(n)) changes.append(" -").append(n);
      }
      log_->info("etcd resolver {}: backends changed:{} ({} now, revision {})", name(),
                 changes.empty() ? std::string(" none") : changes, current.size(), revision_);
    }
    published_ = current;
    published_once_ = true;
    gate_.run([&] { listener_(current); });
  }

  const etcd_resolver_config config_;
  const logger_ptr log_;

  std::mutex start_mutex_;  // strand_, timer_ and listener_ are set once, under it
  std::optional<strand_type> strand_;
  std::optional<asio::steady_timer> timer_;
  listener listener_;
  bool shutdown_posted_ = false;

  // On the strand only.
  std::shared_ptr<http_connection> connection_;
  std::size_t current_ = 0;
  std::int64_t revision_ = 0;
  std::map<std::string, asio::ip::tcp::endpoint> table_;  // key -> address
  backend_map published_;
  bool published_once_ = false;

  mutable std::mutex stats_mutex_;
  etcd_resolver_stats stats_;

  callback_gate gate_;
};

etcd_resolver::etcd_resolver(etcd_resolver_config config)
    : impl_(std::make_shared<impl>(std::move(config))) {}

etcd_resolver::~etcd_resolver() { impl_->stop(); }

void etcd_resolver::start(asio::any_io_executor executor, listener on_change) {
  impl_->start(std::move(executor), std::move(on_change));
}

void etcd_resolver::stop() { impl_->stop(); }

etcd_resolver_stats etcd_resolver::stats() const { return impl_->stats(); }

}  // namespace qorb
