// SPDX-License-Identifier: BSL-1.0
#include "common/workload_support.hpp"

#include <qorb/resolvers/fixed.hpp>
#ifdef QORB_WORKLOAD_SUPPORT_DNS
#include <qorb/resolvers/dns.hpp>
#endif
#ifdef QORB_WORKLOAD_SUPPORT_STATS
#include <qorb/stats_server.hpp>
#endif

#include <boost/system/system_error.hpp>

#include <pthread.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <thread>
#include <type_traits>

namespace qorb::examples {

void bad_arguments(const workload_tool& tool, const std::string& why) {
  std::fprintf(stderr, "%s: %s\n%s", tool.name, why.c_str(), tool.usage.c_str());
  std::exit(2);
}

void cannot_start(const workload_tool& tool, const std::string& why) {
  std::fprintf(stderr, "%s: %s\n", tool.name, why.c_str());
  std::fflush(stdout);
  std::_Exit(1);
}

// --- the command line ------------------------------------------------------

namespace {

template <class T>
std::string number_text(T v) {
  if constexpr (std::is_floating_point_v<T>) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.15g", v);
    return buf;
  } else {
    return std::to_string(v);
  }
}

}  // namespace

void workload_args::read(workload_options& o,
                         const std::function<bool(std::string_view arg)>& own) {
  for (i_ = 1; i_ < argc_; ++i_) {
    arg_ = argv_[i_];
    if (arg_ == "--help" || arg_ == "-h") {
      std::fputs(tool_.help.c_str(), stdout);
      std::exit(0);
    }
    if (!shared(o) && !own(arg_)) {
      std::string why = "unknown option '";
      why.append(arg_).append("'");
      fail(why);
    }
  }
  if (o.backends.empty() == o.dns_service.empty()) fail("give --backend or --dns");
  if (!o.dns_service.empty() && o.dns_servers.empty()) fail("--dns needs --dns-server");
#ifndef QORB_WORKLOAD_SUPPORT_STATS
  if (o.stats_addr) fail("this build has no stats server (the observability component)");
#endif
}

std::string_view workload_args::value() {
  if (i_ + 1 >= argc_) {
    std::string why = "missing value for ";
    why.append(arg_);
    fail(why);
  }
  return argv_[++i_];
}

