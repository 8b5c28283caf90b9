// SPDX-License-Identifier: BSL-1.0
// The etcd resolver: a range read of the prefix, then a watch from the
// next revision, on one member at a time, as one coroutine on a strand.
#include <qorb/resolvers/etcd.hpp>

#include "log_limiter.hpp"
#include "resolvers/callback_gate.hpp"
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
#include <optional>

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
        error = "the URLs name different prefixes: '" + out.prefix + "' and '" + std::string(path) +
                "'";
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
using clock = std::chrono::steady_clock;
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
// A member that fails the same way in a loop must not flood the log: one
// warning line per kind per interval, the rest at debug level.
constexpr auto warn_interval = std::chrono::seconds(10);

etcd_resolver_config checked(etcd_resolver_config config) {
  check_members("etcd_resolver_config", config.endpoints);
  if (config.prefix.empty()) {
    throw std::invalid_argument("etcd_resolver_config.prefix is empty (e.g. \"/services/echo/\")");
  }
  check_timing("etcd_resolver_config", config.request_timeout, config.retry_min, config.retry_max);
  return config;
}

}  // namespace

class etcd_resolver::impl : public std::enable_shared_from_this<impl> {
 public:
  explicit impl(etcd_resolver_config config)
      : config_(checked(std::move(config))), log_(config_.logger) {
    stats_.member = config_.endpoints.front();
  }

