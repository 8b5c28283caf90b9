// SPDX-License-Identifier: BSL-1.0
// What http_workload and pg_workload share: their common options and the
// checks of every argument, where the backends come from, the stats server,
// the run's end (--duration, and for one that takes them SIGINT/SIGTERM)
// and the failures part of the summary.
#pragma once

#include <qorb/backend.hpp>
#include <qorb/pool.hpp>
#include <qorb/resolver.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qorb::examples {

/// A workload's name and texts.
struct workload_tool {
  /// "http_workload": starts every line about a bad argument or a failure.
  const char* name;
  /// --help and -h print this on stdout (status 0).
  std::string help;
  /// A bad argument's line is followed by this on stderr (status 2).
  std::string usage;
  /// Whether the line for a bad address starts with its option
  /// ("--backend: ...") or is the address's problem alone.
  bool address_errors_name_the_option = true;
};

/// "<name>: <why>" and the usage on stderr; exit status 2.
[[noreturn]] void bad_arguments(const workload_tool& tool, const std::string& why);

/// "<name>: <why>" on stderr; exit status 1, without destructors (threads
/// may be running).
[[noreturn]] void cannot_start(const workload_tool& tool, const std::string& why);

/// What every workload takes (the other options are its own).
struct workload_options {
  std::vector<boost::asio::ip::tcp::endpoint> backends;
  std::string dns_service;
  std::vector<boost::asio::ip::udp::endpoint> dns_servers;
  int threads = 2;
  std::size_t max_slots = 16;
  double duration_s = 10;
  /// Serve /stats, /metrics and qtop's WebSocket here.
  std::optional<boost::asio::ip::tcp::endpoint> stats_addr;
};

/// A workload's command line: "--name value" options, each bad one a line
/// naming it (`bad_arguments`).
class workload_args {
 public:
  workload_args(int argc, char** argv, const workload_tool& tool)
      : argc_(argc), argv_(argv), tool_(tool) {}

  /// Reads every argument: --help and -h print the help and exit 0; the
  /// options every workload has (--backend, --dns, --dns-server,
  /// --threads, --max-slots, --duration, --stats-addr) go into `o`; any
  /// other goes to `own`, which takes it (true) or not (false: an unknown
  /// option). Then checks: --backend or --dns (one), --dns with
  /// --dns-server, no --stats-addr in a build without the stats server.
  void read(workload_options& o, const std::function<bool(std::string_view arg)>& own);

  /// The argument after the current one, its value.
  std::string_view value();

  /// `text` (the value, or a part of it) as a number from `min` to `max`.
  /// Anything else (not a number, NaN, infinite, negative, out of range,
  /// too large to parse) is one line naming the option and its range.
  template <class T>
  T number(std::string_view text, T min, T max) const;

  template <class T>
  T number(T min, T max) {
    return number<T>(value(), min, max);
  }

  /// The value as "127.0.0.1:5432" or "[::1]:5432".
  boost::asio::ip::tcp::endpoint address();

  [[noreturn]] void fail(const std::string& why) const { bad_arguments(tool_, why); }

 private:
  bool shared(workload_options& o);

  int argc_;
  char** argv_;
  const workload_tool& tool_;
  int i_ = 0;
  std::string_view arg_;
};

extern template int workload_args::number<int>(std::string_view, int, int) const;
extern template std::size_t workload_args::number<std::size_t>(std::string_view, std::size_t,
                                                               std::size_t) const;
extern template double workload_args::number<double>(std::string_view, double, double) const;

/// The fixed resolver over --backend, or the DNS resolver for --dns.
std::shared_ptr<resolver> make_resolver(const workload_tool& tool, const workload_options& o);

/// The stats server (the observability component), started before the pool
/// so that a port in use is the only line printed.
class workload_stats {
 public:
  /// Serves on `at` when given; failing to is `cannot_start`.
  workload_stats(const workload_tool& tool, boost::asio::any_io_executor executor,
                 const std::optional<boost::asio::ip::tcp::endpoint>& at);
  ~workload_stats();
  workload_stats(const workload_stats&) = delete;
  workload_stats& operator=(const workload_stats&) = delete;

