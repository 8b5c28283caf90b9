// SPDX-License-Identifier: BSL-1.0
#include "connectors/postgres_protocol.hpp"
#include "detail/error_category.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <string_view>
#include <system_error>

namespace qorb::connectors::postgres {

// --- errors ------------------------------------------------------------------

namespace {

const char* message_of(errc value) noexcept {
  switch (value) {
    case errc::connect_failed:
      return "could not connect to PostgreSQL";
    case errc::connect_timeout:
      return "connecting to PostgreSQL timed out";
    case errc::connection_broken:
      return "the PostgreSQL connection is broken";
    case errc::server_error:
      return "PostgreSQL reported an error";
    case errc::unsupported:
      return "unsupported by qorb's PostgreSQL query API";
    case errc::busy:
      return "another command is in progress on this PostgreSQL connection";
  }
  return nullptr;
}

}  // namespace

const std::error_category& category() noexcept {
  static const qorb::detail::error_category<errc> instance("qorb.postgres", message_of,
                                                           "unknown PostgreSQL connector error",
                                                           qorb::detail::unknown_value::appended);
  return instance;
}

error::error(errc code, const std::string& message) : std::system_error(code, message) {}

error::error(errc code, server_fields fields)
    : std::system_error(code, detail::format_server_error(fields)), fields_(std::move(fields)) {}

const std::optional<std::string>& result::scalar() const {
  if (rows.empty() || rows.front().empty()) {
    throw error(errc::unsupported, "scalar() on a result with no value (" + command_tag + ")");
  }
  return rows.front().front();
}

param to_param(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  std::array<char, 32> buffer{};
  const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  return std::string(buffer.data(), end);
}

namespace detail {

std::vector<std::pair<std::string, std::string>> connection_parameters(const config& cfg,
                                                                       const backend& b) {
  std::vector<std::pair<std::string, std::string>> out;
  const auto add = [&out](std::string key, const std::string& value) {
    if (!value.empty()) out.emplace_back(std::move(key), value);
  };
  const std::string address = b.address.address().to_string();
  // `host` names the server for TLS verification and libpq's messages; it
  // is never looked up because `hostaddr` is set. Extra parameters may
  // replace it with a real name.
  add("host", address);
  add("user", cfg.user);
  add("password", cfg.password);
  add("dbname", cfg.database);
  add("options", cfg.options);
  add("sslmode", cfg.sslmode);
  add("application_name", cfg.application_name);
  // libpq's GSSAPI probe may block in the Kerberos library; opt in below.
  add("gssencmode", "disable");
  // The TCP settings, as libpq's own keywords (libpq makes the socket);
  // unset ones keep libpq's defaults (keep-alive on, the system's timers).
  validate(cfg.tcp, "postgres::config::tcp.");
  if (!cfg.tcp.keepalive) add("keepalives", "0");
  if (cfg.tcp.keepalive && cfg.tcp.keepalive_idle) {
    add("keepalives_idle", std::to_string(cfg.tcp.keepalive_idle->count()));
  }
  if (cfg.tcp.keepalive && cfg.tcp.keepalive_interval) {
    add("keepalives_interval", std::to_string(cfg.tcp.keepalive_interval->count()));
  }
  if (cfg.tcp.keepalive && cfg.tcp.keepalive_count) {
    add("keepalives_count", std::to_string(*cfg.tcp.keepalive_count));
  }
  if (cfg.tcp.user_timeout) add("tcp_user_timeout", std::to_string(cfg.tcp.user_timeout->count()));
  for (const auto& [key, value] : cfg.parameters) {
    if (key == "hostaddr" || key == "port") continue;
    out.emplace_back(key, value);
  }
  out.emplace_back("hostaddr", address);
  out.emplace_back("port", std::to_string(b.address.port()));
  return out;
}

std::string describe(const config& cfg, const backend& b) {
  return "postgres://" + cfg.user + "@" + to_string(b.address) + "/" + cfg.database;
}

std::string sanitize_message(std::string message, std::string_view password) {
  if (!password.empty()) {
    static constexpr std::string_view mask = "********";
    for (auto at = message.find(password); at != std::string::npos;
         at = message.find(password, at + mask.size())) {
      message.replace(at, password.size(), mask);
    }
  }
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
    message.pop_back();
  }
  return message;
}

std::string format_server_error(const error::server_fields& fields) {
  std::string out = fields.severity.empty() ? "ERROR" : fields.severity;
  if (!fields.sqlstate.empty()) out += " " + fields.sqlstate;
  out += ": " + (fields.message.empty() ? std::string("(no message)") : fields.message);
  if (!fields.detail.empty()) out += " (DETAIL: " + fields.detail + ")";
  if (!fields.hint.empty()) out += " (HINT: " + fields.hint + ")";
  return out;
}

std::uint64_t parse_affected_rows(std::string_view text) noexcept {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc{} && end == text.data() + text.size() ? value : 0;
}

recycle_step next_recycle_step(const session_facts& facts, bool discard_all) noexcept {
  if (!facts.connection_ok || facts.pipeline_mode) return recycle_step::close;
  switch (facts.transaction) {
    case transaction_state::active:
      // Still active after draining: a COPY or something else we cannot end.
      return facts.drained ? recycle_step::close : recycle_step::drain_results;
    case transaction_state::in_transaction:
    case transaction_state::in_error:
      return facts.rolled_back ? recycle_step::close : recycle_step::rollback;
    case transaction_state::unknown:
      return recycle_step::close;
    case transaction_state::idle:
      return discard_all && !facts.discarded ? recycle_step::discard_all : recycle_step::done;
  }
  return recycle_step::close;
}

}  // namespace detail
}  // namespace qorb::connectors::postgres
