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
  if (p.max_connecting == 0) throw invalid_policy("max_connecting", "must be at least 1");
  at_most("max_connecting", p.max_connecting);
  if (p.failed_after <= duration::zero()) throw invalid_policy("failed_after", "must be positive");
  if (p.hold_warning && *p.hold_warning <= duration::zero())
    throw invalid_policy("hold_warning", "must be positive (std::nullopt means never)");
  if (p.min_idle > p.max_slots)
    throw invalid_policy("min_idle", std::string("must be at most max_slots (")
                                         .append(std::to_string(p.max_slots))
                                         .append("), not ")
                                         .append(std::to_string(p.min_idle)));
  if (s.max_lifetime && *s.max_lifetime <= duration::zero())
    throw invalid_policy("set_config.max_lifetime",
                         "must be positive (std::nullopt means forever)");
  if (s.max_lifetime_jitter) {
    if (!s.max_lifetime)
      throw invalid_policy("set_config.max_lifetime_jitter", "needs set_config.max_lifetime");
    if (*s.max_lifetime_jitter < duration::zero() || *s.max_lifetime_jitter > *s.max_lifetime)
      throw invalid_policy("set_config.max_lifetime_jitter",
                           "must be between zero and set_config.max_lifetime");
  }
  if (s.idle_timeout && *s.idle_timeout <= duration::zero())
    throw invalid_policy("set_config.idle_timeout", "must be positive (std::nullopt means never)");
}

}  // namespace qorb
