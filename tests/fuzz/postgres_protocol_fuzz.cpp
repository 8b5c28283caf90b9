// SPDX-License-Identifier: BSL-1.0
// libFuzzer target: the PostgreSQL connector's pure helpers. The input is
// split at NUL bytes into fields (user, password, database, a parameter key
// and value, server error fields, a libpq message, a PQcmdTuples text); the
// first byte also picks the recycle facts. Whatever the bytes:
// - sanitize_message never leaves the password in (when the password has no
//   '*', which the mask could form) nor a trailing newline or space;
// - connection_parameters always ends with the backend's hostaddr and port,
//   and no other hostaddr or port;
// - parse_affected_rows gives 0 unless the text is all digits;
// - next_recycle_step closes a broken session and is done only when idle.
#include "connectors/postgres_protocol.hpp"

#include <boost/asio/ip/address_v4.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace qorb::connectors::postgres;

std::vector<std::string> fields(std::string_view bytes, std::size_t count) {
  std::vector<std::string> out;
  while (out.size() + 1 < count) {
    const auto at = bytes.find('\0');
    if (at == std::string_view::npos) break;
    out.emplace_back(bytes.substr(0, at));
    bytes.remove_prefix(at + 1);
  }
  out.emplace_back(bytes);
  out.resize(count);
  return out;
}

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t bits = data[0];
  const auto f = fields(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1), 11);

  config cfg;
  cfg.logger = nullptr;
  cfg.user = f[0];
  cfg.password = f[1];
  cfg.database = f[2];
  cfg.parameters.emplace_back(f[3], f[4]);
  qorb::backend b;
  b.name = "pg";
  b.address = {boost::asio::ip::address_v4(static_cast<std::uint32_t>(bits) << 24 | 1u),
               static_cast<std::uint16_t>(bits * 257)};

  const auto params = detail::connection_parameters(cfg, b);
  check(params.size() >= 2);
  check(params[params.size() - 2].first == "hostaddr");
  check(params.back().first == "port" && params.back().second == std::to_string(b.address.port()));
  check(std::count_if(params.begin(), params.end(), [](const auto& p) {
          return p.first == "hostaddr" || p.first == "port";
        }) == 2);
  static_cast<void>(detail::describe(cfg, b));

  error::server_fields server{f[5], f[6], f[7], f[8], f[9]};
  const auto formatted = detail::format_server_error(server);
  check(formatted.starts_with(server.severity.empty() ? std::string("ERROR") : server.severity));

  const auto clean = detail::sanitize_message(f[10], cfg.password);
  if (!cfg.password.empty() && cfg.password.find('*') == std::string::npos) {
    check(clean.find(cfg.password) == std::string::npos);
  }
  check(clean.empty() || (clean.back() != '\n' && clean.back() != ' '));

  const auto rows = detail::parse_affected_rows(f[10]);
  if (rows != 0) {
    check(!f[10].empty() &&
          std::all_of(f[10].begin(), f[10].end(), [](char c) { return c >= '0' && c <= '9'; }));
  }

  detail::session_facts facts;
  facts.connection_ok = (bits & 1) != 0;
  facts.pipeline_mode = (bits & 2) != 0;
  facts.transaction = static_cast<detail::transaction_state>((bits >> 2) % 5);
  facts.drained = (bits & 32) != 0;
  facts.rolled_back = (bits & 64) != 0;
  facts.discarded = (bits & 128) != 0;
  const auto step = detail::next_recycle_step(facts, (size & 1) != 0);
  if (!facts.connection_ok || facts.pipeline_mode) check(step == detail::recycle_step::close);
  if (step == detail::recycle_step::done) {
    check(facts.transaction == detail::transaction_state::idle);
  }
  return 0;
}
