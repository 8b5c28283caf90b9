// SPDX-License-Identifier: BSL-1.0
#include <qorb/error.hpp>

#include <string>

namespace qorb {
namespace {

class qorb_category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "qorb"; }
  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::no_backends:
        return "no backends: the resolver knows no backend for this service";
      case errc::no_backends_online:
        return "no backends online: backends are known but none could be connected";
      case errc::all_claims_used:
        return "all claims used: every connection is claimed and the pool may open no more";
      case errc::terminated:
        return "the pool is terminated";
      case errc::would_deadlock:
        return "blocking call on a thread that runs the pool's executor";
      case errc::acquire_failed:
        return "acquire failed: the connector's on_acquire failed on the connection offered "
               "(the backend's last error says why)";
      case errc::connection_ended:
        return "the server ended the connection normally";
    }
    return "unknown qorb error " + std::to_string(value);
  }
};

}  // namespace

const std::error_category& category() noexcept {
  static const qorb_category instance;
  return instance;
}

}  // namespace qorb
