// qorb: a resolver over a fixed (but replaceable) list of addresses.
#pragma once

#include <qorb/resolver.hpp>

#include <mutex>
#include <vector>

namespace qorb {

/// Publishes a list of addresses as backends named "ip:port" (IPv6:
/// "[::1]:port"). `set_endpoints` replaces the list at run time (e.g. on a
/// configuration reload) and publishes the new set if it differs.
///
/// Thread safety: all member functions may be called from any thread.
class fixed_resolver final : public resolver {
 public:
  explicit fixed_resolver(std::vector<asio::ip::tcp::endpoint> endpoints = {});

  void start(asio::any_io_executor executor, listener on_change) override;
  void stop() override;

  void set_endpoints(std::vector<asio::ip::tcp::endpoint> endpoints);
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
