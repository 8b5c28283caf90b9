#include <qorb/resolvers/fixed.hpp>

namespace qorb {
namespace {

backend_map to_backends(const std::vector<asio::ip::tcp::endpoint>& endpoints) {
  backend_map out;
  for (const auto& ep : endpoints) {
    auto name = to_string(ep);
    out.emplace(name, backend{name, ep});
  }
  return out;
}

}  // namespace

fixed_resolver::fixed_resolver(std::vector<asio::ip::tcp::endpoint> endpoints)
    : backends_(to_backends(endpoints)) {}

void fixed_resolver::start(asio::any_io_executor, listener on_change) {
  {
    std::lock_guard lock(mu_);
    listener_ = std::move(on_change);
    stopped_ = false;
  }
  publish();
}

void fixed_resolver::stop() {
  std::lock_guard lock(mu_);
  stopped_ = true;
  listener_ = nullptr;
}

void fixed_resolver::set_endpoints(std::vector<asio::ip::tcp::endpoint> endpoints) {
  auto next = to_backends(endpoints);
  {
    std::lock_guard lock(mu_);
    if (next == backends_) return;
    backends_ = std::move(next);
  }
  publish();
}

// Publications are serialised, and each sends the set current when it runs,
// so concurrent calls cannot leave the listener with an older set than the
// last one. The listener runs without mu_, so it may call backends() or
// stop().
void fixed_resolver::publish() {
  std::lock_guard order(publish_mu_);
  backend_map snapshot;
  listener notify;
  {
    std::lock_guard lock(mu_);
    if (stopped_ || !listener_) return;
    snapshot = backends_;
    notify = listener_;
  }
  notify(snapshot);
}

backend_map fixed_resolver::backends() const {
  std::lock_guard lock(mu_);
  return backends_;
}

}  // namespace qorb
