// SPDX-License-Identifier: BSL-1.0
// Limits every HTTP/1.1 parser in qorb applies to what a peer sends: the
// stats server's requests, the HTTP connector's responses and the etcd
// client's replies and watch stream. Internal; header-only (Beast).
//
// Why one mechanism: Beast 1.81's parser bounds the header (header_limit)
// and the body (body_limit), but not a chunk's extensions nor the trailer.
// It looks for the end of a chunk header or of the trailer in the read
// buffer, which grows without bound unless the buffer has a maximum size,
// and a trailer field of 64 KiB or more makes it throw std::length_error
// out of the completion handler (through io_context::run: the process
// aborts). A read buffer whose maximum is far below 64 KiB bounds both: a
// chunk header or trailer that does not fit ends the read with
// `http::error::buffer_overflow`, and no field can reach Beast's limit. The
// body itself never accumulates in that buffer (the parser moves it into
// the body as it arrives), so the bound costs nothing to normal replies.
#pragma once

#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace qorb::detail::http_limits {

/// The status line (or request line) and the header fields together.
inline constexpr std::size_t max_header = 8 * 1024;
/// One chunk's extensions (`;name=value...` after the chunk size).
inline constexpr std::size_t max_chunk_extensions = 1024;
/// The trailer, and anything else the parser must see whole in the read
/// buffer (one chunk header line, or a header with pipelined bytes behind
/// it). Well below the 64 KiB at which Beast 1.81 throws.
inline constexpr std::size_t max_read_buffer = 16 * 1024;
/// How many interim (1xx) responses a client skips before the final one.
inline constexpr int max_interim_responses = 16;

static_assert(max_read_buffer < 65535, "Beast 1.81 throws on a field of 64 KiB");
static_assert(max_header <= max_read_buffer);

/// A read buffer with the bound above.
inline boost::beast::flat_buffer bounded_buffer() {
  return boost::beast::flat_buffer(max_read_buffer);
}

/// Bounds `parser`'s header and chunk extensions. The callback is stored by
/// reference in the parser: it must outlive every read with it (a static
/// function object does).
template <class Parser>
void bound(Parser& parser) {
  parser.header_limit(static_cast<std::uint32_t>(max_header));
  static auto check_extensions = [](std::uint64_t, boost::beast::string_view extensions,
                                    boost::beast::error_code& ec) {
    if (extensions.size() > max_chunk_extensions) {
      ec = boost::beast::http::error::bad_chunk_extension;
    }
  };
  parser.on_chunk_header(check_extensions);
}

/// What a read error means for a reader of a peer's HTTP, in words: the
/// limits name themselves ("" for an error that is not about a limit).
inline std::string limit_exceeded(const boost::beast::error_code& ec) {
  namespace http = boost::beast::http;
  if (ec == http::error::header_limit) {
    return "the header is over " + std::to_string(max_header) + " bytes";
  }
  if (ec == http::error::buffer_overflow) {
    return "a chunk header or the trailer is over " + std::to_string(max_read_buffer) + " bytes";
  }
  if (ec == http::error::bad_chunk_extension) {
    return "a chunk's extensions are malformed or over " + std::to_string(max_chunk_extensions) +
           " bytes";
  }
  if (ec == http::error::body_limit) return "the body is over its limit";
  return std::string();
}

}  // namespace qorb::detail::http_limits
