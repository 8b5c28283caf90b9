// SPDX-License-Identifier: BSL-1.0
// The stats server's request routing (see stats_request.hpp).
#include "observability/stats_request.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace qorb::detail::stats_http {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

route reply(unsigned status, std::string body) {
  route r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      const int hi = hex_value(in[i + 1]);
      const int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (plus_is_space && in[i] == '+') {
      out += ' ';
    } else {
      out += in[i];
    }
  }
  return out;
}

std::optional<request_target> parse_target(std::string_view target) {
  request_target out;
  const auto question = target.find('?');
  auto path = percent_decode(target.substr(0, question), false);
  if (!path) return std::nullopt;
  out.path = std::move(*path);
  if (question == std::string_view::npos) return out;
  std::string_view query = target.substr(question + 1);
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    auto key = percent_decode(pair.substr(0, eq), true);
    auto value = percent_decode(
        eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), true);
    if (!key || !value) return std::nullopt;
    out.params.emplace_back(std::move(*key), std::move(*value));
  }
  return out;
}

std::optional<std::chrono::milliseconds> parse_update_secs(std::string_view text) {
  double seconds = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() ||
      !std::isfinite(seconds) || seconds <= 0 || seconds > 86400) {
    return std::nullopt;
  }
  return std::chrono::milliseconds(std::max<long long>(1, std::llround(seconds * 1000)));
}

route route_request(bool is_get, std::string_view target_text, bool is_upgrade,
                    const std::function<bool(const std::string&)>& attached,
                    const std::function<std::optional<std::string>()>& first_pool) {
  const auto target = parse_target(target_text);
  if (!target) return reply(400, "malformed request target\n");
  const bool is_stats = target->path == "/stats";
  const bool is_metrics = target->path == "/metrics";
  const bool is_qtop = target->path == "/qtop/stats";
  if (!is_stats && !is_metrics && !is_qtop) {
    return reply(404, "not found: try /stats, /metrics or /qtop/stats (WebSocket)\n");
  }
  if (!is_get) {
    auto r = reply(405, "only GET is allowed\n");
    r.allow = "GET";
    return r;
  }
  route out;
  for (const auto& [key, value] : target->params) {
    if (key == "pool") {
      out.pool = value;
    } else if (key == "update_secs" && is_qtop) {
      const auto parsed = parse_update_secs(value);
      if (!parsed) return reply(400, "update_secs must be a number of seconds in (0, 86400]\n");
      out.update = *parsed;
    } else {
      std::string body = "unknown query parameter '";
      body.append(key).append("'\n");
      return reply(400, std::move(body));
    }
  }
  if (out.pool && !attached(*out.pool)) {
    std::string body = "no pool named '";
    body.append(*out.pool).append("'\n");
    return reply(404, std::move(body));
  }
  if (is_qtop) {
    if (!is_upgrade) {
      auto r = reply(426, "/qtop/stats is a WebSocket endpoint\n");
      r.upgrade = "websocket";
      return r;
    }
    if (!out.pool) out.pool = first_pool();
    if (!out.pool) return reply(404, "no pool attached\n");
    out.what = route::action::websocket;
    return out;
  }
  out.what = is_metrics ? route::action::metrics : route::action::stats;
  return out;
}

}  // namespace qorb::detail::stats_http
