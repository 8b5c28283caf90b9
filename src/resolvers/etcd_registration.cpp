// SPDX-License-Identifier: BSL-1.0
// Registration: grant a lease, put the key under it, keep the lease alive,
// start again when it is lost, revoke it on stop. One coroutine on a strand.
#include <qorb/resolvers/etcd_registration.hpp>

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

#include <mutex>
#include <optional>

namespace qorb {

using namespace detail::etcd;

namespace {

using strand_type = asio::strand<asio::any_io_executor>;
using clock = std::chrono::steady_clock;
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
// The longest TTL the registration acts on: the config's own bound. A member
// that grants more (INT64_MAX seconds overflowed the keep-alive interval
// into one every 100 ms) is kept alive as if it had granted this; more
// keep-alives than needed never lose the lease.
constexpr std::int64_t max_acted_ttl = 24 * 60 * 60;

etcd_registration_config checked(etcd_registration_config config) {
  check_members("etcd_registration_config", config.endpoints);
  if (config.key.empty()) throw std::invalid_argument("etcd_registration_config.key is empty");
  if (config.value.empty()) throw std::invalid_argument("etcd_registration_config.value is empty");
  if (config.ttl < std::chrono::seconds(1) || config.ttl > std::chrono::hours(24)) {
    throw std::invalid_argument("etcd_registration_config.ttl must be between 1 s and 1 day, not " +
                                std::to_string(config.ttl.count()) + " s");
  }
  check_timing("etcd_registration_config", config.request_timeout, config.retry_min,
               config.retry_max);
  return config;
}

}  // namespace

class etcd_registration::impl : public std::enable_shared_from_this<impl> {
 public:
  explicit impl(etcd_registration_config config)
      : config_(checked(std::move(config))), log_(config_.logger) {}

  void start(asio::any_io_executor executor) {
    std::lock_guard lock(mutex_);
    if (strand_ || stopping_) return;
    strand_.emplace(asio::make_strand(std::move(executor)));
    timer_.emplace(*strand_);
    asio::co_spawn(*strand_, run(shared_from_this()), asio::detached);
  }

  void stop(std::function<void(bool)> done) {
    std::unique_lock lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    if (!strand_) {
      lock.unlock();
      if (done) done(false);
      return;
    }
    done_ = std::move(done);
    asio::post(*strand_, [self = shared_from_this()] {
      self->timer_->cancel();
      if (self->connection_) self->connection_->close();
    });
  }

  etcd_registration_stats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }

 private:
  bool stopping() const {
    std::lock_guard lock(mutex_);
    return stopping_;
  }

  template <class F>
  void update(F&& f) {
    std::lock_guard lock(mutex_);
    f(stats_);
  }

  const std::string& name() const { return config_.key; }

  static asio::awaitable<void> run(std::shared_ptr<impl> self) {
    co_await self->loop();
    const bool revoked = co_await self->revoke();
    self->connection_.reset();
    std::function<void(bool)> done;
    {
      std::lock_guard lock(self->mutex_);
      done = std::move(self->done_);
    }
    if (done) done(revoked);
  }

  // A fresh connection for the loop; closed at once when stopping (stop's
  // close runs later on the strand and closes it too).
  http_connection& connection() {
    connection_ = std::make_shared<http_connection>(*strand_);
    if (stopping()) connection_->close();
    return *connection_;
  }

  asio::awaitable<std::string> request(asio::ip::tcp::endpoint member, std::string_view path,
                                       std::string body, reply& out) {
    co_return co_await call(connection(), member, path, std::move(body), config_.request_timeout,
                            out);
  }

  void set_registered(bool registered) {
    update([&](etcd_registration_stats& s) {
      s.registered = registered;
      s.lease = lease_;
      s.granted_ttl = granted_ttl_;
      if (registered) ++s.registrations;
    });
    if (config_.on_change) config_.on_change(registered);
  }

  void lease_lost(const std::string& why) {
    if (log_)
      log_->warn("etcd registration {}: lease {} lost ({}); registering again", name(), lease_,
                 why);
    lease_.clear();
    registered_ = false;
    update([](etcd_registration_stats& s) { ++s.lost_leases; });
    set_registered(false);
  }

  asio::awaitable<std::string> register_on(asio::ip::tcp::endpoint member) {
    reply r;
    if (lease_.empty()) {
      if (auto error =
              co_await request(member, "lease/grant", grant_request(config_.ttl.count()), r);
          !error.empty()) {
        co_return error;
      }
      if (r.lease_id.empty() || r.ttl <= 0) co_return "lease/grant: no lease in the reply";
      lease_ = r.lease_id;
      granted_ttl_ = r.ttl;
      if (granted_ttl_ > max_acted_ttl) {
        if (log_) {
          log_->warn(
              "etcd registration {}: member {} granted lease {} a TTL of {} s, over the {} s "
              "bound; keeping it alive as if its TTL were {} s",
              name(), to_string(member), lease_, granted_ttl_, max_acted_ttl, max_acted_ttl);
        }
        granted_ttl_ = max_acted_ttl;
      }
    }
    if (auto error =
            co_await request(member, "kv/put", put_request(config_.key, config_.value, lease_), r);
        !error.empty()) {
      if (error.find("lease not found") != std::string::npos) lease_.clear();
      co_return error;
    }
    registered_ = true;
    last_alive_ = clock::now();
    if (log_) {
      log_->info("etcd registration {}: registered {} on {} under lease {} (TTL {} s)", name(),
                 config_.value, to_string(member), lease_, granted_ttl_);
    }
    set_registered(true);
    co_return std::string();
  }

