// SPDX-License-Identifier: BSL-1.0
// What the stats server makes of a request once Beast has parsed it: the
// target decoded, its query checked, and the answer chosen. Pure functions
// with no Beast or sockets, so the fuzzer (tests/fuzz) calls them as the
// server does. Internal.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qorb::detail::stats_http {

/// A request's body may be this long, at most (413 beyond).
inline constexpr std::size_t max_request_body = 16 * 1024;
/// The request line and headers together (431 beyond; Beast's default,
/// said here).
inline constexpr std::uint32_t max_request_header = 8 * 1024;

/// A request target: its path and its query's key/value pairs, decoded.
struct request_target {
  std::string path;
  std::vector<std::pair<std::string, std::string>> params;
};

/// `%XX` decoded (and `+` as a space when `plus_is_space`); nothing when a
/// `%` is not followed by two hex digits.
std::optional<std::string> percent_decode(std::string_view in, bool plus_is_space);

/// The path and query of `target`, decoded; nothing when either does not
/// decode.
std::optional<request_target> parse_target(std::string_view target);

/// The `update_secs` query parameter of /qtop/stats: a number of seconds in
/// (0, 86400], to the millisecond (at least 1 ms); nothing otherwise.
std::optional<std::chrono::milliseconds> parse_update_secs(std::string_view text);

/// What to do with one request.
struct route {
  enum class action {
    reply,      ///< answer `status` with `body` (text/plain)
    stats,      ///< 200 with the /stats JSON (of `pool` only, if set)
    metrics,    ///< 200 with the /metrics text (of `pool` only, if set)
    websocket,  ///< upgrade, then push `pool`'s stats every `update`
  };
  action what = action::reply;
  unsigned status = 200;
  std::string body;
  /// Extra headers for a reply: `Allow` for 405, `Upgrade` for 426.
  std::string allow, upgrade;
  std::optional<std::string> pool;
  std::chrono::milliseconds update{1000};
};

/// Routes a parsed request: `is_get` whether its method is GET, `target`
/// its request target, `is_upgrade` whether it asks for a WebSocket;
/// `attached(name)` says whether a pool of that name is attached,
/// `first_pool()` names the first attached pool (if any).
route route_request(bool is_get, std::string_view target, bool is_upgrade,
                    const std::function<bool(const std::string&)>& attached,
                    const std::function<std::optional<std::string>()>& first_pool);

}  // namespace qorb::detail::stats_http