template <class T>
T workload_args::number(std::string_view text, T min, T max) const {
  T v{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  // Written so that NaN, which compares false with everything, fails it.
  const bool in_range = v >= min && v <= max;
  if (ec != std::errc{} || end != text.data() + text.size() || !in_range) {
    std::string why(arg_);
    why.append(" must be a number from ")
        .append(number_text(min))
        .append(" to ")
        .append(number_text(max))
        .append(", not '")
        .append(text)
        .append("'");
    fail(why);
  }
  return v;
}

template int workload_args::number<int>(std::string_view, int, int) const;
template std::size_t workload_args::number<std::size_t>(std::string_view, std::size_t,
                                                        std::size_t) const;
template double workload_args::number<double>(std::string_view, double, double) const;

boost::asio::ip::tcp::endpoint workload_args::address() {
  const auto text = value();
  const auto endpoint = parse_endpoint(text);
  if (!endpoint) {
    std::string why;
    if (tool_.address_errors_name_the_option) why.append(arg_).append(": ");
    fail(why.append(endpoint_error(text)));
  }
  return *endpoint;
}

bool workload_args::shared(workload_options& o) {
  if (arg_ == "--backend") {
    o.backends.push_back(address());
  } else if (arg_ == "--dns") {
    o.dns_service = value();
  } else if (arg_ == "--dns-server") {
    const auto server = address();
    o.dns_servers.emplace_back(server.address(), server.port());
  } else if (arg_ == "--threads") {
    o.threads = number<int>(1, 256);
  } else if (arg_ == "--max-slots") {
    o.max_slots = number<std::size_t>(1, 100'000);
  } else if (arg_ == "--duration") {
    o.duration_s = number<double>(0.1, 1e6);
  } else if (arg_ == "--stats-addr") {
    o.stats_addr = address();
  } else {
    return false;
  }
  return true;
}

std::shared_ptr<resolver> make_resolver([[maybe_unused]] const workload_tool& tool,
                                        const workload_options& o) {
  if (!o.backends.empty()) return std::make_shared<fixed_resolver>(o.backends);
#ifdef QORB_WORKLOAD_SUPPORT_DNS
  dns_resolver_config dns;
  dns.service = o.dns_service;
  dns.servers = o.dns_servers;
  return std::make_shared<dns_resolver>(std::move(dns));
#else
  bad_arguments(tool, "this build has no DNS resolver");
#endif
}

// --- the stats server --------------------------------------------------------

struct workload_stats::impl {
#ifdef QORB_WORKLOAD_SUPPORT_STATS
  std::optional<stats_server> server;
#endif
};

workload_stats::workload_stats(
    [[maybe_unused]] const workload_tool& tool,
    [[maybe_unused]] boost::asio::any_io_executor executor,
    [[maybe_unused]] const std::optional<boost::asio::ip::tcp::endpoint>& at)
    : impl_(std::make_unique<impl>()) {
#ifdef QORB_WORKLOAD_SUPPORT_STATS
  if (!at) return;
  stats_server_config cfg;
  cfg.listen = *at;
  try {
    impl_->server.emplace(std::move(executor), cfg);
    impl_->server->start();
  } catch (const boost::system::system_error& e) {
    std::string why = "cannot serve stats on ";
    cannot_start(tool, why.append(to_string(*at)).append(": ").append(e.code().message()));
  } catch (const std::exception& e) {
    std::string why = "cannot serve stats: ";
    cannot_start(tool, why.append(e.what()));
  }
#endif
}

workload_stats::~workload_stats() = default;

void workload_stats::attach([[maybe_unused]] std::string name,
                            [[maybe_unused]] std::function<std::optional<pool_stats>()> source) {
#ifdef QORB_WORKLOAD_SUPPORT_STATS
  if (!impl_->server) return;
  impl_->server->attach(std::move(name), std::move(source));
  const auto at = to_string(impl_->server->local_endpoint());
  std::printf("stats: http://%s/stats  http://%s/metrics  qtop ws://%s/qtop/stats\n", at.c_str(),
              at.c_str(), at.c_str());
#endif
}

void workload_stats::stop() {
#ifdef QORB_WORKLOAD_SUPPORT_STATS
  if (impl_->server) impl_->server->stop();
#endif
}

// --- the run's end -------------------------------------------------------------

workload_run::workload_run(signals s) : take_signals_(s == signals::end_the_run) {
  if (!take_signals_) return;
  sigemptyset(&signals_);
  sigaddset(&signals_, SIGINT);
  sigaddset(&signals_, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
}

void workload_run::begin(double duration_s) {
  start_ = std::chrono::steady_clock::now();
  end_ = start_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                      std::chrono::duration<double>(duration_s));
}

workload_run::step workload_run::tick() {
  using namespace std::chrono_literals;
  step result = step::go_on;
  if (take_signals_) {
    // Waits 20 ms for a signal: the tick of the main loop.
    timespec wait{0, 20'000'000};
    if (sigtimedwait(&signals_, nullptr, &wait) > 0 && !stopping()) {
      stopping_.store(true);
      result = step::signalled;
      // What is under way gets a second (what is left of it after --duration).
      if (!give_up_) give_up_ = std::chrono::steady_clock::now() + end_grace;
    }
  } else {
    std::this_thread::sleep_for(20ms);
  }
  // The same second at the end of --duration (claims end there by
  // themselves: their deadline is the run's end).
  const auto now = std::chrono::steady_clock::now();
  if (!give_up_ && now >= end_) give_up_ = end_ + end_grace;
  if (give_up_ && now >= *give_up_) return step::drop;
  return result;
}

std::atomic<int>& under_way() {
  static std::atomic<int> count{0};
  return count;
}

// --- the summary -----------------------------------------------------------------

void workload_tally::error(const std::string& what) {
  failed.fetch_add(1);
  std::lock_guard lock(mu);
  ++errors[what];
}

void workload_tally::unserved(const std::string& why) {
  std::lock_guard lock(mu);
  ++unserved_claims[why];
}

namespace {
std::string group_of(const std::exception& e) {
  if (const auto* c = dynamic_cast<const qorb::claim_error*>(&e)) {
    std::string key = "pool '";
    key += c->pool_name();
    key += "': ";
    key += qorb::claim_error_head(c->code());
    return key;
  }
  return e.what();
}
}  // namespace

void workload_tally::error(const std::exception& e) {
  const std::string key = group_of(e);
  failed.fetch_add(1);
  std::lock_guard lock(mu);
  ++errors[key];
  first_text.emplace(key, e.what());
}

void workload_tally::unserved(const std::exception& e) {
  const std::string key = group_of(e);
  std::lock_guard lock(mu);
  ++unserved_claims[key];
  first_text.emplace(key, e.what());
}

void workload_tally::print_failures(const char* operations, int dropped) const {
  const auto text = [&](const std::string& key) -> const std::string& {
    const auto it = first_text.find(key);
    return it == first_text.end() ? key : it->second;
  };
  for (const auto& [what, count] : errors) {
    std::printf("  error x%llu: %s\n", static_cast<unsigned long long>(count), text(what).c_str());
  }
  for (const auto& [why, count] : unserved_claims) {
    std::printf("  claims still waiting at the end x%llu: %s\n",
                static_cast<unsigned long long>(count), text(why).c_str());
  }
  if (dropped > 0) {
    std::printf("  %s still under way at the end x%d: dropped after one second\n", operations,
                dropped);
  }
}

std::uint32_t micros(std::chrono::steady_clock::duration took) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(took).count();
  return static_cast<std::uint32_t>(std::min<long long>(us, UINT32_MAX));
}

double percentile_ms(std::vector<std::uint32_t>& v, double p) {
  if (v.empty()) return 0;
  const auto at = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(at), v.end());
  return v[at] / 1000.0;
}

}  // namespace qorb::examples
