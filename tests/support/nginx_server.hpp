// SPDX-License-Identifier: BSL-1.0
// A real nginx for tests: on 127.0.0.1, a free port, a generated config in a
// temporary directory, run in the foreground as a direct child of the test
// and stopped by PID.
#pragma once

#include "support/tls_certs.hpp"
#include "support/wait.hpp"

#include <qorb/backend.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_future.hpp>

#include "support/io_threads.hpp"

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace qorb::test {

struct nginx_options {
  /// Serve TLS (TLS 1.2 and 1.3) with this certificate and key (PEM);
  /// plain HTTP when empty.
  std::string cert_file;
  std::string key_file;
  /// With TLS: ask for a client certificate signed by this CA. Requests
  /// without one are answered 400 by nginx.
  std::string client_ca_file;
  /// nginx's keepalive_timeout (seconds; 0 closes after every response).
  int keepalive_timeout_s = 60;
  /// nginx's keepalive_requests.
  int keepalive_requests = 10000;
};

/// One access-log line: which connection served which request.
struct nginx_log_entry {
  std::uint64_t connection = 0;           ///< nginx's $connection (serial number)
  std::uint64_t connection_requests = 0;  ///< $connection_requests (1 = a new connection)
  int status = 0;
  std::string uri;
  std::string host;           ///< the Host header
  std::string server_name;    ///< TLS SNI ($ssl_server_name), "-" without
  std::string reused;         ///< $ssl_session_reused: "r" or "."
  std::string client_verify;  ///< $ssl_client_verify
};

/// Locations served: `/` and any other path: 200 "hello\n"; `/health`: 200
/// "ok\n", or 500 while `set_healthy(false)`; `/close`: 200 with
/// `Connection: close`; `/status/500`: 500; `/status/503`: 503.
class nginx_server {
 public:
  explicit nginx_server(nginx_options options = {});
  nginx_server(const nginx_server&) = delete;
  nginx_server& operator=(const nginx_server&) = delete;
  ~nginx_server();

  unsigned short port() const noexcept { return port_; }
  boost::asio::ip::tcp::endpoint endpoint() const;
  bool tls() const noexcept { return !options_.cert_file.empty(); }

  /// Starts nginx (same port as before) and waits until it accepts
  /// connections; throws with its error log if it does not within 20 s.
  void start();
  /// Stops it (SIGTERM, fast shutdown) and waits for it to exit.
  void stop();
  bool running() { return process_.running(); }
  /// Reloads the configuration (SIGHUP): new workers take new connections,
  /// the old ones finish their requests and close their idle connections.
  void reload();

  /// Whether /health answers 200 (true, the start) or 500. Takes effect at
  /// once (nginx tests for a file on every request).
  void set_healthy(bool healthy);

  /// The access log so far, parsed.
  std::vector<nginx_log_entry> log() const;
  std::string error_log() const;
  const std::string& dir() const noexcept { return dir_.path(); }

 private:
  void write_config() const;

  nginx_options options_;
  temp_dir dir_{"qorb-nginx"};
  unsigned short port_ = 0;
  child_process process_;
};

/// Whether nginx can be run here (it is on PATH).
bool have_nginx();

/// Options for an nginx serving TLS with `pki`'s server certificate.
nginx_options tls_options(const test_pki& pki, int keepalive_timeout_s = 60,
                          std::string client_ca_file = {});

/// A backend as the fixed resolver names it.
inline qorb::backend backend_of(const boost::asio::ip::tcp::endpoint& e) {
  return {qorb::to_string(e), e};
}

/// What a coroutine run by `run` threw, carried back as plain data: an
/// exception object shared across threads through std::future is freed by
/// whichever side lets go last, with reference counts inside libstdc++ that
/// TSan cannot see.
struct run_failure {
  bool system = false;
  std::error_code code;
  std::string what;
};

template <class T>
using run_value = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

template <class T>
boost::asio::awaitable<std::pair<std::optional<run_value<T>>, std::optional<run_failure>>>
outcome_of(boost::asio::awaitable<T> op) {
  using result = std::pair<std::optional<run_value<T>>, std::optional<run_failure>>;
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(op);
      co_return result{std::monostate{}, std::nullopt};
    } else {
      co_return result{co_await std::move(op), std::nullopt};
    }
  } catch (const std::system_error& e) {
    co_return result{std::nullopt, run_failure{true, e.code(), e.what()}};
  } catch (const std::exception& e) {
    co_return result{std::nullopt, run_failure{false, {}, e.what()}};
  }
}

/// Runs a coroutine on `io`'s threads and waits for its result. What it
/// throws is thrown again here: a `std::system_error` with the same code
/// and message, anything else as `std::runtime_error` with its message.
/// Connections need not be default-constructible.
template <class T>
T run(io_threads& io, boost::asio::awaitable<T> op) {
  auto [value, failure] =
      boost::asio::co_spawn(io.io, outcome_of(std::move(op)), boost::asio::use_future).get();
  if (failure) {
    if (failure->system) throw std::system_error(failure->code, failure->what);
    throw std::runtime_error(failure->what);
  }
  if constexpr (!std::is_void_v<T>) return std::move(*value);
}

}  // namespace qorb::test
