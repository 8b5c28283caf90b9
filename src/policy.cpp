// SPDX-License-Identifier: BSL-1.0
#include <qorb/policy.hpp>

#include <string>

namespace qorb {

void validate(const policy& p) {
  using std::chrono::nanoseconds;
  const auto& s = p.set_config;
  const auto at_most = [](const char* field, std::size_t value) {
    if (value > max_policy_count) {
      throw invalid_policy(field, std::string("must be at most ")
                                      .append(std::to_string(max_policy_count))
                                      .append(" (qorb::max_policy_count), not ")
                                      .append(std::to_string(value)));
    }
  };
  if (p.max_slots == 0) throw invalid_policy("max_slots", "must be at least 1");
  at_most("max_slots", p.max_slots);
  at_most("spares_wanted", p.spares_wanted);
  if (p.rebalance_interval <= duration::zero())
    throw invalid_policy("rebalance_interval", "must be positive");
  if (p.claim_timeout <= duration::zero())
    throw invalid_policy("claim_timeout", "must be positive");
  if (s.max_count == 0) throw invalid_policy("set_config.max_count", "must be at least 1");
  at_most("set_config.max_count", s.max_count);
  if (s.min_connection_backoff <= duration::zero())
    throw invalid_policy("set_config.min_connection_backoff", "must be positive");
  if (s.max_connection_backoff < s.min_connection_backoff)
    throw invalid_policy("set_config.max_connection_backoff",
                         "must be at least set_config.min_connection_backoff");
  if (s.spread < duration::zero())
    throw invalid_policy("set_config.spread", "must not be negative");
  if (s.health_interval && *s.health_interval <= duration::zero())
    throw invalid_policy("set_config.health_interval",
                         "must be positive (std::nullopt means never)");
  if (s.health_check_timeout <= duration::zero())
    throw invalid_policy("set_config.health_check_timeout", "must be positive");
  if (s.connect_timeout && *s.connect_timeout <= duration::zero())
    throw invalid_policy("set_config.connect_timeout",
                         "must be positive (std::nullopt means none)");
}

}  // namespace qorb
