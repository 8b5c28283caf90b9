// SPDX-License-Identifier: BSL-1.0
// libFuzzer target: the HTTP connector's response handling
// (connectors/http_response.hpp), the code its read loop drives: the bytes
// are what a server sends, fed into the connector's bounded read buffer as
// its reads would (all at once, and in pieces whose sizes the last byte
// chooses), then the server closes. Whatever the bytes: nothing throws, the
// buffer never holds more than its bound, a read ends (a final response or
// an error that says why, never "need more" after the close), a final
// response is never 1xx and its body is never over the limit, no more than
// the bound of interim responses are skipped, and a response that ends with
// the connection never lets it be kept. How the bytes are split does not
// change the response or the error.
#include "connectors/http_response.hpp"
#include "http_limits.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

namespace limits = qorb::detail::http_limits;
namespace reading = qorb::detail::http_response;
using reader = reading::reader;

struct outcome {
  reader::state state = reader::state::need_more;
  unsigned status = 0;
  std::string body;
  std::string why;
  bool keep = false;
};

// Feeds `wire` as reads of at most `piece(i)` bytes, then the close.
template <class Piece>
outcome feed(std::string_view wire, std::size_t body_limit, Piece piece) {
  reader r(body_limit);
  auto buffer = limits::bounded_buffer();
  std::size_t fed = 0;
  for (std::size_t i = 0; r.parse(buffer) == reader::state::need_more; ++i) {
    if (buffer.size() > limits::max_read_buffer) std::abort();
    if (fed == wire.size()) {
      r.end_of_stream();
      break;
    }
    const auto room = r.room(buffer);
    if (!room) break;
    const std::size_t n = std::min({room->size(), piece(i), wire.size() - fed});
    if (n == 0) std::abort();
    std::memcpy(room->data(), wire.data() + fed, n);
    buffer.commit(n);
    fed += n;
  }
  if (buffer.size() > limits::max_read_buffer) std::abort();
  outcome out;
  out.state = r.current();
  if (r.interim() < 0 || r.interim() > limits::max_interim_responses) std::abort();
  switch (out.state) {
    case reader::state::need_more:
      std::abort();  // the close ends every read
    case reader::state::failed:
      if (r.why().empty() || r.failed_as() == reader::failure::none) std::abort();
      out.why = r.why();
      return out;
    case reader::state::done:
      break;
  }
  if (r.failed_as() != reader::failure::none) std::abort();
  const bool needs_eof = r.needs_eof();
  auto res = r.release();
  out.status = res.result_int();
  if (out.status < 200 || out.status > 999) std::abort();  // 1xx is never final
  if (res.body().size() > body_limit) std::abort();
  const auto why_not = reading::close_reason(true, res.keep_alive(), needs_eof, buffer.size());
  out.keep = why_not.empty();
  if (needs_eof && out.keep) std::abort();
  if (out.keep && buffer.size() != 0) std::abort();
  out.body = std::move(res.body());
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view wire(reinterpret_cast<const char*>(data), size);
  const unsigned control = size == 0 ? 0 : data[size - 1];
  // A small limit often, so bodies over it are common; the connector's
  // default otherwise.
  const std::size_t body_limit = (control & 1) != 0 ? std::size_t(8) << 20 : 1 + control * 16;

  const auto whole = feed(wire, body_limit, [](std::size_t) { return std::size_t(65536); });
  const auto pieces = feed(wire, body_limit, [control](std::size_t i) {
    return std::size_t(1) + (control * 131 + i * 977) % 700;
  });
  // TCP may split the bytes anywhere: the outcome must not depend on it.
  // (Whether the connection is kept may: bytes beyond the response close
  // it only if they have arrived by then.)
  if (whole.state != pieces.state || whole.status != pieces.status || whole.body != pieces.body) {
    std::abort();
  }
  return 0;
}