  asio::awaitable<std::string> keep_alive(asio::ip::tcp::endpoint member) {
    reply r;
    if (auto error = co_await request(member, "lease/keepalive", lease_request(lease_), r);
        !error.empty()) {
      if (clock::now() - last_alive_ > std::chrono::seconds(granted_ttl_)) {
        lease_lost("no keep-alive answered within its TTL");
      }
      co_return error;
    }
    if (r.ttl <= 0) {
      lease_lost("expired or revoked");
      co_return std::string();
    }
    last_alive_ = clock::now();
    update([](etcd_registration_stats& s) { ++s.keepalives; });
    co_return std::string();
  }

  asio::awaitable<void> sleep(std::chrono::milliseconds delay) {
    if (delay.count() <= 0 || stopping()) co_return;
    timer_->expires_after(delay);
    co_await timer_->async_wait(nothrow);
  }

  asio::awaitable<void> loop() {
    std::size_t failures = 0;
    while (!stopping()) {
      const auto member = config_.endpoints[current_];
      std::string error;
      if (!registered_) {
        error = co_await register_on(member);
      } else {
        co_await sleep(std::max(std::chrono::milliseconds(100),
                                std::chrono::milliseconds(granted_ttl_ * 1000 / 3)));
        if (stopping()) break;
        error = co_await keep_alive(member);
      }
      if (stopping()) break;
      if (error.empty()) {
        failures = 0;
        continue;
      }
      ++failures;
      update([&](etcd_registration_stats& s) {
        ++s.failures;
        s.last_error = error;
      });
      current_ = (current_ + 1) % config_.endpoints.size();
      const auto delay =
          retry_delay(failures, config_.endpoints.size(), config_.retry_min, config_.retry_max);
      if (log_) {
        log_->warn("etcd registration {}: member {} failed: {}; next: {} in {} ms", name(),
                   to_string(member), error, to_string(config_.endpoints[current_]), delay.count());
      }
      co_await sleep(delay);
    }
  }

  asio::awaitable<bool> revoke() {
    if (lease_.empty()) co_return false;
    for (std::size_t i = 0; i < config_.endpoints.size(); ++i) {
      const auto member = config_.endpoints[(current_ + i) % config_.endpoints.size()];
      connection_ = std::make_shared<http_connection>(*strand_);
      reply r;
      const auto error = co_await call(*connection_, member, "lease/revoke", lease_request(lease_),
                                       config_.request_timeout, r);
      if (error.empty() || error.find("lease not found") != std::string::npos) {
        if (log_) log_->info("etcd registration {}: stopped, lease {} revoked", name(), lease_);
        lease_.clear();
        update([](etcd_registration_stats& s) {
          s.registered = false;
          s.lease.clear();
        });
        co_return true;
      }
      if (log_) {
        log_->warn("etcd registration {}: revoking lease {} on {}: {}", name(), lease_,
                   to_string(member), error);
      }
    }
    if (log_) {
      log_->warn(
          "etcd registration {}: stopped; no member revoked lease {}, the key goes when it expires",
          name(), lease_);
    }
    co_return false;
  }

  const etcd_registration_config config_;
  const logger_ptr log_;

  mutable std::mutex mutex_;  // strand_/timer_ (set once), stopping_, done_, stats_
  std::optional<strand_type> strand_;
  std::optional<asio::steady_timer> timer_;
  bool stopping_ = false;
  std::function<void(bool)> done_;
  etcd_registration_stats stats_;

  // On the strand only.
  std::shared_ptr<http_connection> connection_;
  std::size_t current_ = 0;
  std::string lease_;
  std::int64_t granted_ttl_ = 0;
  bool registered_ = false;
  clock::time_point last_alive_;
};

etcd_registration::etcd_registration(etcd_registration_config config)
    : impl_(std::make_shared<impl>(std::move(config))) {}

etcd_registration::~etcd_registration() { impl_->stop({}); }

void etcd_registration::start(asio::any_io_executor executor) { impl_->start(std::move(executor)); }

void etcd_registration::stop(std::function<void(bool)> done) { impl_->stop(std::move(done)); }

etcd_registration_stats etcd_registration::stats() const { return impl_->stats(); }

}  // namespace qorb
