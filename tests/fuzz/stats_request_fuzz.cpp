// libFuzzer target: the stats server's request handling. The bytes go to
// Beast's request parser with the server's limits (16 KiB of body, 8 KiB of
// request line and headers), in two pieces as a client may send them; each
// request that parses is routed as the server routes it. Whatever the
// bytes: the parser stays in bounds and refuses what is over a limit, the
// route answers only with a status the server documents, and the target's
// decoding inverts its encoding.
#include "observability/stats_request.hpp"

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace stats_http = qorb::detail::stats_http;

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

  // 1. As a request off the wire, split where the first byte says.
  const std::size_t split = size == 0 ? 0 : data[0] % (size + 1);
  http::request_parser<http::string_body> parser;
  parser.body_limit(stats_http::max_request_body);
  parser.header_limit(stats_http::max_request_header);
  parser.eager(true);
  beast::error_code ec;
  std::size_t used = parser.put(boost::asio::buffer(bytes.data(), split), ec);
  if ((!ec || ec == http::error::need_more) && !parser.is_done()) {
    ec = {};
    std::size_t more = parser.put(boost::asio::buffer(bytes.data() + used, size - used), ec);
    used += more;
  }
  if (used > size) std::abort();
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