  void start(asio::any_io_executor executor, listener on_set, change_listener on_change) {
    {
      std::lock_guard lock(start_mutex_);
      if (strand_ || gate_.closed()) return;
      strand_.emplace(asio::make_strand(std::move(executor)));
      timer_.emplace(*strand_);
      listener_ = std::move(on_set);
      change_listener_ = std::move(on_change);
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
      for (const auto& e : config_.endpoints)
        members.append(members.empty() ? "" : ", ").append(to_string(e));
      log_->info("etcd resolver {}: started, members: {}", name(), members);
    }
    std::size_t failures = 0;
    bool need_read = true;
    // No event delivered since the last read of the prefix: a compaction
    // now is a member cancelling watches it should keep, not history
    // catching up.
    bool fresh_read = false;
    while (!stopped()) {
      const auto member = config_.endpoints[current_];
      update([&](etcd_resolver_stats& s) { s.member = member; });
      std::string error;
      if (need_read) {
        error = co_await read_all(member);
        if (error.empty()) {
          need_read = false;
          fresh_read = true;
        }
      }
      if (error.empty()) {
        bool compacted = false;
        bool delivered = false;
        std::optional<clock::time_point> created;
        error = co_await watch(member, delivered, created, compacted);
        // Only a watch that did its job resets the backoff: one that
        // delivered an event, or stayed up as long as the longest delay
        // (so a member cannot make the resolver spin, at most one attempt
        // per retry_max). Being created proves nothing: a member can
        // create watches and end them at once.
        if (delivered || (created && clock::now() - *created >= config_.retry_max)) failures = 0;
        if (delivered) fresh_read = false;
        if (compacted) {
          need_read = true;
          if (!fresh_read) continue;
          error = "the member cancelled the watch as compacted right after a read";
        }
      }
      if (stopped()) break;
      ++failures;
      update([&](etcd_resolver_stats& s) {
        ++s.failures;
        s.watching = false;
        s.last_error = error;
      });
      const auto delay =
          retry_delay(failures, config_.endpoints.size(), config_.retry_min, config_.retry_max);
      current_ = (current_ + 1) % config_.endpoints.size();
      if (log_) {
        std::uint64_t held_back = 0;
        const bool warn = failure_lines_.admit(warn_interval, held_back);
        log_->log(warn ? spdlog::level::warn : spdlog::level::debug,
                  "etcd resolver {}: member {} failed: {}; keeping the last known backends ({}), "
                  "next: {} in {} ms{}",
                  name(), to_string(member), error, published_.size(),
                  to_string(config_.endpoints[current_]), delay.count(), held_back_note(held_back));
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

  asio::awaitable<std::string> watch(asio::ip::tcp::endpoint member, bool& delivered,
                                     std::optional<clock::time_point>& created, bool& compacted) {
    auto connection = connect_to(member);
    if (auto error = co_await connection->connect(member, config_.request_timeout);
        !error.empty()) {
      co_return error;
    }
    if (auto error = co_await connection->open_stream(
            "watch", watch_request(config_.prefix, next_revision(revision_)),
            config_.request_timeout);
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
            std::uint64_t held_back = 0;
            const bool warn = compaction_lines_.admit(warn_interval, held_back);
            log_->log(warn ? spdlog::level::warn : spdlog::level::debug,
                      "etcd resolver {}: revision {} is compacted (the oldest kept is {}); "
                      "reading the prefix again{}",
                      name(), next_revision(revision_), r.compact_revision,
                      held_back_note(held_back));
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
        created = clock::now();
        update([&](etcd_resolver_stats& s) {
          ++s.watches;
          s.watching = true;
        });
        if (log_) {
          log_->info("etcd resolver {}: watching from revision {} on {}", name(),
                     next_revision(revision_), to_string(member));
        }
      }
      if (r.events.empty()) continue;
      delivered = true;
      std::map<std::string, std::optional<asio::ip::tcp::endpoint>> touched;  // key -> before
      for (const auto& e : r.events) {
        if (!touched.contains(e.kv.key)) {
          const auto it = table_.find(e.kv.key);
          touched.emplace(e.kv.key, it == table_.end() ? std::nullopt : std::optional(it->second));
        }
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
      publish_changes(touched);
    }
  }

  static std::string held_back_note(std::uint64_t held_back) {
    if (held_back == 0) return std::string();
    return " (" + std::to_string(held_back) + " more like it since the last one, at debug level)";
  }

  // A key's backend name, or "" when the key is not strictly under the
  // prefix (a member that sends one is wrong or hostile: the key is
  // skipped, and never named "@ip:port").
  std::string backend_name(const std::string& key, const asio::ip::tcp::endpoint& endpoint) const {
    if (key.size() <= config_.prefix.size() || !key.starts_with(config_.prefix)) return {};
    return key.substr(config_.prefix.size()).append("@").append(to_string(endpoint));
  }

  // A key's new value: its backend, or none when the value is bad.
  void apply(const key_value& kv, bool changed) {
    if (kv.key.size() <= config_.prefix.size() || !kv.key.starts_with(config_.prefix)) {
      update([](etcd_resolver_stats& s) { ++s.outside_prefix; });
      if (log_) {
        log_->log(outside_logged_ ? spdlog::level::debug : spdlog::level::warn,
                  "etcd resolver {}: skipping key '{}': not under the prefix", name(),
                  printable(kv.key));
      }
      outside_logged_ = true;
      return;
    }
    std::string error;
    const auto endpoint = parse_value(kv.value, error);
    if (endpoint) {
      table_[kv.key] = *endpoint;
      return;
    }
    table_.erase(kv.key);
    update([](etcd_resolver_stats& s) { ++s.bad_values; });
    if (log_) {
      const auto shown = printable(kv.value);
      log_->warn("etcd resolver {}: skipping key {}{}: value '{}' is {}", name(), kv.key,
                 changed ? " (changed)" : "", shown, error);
    }
  }

  static std::string printable(const std::string& text) {
    std::string shown = text.substr(0, 80);
    for (auto& c : shown) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
    }
    return shown;
  }

  // What a batch of events changed, from each touched key's backend before
  // the batch and its backend now: O(touched keys), whatever the set's size.
  void publish_changes(
      const std::map<std::string, std::optional<asio::ip::tcp::endpoint>>& touched) {
    if (!change_listener_) return publish();
    backend_changes changes;
    for (const auto& [key, before] : touched) {
      const auto it = table_.find(key);
      const std::optional<asio::ip::tcp::endpoint> now =
          it == table_.end() ? std::nullopt : std::optional(it->second);
      if (before == now) continue;
      if (before) changes.removed.push_back(backend_name(key, *before));
      if (now) {
        auto n = backend_name(key, *now);
        changes.added.emplace(n, backend{n, *now});
      }
    }
    if (changes.added.empty() && changes.removed.empty()) return;
    for (const auto& n : changes.removed) published_.erase(n);
    for (const auto& [n, b] : changes.added) published_.insert_or_assign(n, b);
    if (log_ && log_->should_log(spdlog::level::info)) {
      std::string shown;
      for (const auto& [n, b] : changes.added) shown.append(" +").append(n);
      for (const auto& n : changes.removed) shown.append(" -").append(n);
      log_->info("etcd resolver {}: backends changed:{} ({} now, revision {})", name(), shown,
                 published_.size(), revision_);
    }
    gate_.run([&] { change_listener_(changes); });
  }

  void publish() {
    backend_map current;
    for (const auto& [key, endpoint] : table_) {
      auto n = backend_name(key, endpoint);
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
  change_listener change_listener_;  // empty: whole sets only
  bool shutdown_posted_ = false;

  // On the strand only.
  std::shared_ptr<http_connection> connection_;
  std::size_t current_ = 0;
  std::int64_t revision_ = 0;
  std::map<std::string, asio::ip::tcp::endpoint> table_;  // key -> address
  backend_map published_;
  bool published_once_ = false;
  bool outside_logged_ = false;
  detail::log_limiter failure_lines_;
  detail::log_limiter compaction_lines_;

  mutable std::mutex stats_mutex_;
  etcd_resolver_stats stats_;

  detail::callback_gate gate_;
};

etcd_resolver::etcd_resolver(etcd_resolver_config config)
    : impl_(std::make_shared<impl>(std::move(config))) {}

etcd_resolver::~etcd_resolver() { impl_->stop(); }

void etcd_resolver::start(asio::any_io_executor executor, listener on_change) {
  impl_->start(std::move(executor), std::move(on_change), {});
}

void etcd_resolver::start_incremental(asio::any_io_executor executor, listener on_set,
                                      change_listener on_change) {
  impl_->start(std::move(executor), std::move(on_set), std::move(on_change));
}

void etcd_resolver::stop() { impl_->stop(); }

etcd_resolver_stats etcd_resolver::stats() const { return impl_->stats(); }

}  // namespace qorb
