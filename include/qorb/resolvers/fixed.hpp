// SPDX-License-Identifier: BSL-1.0
// qorb: a resolver over a fixed (but replaceable) list of addresses.
#pragma once

#include <qorb/resolver.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace qorb {

/// Publishes a list of addresses as backends named "ip:port" (IPv6:
/// "[::1]:port"). `set_endpoints` replaces the list at run time (e.g. on a
/// configuration reload) and publishes the new set if it differs.
///
/// Thread safety: all member functions may be called from any thread.
///
/// Example:
/// @code
/// auto resolver = std::make_shared<qorb::fixed_resolver>(
///     std::vector{*qorb::parse_endpoint("10.0.0.7:5432"),
///     *qorb::parse_endpoint("10.0.0.8:5432")});
/// qorb::pool<asio::ip::tcp::socket> pool(io.get_executor(), "db", resolver,
///                                        qorb::tcp_connector{});
/// resolver->set_endpoints({*qorb::parse_endpoint("10.0.0.9:5432")});  // on a reload
/// @endcode
class fixed_resolver final : public resolver {
 public:
  /// Publishes `endpoints` (repeats count once) when started.
  explicit fixed_resolver(std::vector<asio::ip::tcp::endpoint> endpoints = {});

  /// A fixed resolver over "host:port" strings ("db1.internal:5432",
  /// "localhost:7101", "[::1]:80", "127.0.0.1:80"): each host name is
  /// resolved once, here, through the system's resolver (`getaddrinfo`:
  /// /etc/hosts, then DNS), and every address it has becomes a backend
  /// named "ip:port". The set does not follow later changes of the names:
  /// for that, use `qorb::dns_resolver`.
  ///
  /// Example:
  /// @code
  /// auto resolver = qorb::fixed_resolver::from_names({"localhost:7101", "10.0.0.7:7101"});
  /// @endcode
  ///
  /// Blocks while names are looked up (not on an executor: call it before
  /// building the pool). Throws `std::invalid_argument` naming the first
  /// entry that has no port or does not resolve (with the resolver's
  /// reason), and for an empty list.
  static std::shared_ptr<fixed_resolver> from_names(const std::vector<std::string>& host_ports);

  /// Publishes the current list at once, inside this call, and again after
  /// each `set_endpoints` that changes it.
  ///
  /// Handler, errors, cancellation and lifetimes: as `resolver::start`; no
  /// errors (the list is known).
  ///
  /// Executor: `on_change` runs inside this call and inside
  /// `set_endpoints`, on the caller's thread (one at a time, in order).
  ///
  /// Thread safety and exceptions: as `resolver::start`; throws nothing but
  /// `std::bad_alloc`.
  void start(asio::any_io_executor executor, listener on_change) override;

  /// No more publications (one already running on another thread may
  /// still finish).
  ///
  /// Handler, errors, executor, cancellation, lifetimes, thread safety and
  /// exceptions: as `resolver::stop`.
  void stop() override;

  /// Replaces the list and, once started and not stopped, publishes the new
  /// set (inside this call) if it differs. Any thread, at any time, also
  /// before `start` (then `start` publishes it). Throws only
  /// `std::bad_alloc`.
  void set_endpoints(std::vector<asio::ip::tcp::endpoint> endpoints);

  /// The set it publishes now, keyed by "ip:port".
  backend_map backends() const;

 private:
  void publish();

  std::mutex publish_mu_;  // one publication at a time, in order
  mutable std::mutex mu_;
  backend_map backends_;
  listener listener_;
  bool stopped_ = false;
};

}  // namespace qorb
