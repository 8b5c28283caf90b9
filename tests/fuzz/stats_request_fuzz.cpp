// SPDX-License-Identifier: BSL-1.0
// libFuzzer target: the stats server's request handling. The bytes go to
// Beast's request parser as the server feeds it: with the server's limits
// (16 KiB of body, 8 KiB of request line and headers, http_limits.hpp's
// bound on chunk extensions) through its bounded read buffer, in two pieces
// as a client may send them; each request that parses is routed as the
// server routes it. Whatever the bytes: nothing throws (a trailer field of
// 64 KiB made Beast throw), the buffer stays within its bound, the parser
// refuses what is over a limit, the route answers only with a status the
// server documents, and the target's decoding inverts its encoding.
#include "http_limits.hpp"
#include "observability/stats_request.hpp"

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace stats_http = qorb::detail::stats_http;
namespace limits = qorb::detail::http_limits;

void check_route(const stats_http::route& r) {
  using action = stats_http::route::action;
  switch (r.what) {
    case action::websocket:
      if (!r.pool || r.pool->empty()) std::abort();
      if (r.update.count() < 1 || r.update.count() > 86'400'000) std::abort();
      return;
    case action::stats:
    case action::metrics:
      if (r.status != 200) std::abort();
      return;
    case action::reply:
      if (r.status != 400 && r.status != 404 && r.status != 405 && r.status != 426) std::abort();
      if (r.body.empty() || r.body.back() != '\n') std::abort();
      if ((r.status == 405) != !r.allow.empty()) std::abort();
      if ((r.status == 426) != !r.upgrade.empty()) std::abort();
      return;
  }
  std::abort();
}

stats_http::route route(bool is_get, std::string_view target, bool upgrade) {
  return stats_http::route_request(
      is_get, target, upgrade, [](const std::string& name) { return name == "web"; },
      [] { return std::optional<std::string>("web"); });
}

// Every byte as %XX: decoding gives the bytes back.
std::string encode(std::string_view in) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : in) {
    out += '%';
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);

  // 1. As a request off the wire, split where the first byte says, read as
  // http::async_read reads: parse what the buffer holds, and read more only
  // into the room it has left (none: buffer_overflow).
  const std::size_t split = size == 0 ? 0 : data[0] % (size + 1);
  http::request_parser<http::string_body> parser;
  limits::bound(parser);
  parser.body_limit(stats_http::max_request_body);
  parser.header_limit(stats_http::max_request_header);
  parser.eager(true);
  auto buffer = limits::bounded_buffer();
  beast::error_code ec;
  std::size_t fed = 0;
  for (;;) {
    if (buffer.size() != 0) {
      const auto used = parser.put(buffer.data(), ec);
      if (used > buffer.size()) std::abort();
      buffer.consume(used);
      if (ec == http::error::need_more) ec = {};
      if (ec || parser.is_done()) break;
    }
    if (fed == size) break;  // the client sent no more
    const auto room = beast::read_size(buffer, 65536);
    if (room == 0) {
      ec = http::error::buffer_overflow;
      break;
    }
    // A read gets at most what the client has sent so far: the first
    // piece, then the rest.
    const std::size_t until = fed < split ? split : size;
    const std::size_t n = std::min(room, until - fed);
    if (n == 0) {
      if (fed < split) std::abort();
      break;
    }
    std::memcpy(buffer.prepare(n).data(), bytes.data() + fed, n);
    buffer.commit(n);
    fed += n;
    if (buffer.size() > limits::max_read_buffer) std::abort();
  }
  if (!ec && parser.is_done()) {
    const auto& req = parser.get();
    if (req.body().size() > stats_http::max_request_body) std::abort();
    check_route(route(req.method() == http::verb::get, req.target(), true));
    check_route(route(req.method() == http::verb::get, req.target(), false));
  }

  // 2. As a request target on its own, and as every helper's input.
  check_route(route(true, bytes, false));
  check_route(route(false, bytes, true));
  static_cast<void>(stats_http::parse_update_secs(bytes));
  if (const auto u = stats_http::parse_update_secs(bytes)) {
    if (u->count() < 1 || u->count() > 86'400'000) std::abort();
  }
  const auto decoded = stats_http::percent_decode(encode(bytes), true);
  if (!decoded || *decoded != bytes) std::abort();
  std::string target = "/stats?pool=";
  target += encode(bytes);
  const auto parsed = stats_http::parse_target(target);
  if (!parsed || parsed->path != "/stats" || parsed->params.size() != 1 ||
      parsed->params[0].first != "pool" || parsed->params[0].second != bytes) {
    std::abort();
  }
  // A pool named by the bytes: 404 unless it is "web".
  const auto r = route(true, target, false);
  if ((bytes == "web") != (r.what == stats_http::route::action::stats)) std::abort();
  return 0;
}
