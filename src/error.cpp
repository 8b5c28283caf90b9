// SPDX-License-Identifier: BSL-1.0
#include <qorb/error.hpp>

#include "detail/error_category.hpp"

namespace qorb {
namespace {

const char* message_of(errc value) noexcept {
  switch (value) {
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
    case errc::request_failed:
      return "the backend failed a request (the connection is fine)";
    case errc::pool_failed:
      return "pool failed: no backend can be connected (every known backend's connects "
             "failed, or failed permanently)";
  }
  return nullptr;
}

}  // namespace

const std::error_category& category() noexcept {
  static const detail::error_category<errc> instance("qorb", message_of, "unknown qorb error",
                                                     detail::unknown_value::appended);
  return instance;
}

}  // namespace qorb