  /// Shows `p` and prints the addresses to ask (when serving).
  template <class Conn>
  void attach(const pool<Conn>& p) {
    attach(p.name(), p.stats_source());
  }

  /// Closes the listener: it is work too, the threads would never finish.
  void stop();

 private:
  void attach(std::string name, std::function<std::optional<pool_stats>()> source);

  struct impl;
  std::unique_ptr<impl> impl_;
};

/// When a run ends: at --duration, or at SIGINT or SIGTERM when it takes
/// them; what is under way then gets `end_grace` before it is dropped, so
/// that a backend that never answers cannot hold the summary back.
class workload_run {
 public:
  static constexpr auto end_grace = std::chrono::seconds(1);

  enum class signals { default_action, end_the_run };

  /// With `end_the_run`, SIGINT and SIGTERM are blocked for every thread
  /// (so: before any starts) and taken by `tick`; they stay blocked to the
  /// end, so that a second copy of the first (`timeout` sends it to the
  /// process and to its group) cannot cut the summary.
  explicit workload_run(signals s);

  /// The run starts now and lasts `duration_s`.
  void begin(double duration_s);

  std::chrono::steady_clock::time_point start() const { return start_; }
  std::chrono::steady_clock::time_point end() const { return end_; }

  /// A signal ended the run.
  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }

  /// Neither a signal nor the end of --duration came yet.
  bool keep_going() const { return !stopping() && std::chrono::steady_clock::now() < end_; }

  enum class step {
    /// The run goes on (maybe in its grace second).
    go_on,
    /// The signal came now: waiting claims should fail (terminate the pool).
    signalled,
    /// The grace second is over: drop what is under way.
    drop,
  };

  /// Waits the main loop's tick (20 ms, for a signal when taken).
  step tick();

 private:
  bool take_signals_;
  sigset_t signals_{};
  std::atomic<bool> stopping_{false};
  std::chrono::steady_clock::time_point start_{}, end_{};
  std::optional<std::chrono::steady_clock::time_point> give_up_;
};

/// Operations (requests, queries) started and not ended: those the run's
/// end drops are reported. A process-wide count, not in a workload's
/// tally: a dropped coroutine's frame, and the guard in it, outlive main's
/// locals.
std::atomic<int>& under_way();

struct under_way_guard {
  under_way_guard() { under_way().fetch_add(1); }
  ~under_way_guard() { under_way().fetch_sub(1); }
  under_way_guard(const under_way_guard&) = delete;
  under_way_guard& operator=(const under_way_guard&) = delete;
};

/// What a workload counts besides its successes: errors by message, and the
/// claims still waiting when the run ended, by the pool's reason.
struct workload_tally {
  std::mutex mu;
  std::map<std::string, std::uint64_t> errors;
  std::map<std::string, std::uint64_t> unserved_claims;
  std::map<std::string, std::string> first_text;  // each group's first sentence
  std::atomic<std::uint64_t> failed{0};

  void error(const std::string& what);
  /// A claim cut by the run's end, not a failure.
  void unserved(const std::string& why);
  /// As the two above, for an exception: a `qorb::claim_error`'s sentence
  /// has figures that change from claim to claim (the wait, the counts, the
  /// last error's age), so claim errors are counted by their pool and head
  /// ("pool 'db': no backend online") and the first one's whole sentence
  /// is printed.
  void error(const std::exception& e);
  void unserved(const std::exception& e);

  /// The summary's lines for the errors, the claims still waiting and the
  /// `dropped` operations ("requests", "operations") still under way.
  void print_failures(const char* operations, int dropped) const;
};

/// `took` in microseconds, at most UINT32_MAX.
std::uint32_t micros(std::chrono::steady_clock::duration took);

/// The `p` (0 to 1) percentile of microsecond samples, in milliseconds; 0
/// for none. Reorders `v`.
double percentile_ms(std::vector<std::uint32_t>& v, double p);

}  // namespace qorb::examples
