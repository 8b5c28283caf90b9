// SPDX-License-Identifier: BSL-1.0
// tcp_connector_config's bounds (apart from the connector, so code that
// only builds connection parameters, like PostgreSQL's, links without the
// connector's coroutines).
#include <qorb/connectors/tcp.hpp>

#include <limits>
#include <stdexcept>
#include <string>

namespace qorb {

namespace {

// The kernel's limits (include/net/tcp.h: MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL,
// MAX_TCP_KEEPCNT; TCP_USER_TIMEOUT takes an int of milliseconds).
constexpr long long max_keepalive_seconds = 32767;
constexpr long long max_keepalive_count = 127;

void check_range(const char* where, const char* field, long long value, long long low,
                 long long high, const char* unit) {
  if (value >= low && value <= high) return;
  std::string what = *where ? where : "tcp_connector_config::";
  what += field;
  what += " must be between ";
  what += std::to_string(low);
  what += unit;
  what += " and ";
  what += std::to_string(high);
  what += unit;
  what += " (got ";
  what += std::to_string(value);
  what += ')';
  throw std::invalid_argument(what);
}

}  // namespace

void validate(const tcp_connector_config& config, const char* where) {
  if (config.keepalive_idle) {
    check_range(where, "keepalive_idle", config.keepalive_idle->count(), 1, max_keepalive_seconds,
                " s");
  }
  if (config.keepalive_interval) {
    check_range(where, "keepalive_interval", config.keepalive_interval->count(), 1,
                max_keepalive_seconds, " s");
  }
  if (config.keepalive_count) {
    check_range(where, "keepalive_count", *config.keepalive_count, 1, max_keepalive_count, "");
  }
  if (config.user_timeout) {
    check_range(where, "user_timeout", config.user_timeout->count(), 1,
                std::numeric_limits<int>::max(), " ms");
  }
}

}  // namespace qorb
