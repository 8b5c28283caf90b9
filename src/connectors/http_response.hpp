// SPDX-License-Identifier: BSL-1.0
// The HTTP connector's response handling without sockets: what it makes of
// the bytes a server sends, with every limit applied (http_limits.hpp), the
// interim (1xx) responses skipped, and whether the connection can be kept.
// The connector's read loop only moves bytes from the socket into the
// buffer; the fuzzer (tests/fuzz/http_response_fuzz.cpp) drives the same
// code from its input. Internal; header-only (Beast).
#pragma once

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <utility>

#include "http_limits.hpp"

namespace qorb::detail::http_response {

namespace beast = boost::beast;
namespace bhttp = beast::http;

using response = bhttp::response<bhttp::string_body>;

/// Reads one final response from a server's bytes: feed it what arrives in
/// `buffer` (`parse`), and `end_of_stream` when the server closed.
class reader {
 public:
  enum class state {
    need_more,  ///< read more into `room(buffer)`, then `parse` again
    done,       ///< the final response is whole: `release` it
    failed,     ///< `why` says why; the connection must be closed
  };
  /// Why a read failed: the server broke the protocol or a limit, or it
  /// closed the connection before the response was whole.
  enum class failure { none, bad_response, closed };

  explicit reader(std::size_t body_limit) : body_limit_(body_limit) { fresh_parser(); }

  /// Parses what `buffer` holds, consuming what the parser used. Interim
  /// responses are dropped as they complete.
  state parse(beast::flat_buffer& buffer) {
    while (state_ == state::need_more && buffer.size() != 0) {
      beast::error_code ec;
      const bool in_header = !parser_->is_header_done();
      const auto used = parser_->put(buffer.data(), ec);
      buffer.consume(used);
      if (ec && ec != bhttp::error::need_more) return fail(failure::bad_response, ec);
      if (in_header && !header_within_limit(used, buffer.size())) {
        return fail(failure::bad_response, bhttp::error::header_limit);
      }
      if (ec) break;  // need more
      if (parser_->is_done()) finished();
    }
    return state_;
  }

  /// Where the next read may write: nothing, and the read failed, when the
  /// buffer is full (a chunk header or trailer longer than the buffer:
  /// Beast needs each whole).
  std::optional<beast::flat_buffer::mutable_buffers_type> room(beast::flat_buffer& buffer) {
    if (state_ != state::need_more) return std::nullopt;
    const auto size = beast::read_size(buffer, 65536);
    if (size == 0) {
      fail(failure::bad_response, bhttp::error::buffer_overflow);
      return std::nullopt;
    }
    return buffer.prepare(size);
  }

  /// The server closed its end: a response that ends with the connection
  /// is then whole; anything else is cut short.
  state end_of_stream() {
    if (state_ != state::need_more) return state_;
    beast::error_code ec = bhttp::error::partial_message;
    if (parser_->got_some()) parser_->put_eof(ec);  // Beast asserts it got some
    if (ec || !parser_->is_done()) {
      state_ = state::failed;
      failure_ = failure::closed;
      why_ = parser_->got_some() || interim_ != 0 ? "in the middle of a response"
                                                  : "before any response";
      return state_;
    }
    finished();
    return state_;
  }

  state current() const { return state_; }
  failure failed_as() const { return failure_; }
  /// Why the read failed, naming the limit when one was passed.
  const std::string& why() const { return why_; }
  /// Interim responses skipped so far.
  int interim() const { return interim_; }
  /// The response ends only when the server closes (no length, not
  /// chunked): the connection cannot carry another.
  bool needs_eof() const { return parser_->need_eof(); }
  /// The final response (once `done`).
  response release() { return parser_->release(); }

 private:
  void fresh_parser() {
    parser_.emplace();
    parser_->body_limit(body_limit_);
    http_limits::bound(*parser_);
    // Not eager until the header is whole, so that the put which ends the
    // header returns where it ends (header_within_limit counts it).
    parser_->eager(false);
    header_bytes_ = 0;
  }

  // Beast 1.81 applies its header limit to what each put is given from
  // where the previous one stopped, so a header over the limit passes or
  // not depending on how the bytes arrived. The limit here is on the whole
  // header (status line, fields and the empty line), wherever TCP split
  // it: after a put that ended the header, on its size; after one that did
  // not, on what the header already holds (consumed, and the unparsed rest
  // of the buffer, which the header's end is not in).
  bool header_within_limit(std::size_t used, std::size_t unparsed) {
    header_bytes_ += used;
    if (parser_->is_header_done()) {
      parser_->eager(true);
      return header_bytes_ <= http_limits::max_header;
    }
    return header_bytes_ + unparsed <= http_limits::max_header;
  }

  state fail(failure kind, const beast::error_code& ec) {
    state_ = state::failed;
    failure_ = kind;
    why_ = http_limits::limit_exceeded(ec);
    if (ec == bhttp::error::body_limit) {
      why_ = "the body is over " + std::to_string(body_limit_) + " bytes (config::body_limit)";
    } else if (why_.empty()) {
      why_ = ec.message();
    }
    return state_;
  }

  // A response parsed whole: the final one, or an interim one to skip.
  void finished() {
    const unsigned status = parser_->get().result_int();
    if (status < 100) {
      // Beast takes any three digits; HTTP's statuses start at 100.
      state_ = state::failed;
      failure_ = failure::bad_response;
      why_ = "status " + std::to_string(status) + " is not an HTTP status (100-999)";
      return;
    }
    if (status == 101) {
      // The server switched to another protocol, which a pooled HTTP
      // connection cannot speak: the caller gets an error, not a stream.
      state_ = state::failed;
      failure_ = failure::bad_response;
      why_ = "status 101 (Switching Protocols): the connector does not switch protocols";
      return;
    }
    if (status >= 100 && status <= 199) {
      if (interim_ == http_limits::max_interim_responses) {
        state_ = state::failed;
        failure_ = failure::bad_response;
        why_ = "more than " + std::to_string(http_limits::max_interim_responses) +
               " interim (1xx) responses before the final one";
        return;
      }
      ++interim_;
      fresh_parser();
      return;
    }
    state_ = state::done;
  }

  std::size_t body_limit_;
  std::optional<bhttp::response_parser<bhttp::string_body>> parser_;
  state state_ = state::need_more;
  failure failure_ = failure::none;
  std::string why_;
  int interim_ = 0;
  std::size_t header_bytes_ = 0;  // of the response being parsed
};

/// Why a connection cannot carry another request after a response read
/// whole; empty when it can. `leftover`: bytes the server sent beyond it.
inline std::string close_reason(bool client_keeps, bool server_keeps, bool needs_eof,
                                std::size_t leftover) {
  if (!client_keeps) return "the request asked to close it";
  if (!server_keeps) return "the server asked to close it";
  if (needs_eof) return "the response ended with the connection";
  if (leftover != 0) return "the server sent more than the response";
  return std::string();
}

}  // namespace qorb::detail::http_response
