// SPDX-License-Identifier: BSL-1.0
// The core's observations as probes and log lines: the only place either
// is made. Texts are the pool's public log vocabulary; keep them stable.
#include <qorb/error.hpp>

#include "core/claim_outcomes.hpp"
#include "pool/pool_driver.hpp"
#include "probes.hpp"

#include <chrono>

namespace qorb::detail {

using kind = core::observation::kind;

template <class... Args>
void pool_driver::log(spdlog::level::level_enum level, spdlog::format_string_t<Args...> fmt,
                      Args&&... args) const {
  if (log_ && log_->should_log(level)) {
    log_->log(level, "pool {}: {}", name_, fmt::format(fmt, std::forward<Args>(args)...));
  }
}

template <class... Args>
void pool_driver::log_repeated(spdlog::level::level_enum level, const core::observation& o,
                               std::string_view what, spdlog::format_string_t<Args...> fmt,
                               Args&&... args) const {
  if (!log_) return;
  std::string key = o.set ? o.set->name : std::string();
  key.append(1, '\0').append(what);
  std::uint64_t held_back = 0;
  if (!warnings_.admit(key, held_back)) {
    log(spdlog::level::debug, fmt, std::forward<Args>(args)...);
    return;
  }
  if (!log_->should_log(level)) return;
  auto text = fmt::format(fmt, std::forward<Args>(args)...);
  if (held_back > 0) {
    text.append(" (and ").append(std::to_string(held_back));
    text.append(" more like it since the last one, logged at debug level)");
  }
  log_->log(level, "pool {}: {}", name_, text);
}

namespace {

const char* address(const core::observation& o) { return o.set ? o.set->address.c_str() : ""; }
const char* backend_name(const core::observation& o) { return o.set ? o.set->name.c_str() : ""; }

// "file:line (function)", or "an unknown site" (beyond the 32 tracked).
std::string hold_site(const std::source_location& where) {
  if (where.line() == 0) return "an unknown site (beyond the 32 claim sites tracked)";
  std::string out = where.file_name();
  out.append(":").append(std::to_string(where.line()));
  out.append(" (").append(where.function_name()).append(")");
  return out;
}

const char* reason_of(std::size_t outcome) {
  return core::info(core::claim_outcome(outcome)).reason;
}

}  // namespace

void pool_driver::observe(const core::observation& o) const {
  const char* pool = name_.c_str();
  switch (o.what) {
    case kind::claim_started:
      QORB_PROBE(claim_start, pool, o.claim);
      QORB_PROBE(pool_claim_start, pool, o.claim);
      break;
    case kind::claim_queued:
      QORB_PROBE(slot_set_claim_failed, pool, o.claim, "no backend has an unclaimed slot");
      break;
    case kind::claim_served:
      QORB_PROBE(slot_set_claim_start, pool, o.claim, address(o));
      QORB_PROBE(slot_set_claim_done, pool, o.claim, o.slot);
      QORB_PROBE(pool_claim_done, pool, o.claim, o.slot);
      QORB_PROBE(claim_done, pool, o.claim, o.slot);
      QORB_PROBE(handle_claimed, pool, o.claim, o.slot, address(o));
      break;
    case kind::claim_failed:
      QORB_PROBE(pool_claim_failed, pool, o.claim);
      QORB_PROBE(claim_failed, pool, o.claim,
                 o.reason.empty() ? reason_of(o.count) : o.reason.c_str());
      break;
    case kind::acquire_failed:
      QORB_PROBE(claim_acquire_failed, pool, o.claim, o.reason.c_str());
      break;
    case kind::handle_returned:
      QORB_PROBE(handle_returned, pool, o.slot);
      break;
    case kind::state_changed:
      if (QORB_PROBE_ENABLED(slot_state_change)) {
        const auto json = fmt::format(
            R"({{"connecting":{},"unclaimed":{},"checking":{},"claimed":{},"total_claims":{}}})",
            o.counts.connecting, o.counts.unclaimed, o.counts.checking, o.counts.claimed,
            o.counts.total_claims);
        QORB_PROBE(slot_state_change, pool, address(o), o.slot, core::to_string(o.from),
                   core::to_string(o.to), json.c_str());
      }
      break;
    case kind::op_started:
      if (o.op == core::op_kind::connect) QORB_PROBE(connect_start, pool, o.slot, address(o));
      if (o.op == core::op_kind::is_valid) QORB_PROBE(health_check_start, pool, o.slot, address(o));
      if (o.op == core::op_kind::on_recycle) QORB_PROBE(recycle_start, pool, o.slot, address(o));
      break;
    case kind::op_succeeded:
      if (o.op == core::op_kind::connect) QORB_PROBE(connect_done, pool, o.slot, address(o));
      if (o.op == core::op_kind::is_valid) QORB_PROBE(health_check_done, pool, o.slot);
      if (o.op == core::op_kind::on_recycle) QORB_PROBE(recycle_done, pool, o.slot);
      break;
    case kind::op_failed:
      log_op_failed(o);
      break;
    case kind::discarded:
      // The caller said so; counted as a failure of the backend.
      QORB_PROBE(connection_discarded, pool, o.slot, address(o), o.reason.c_str());
      log(spdlog::level::debug, "{}: connection discarded: {}", backend_name(o), o.reason);
      break;
    case kind::reported:
      QORB_PROBE(failure_reported, pool, o.slot, address(o), o.reason.c_str());
      log(spdlog::level::debug, "{}: failure reported: {}", backend_name(o), o.reason);
      break;
    case kind::lost:
      QORB_PROBE(connection_lost, pool, o.slot, address(o), o.reason.c_str());
      log_repeated(spdlog::level::warn, o, "lost", "{}: connection lost: {}", backend_name(o),
                   o.reason);
      break;
    case kind::ended:
      // A server's idle close and the like: the connection is replaced,
      // nothing failed, so nothing for an operator to see.
      log(spdlog::level::debug, "{}: {}: the connection ended normally, replacing it: {}",
          backend_name(o), core::to_string(o.op), o.reason);
      break;
    case kind::set_online:
      // The same level as offline: a log that shows only warnings must not
      // leave a backend that came back looking dead.
      if (o.first) log(spdlog::level::warn, "{}: online", backend_name(o));
      QORB_PROBE(slot_set_online, pool, address(o), o.flag);
      break;
    case kind::set_offline:
      // Not rate-limited: a held-back state would leave the log saying the
      // wrong one. The slots' backoff spaces these lines out.
      if (o.first) log(spdlog::level::warn, "{}: offline", backend_name(o));
      QORB_PROBE(slot_set_offline, pool, address(o));
      break;
    case kind::backend_added:
      log(spdlog::level::info, "{}: added ({})", backend_name(o), address(o));
      break;
    case kind::backend_removed:
      log(spdlog::level::info, "{}: removed (draining {} claimed)", backend_name(o), o.count);
      break;
    case kind::rebalance_started:
      QORB_PROBE(rebalance_start, pool);
      break;
    case kind::rebalance_done:
      QORB_PROBE(rebalance_done, pool);
      break;
    case kind::terminating:
      log(spdlog::level::info, "terminating");
      break;
    case kind::status_changed:
      QORB_PROBE(pool_status_change, pool, to_string(o.status_from), to_string(o.status_to));
      log(o.status_to == pool_status::failed ? spdlog::level::warn : spdlog::level::info,
          "status {} -> {}", to_string(o.status_from), to_string(o.status_to));
      break;
    case kind::drained:
      log(spdlog::level::info, "drained: every claim is back");
      break;
    case kind::hold_warning: {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(o.delay).count();
      const std::string site = hold_site(o.site);
      QORB_PROBE(hold_warning, pool, o.slot, address(o), ms, site.c_str());
      log(spdlog::level::warn,
          "{}: a claimed connection (slot {}, claim {}) has been held for {:.1f} s, longer than "
          "hold_warning; claimed at {}",
          backend_name(o), o.slot, o.claim, double(ms) / 1000.0, site);
      break;
    }
    case kind::closed:  // for a pool_observer only (observer.cpp)
      break;
  }
}

// Under the pool's lock, in the event that saw the failure: a stats()
// snapshot that counts a failure also shows it as the backend's last error.
void pool_driver::record_errors(const core::effects& fx) {
  for (const auto& o : fx.seen) {
    if (!o.set) continue;
    switch (o.what) {
      case core::observation::kind::op_failed:
        errors_.record(o.set->name, core::to_string(o.op), o.flag ? "timed out" : o.reason);
        break;
      case core::observation::kind::lost:
        errors_.record(o.set->name, "watch", o.reason);
        break;
      case core::observation::kind::discarded:
        errors_.record(o.set->name, "discard", o.reason);
        break;
      case core::observation::kind::reported:
        errors_.record(o.set->name, "report", o.reason);
        break;
      default:
        break;
    }
  }
}

void pool_driver::log_op_failed(const core::observation& o) const {
  const char* pool = name_.c_str();
  const char* why = o.reason.c_str();
  switch (o.op) {
    case core::op_kind::connect:
      QORB_PROBE(connect_failed, pool, o.slot, address(o), why);
      if (o.flag) {
        log_repeated(spdlog::level::warn, o, "connect", "{}: connect timed out", backend_name(o));
      } else {
        // The first failure of a streak is news; the retries are not.
        const auto retry = std::chrono::duration_cast<std::chrono::milliseconds>(o.delay).count();
        if (o.count == 1) {
          log_repeated(spdlog::level::warn, o, "connect",
                       "{}: connect failed permanently (retry in {} ms): {}", backend_name(o),
                       retry, why);
        } else if (o.first) {
          log_repeated(spdlog::level::warn, o, "connect", "{}: connect failed (retry in {} ms): {}",
                       backend_name(o), retry, why);
        } else {
          log(spdlog::level::debug, "{}: connect failed (retry in {} ms): {}", backend_name(o),
              retry, why);
        }
      }
      return;
    case core::op_kind::is_valid:
      QORB_PROBE(health_check_failed, pool, o.slot, why);
      break;
    case core::op_kind::on_recycle:
      QORB_PROBE(recycle_failed, pool, o.slot, why);
      break;
    case core::op_kind::on_acquire:
    case core::op_kind::watch:  // its end is a loss, not a failed operation
      break;
  }
  const std::string_view op = core::to_string(o.op);
  if (o.flag) {
    log_repeated(spdlog::level::warn, o, op, "{}: {} timed out", backend_name(o),
                 o.op == core::op_kind::on_acquire ? "on_acquire" : "health check");
  } else {
    log_repeated(spdlog::level::warn, o, op, "{}: {} failed: {}", backend_name(o), op, why);
  }
}

}  // namespace qorb::detail
