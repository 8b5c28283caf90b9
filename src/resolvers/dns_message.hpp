// SPDX-License-Identifier: BSL-1.0
// qorb internal: reading DNS messages (RFC 1035 wire format), no I/O.
#pragma once

#include <boost/asio/ip/address.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace qorb::detail::dns {

namespace asio = boost::asio;

enum class rr_type : std::uint16_t { a = 1, cname = 5, aaaa = 28, srv = 33 };

enum class rcode : std::uint8_t {
  noerror = 0,
  formerr = 1,
  servfail = 2,
  nxdomain = 3,
  notimp = 4,
  refused = 5
};

struct srv_data {
  std::uint16_t priority = 0;
  std::uint16_t weight = 0;
  std::uint16_t port = 0;
  std::string target;

  friend bool operator==(const srv_data&, const srv_data&) = default;
};

/// One resource record. `name` is in canonical form (see `canonical_name`);
/// `data` holds the decoded A/AAAA/SRV/CNAME payload, or nothing for types
/// qorb does not use.
struct record {
  std::string name;
  std::uint16_t type = 0;
  std::uint32_t ttl = 0;
  std::variant<std::monostate, asio::ip::address, srv_data, std::string> data;

  friend bool operator==(const record&, const record&) = default;
};

struct message {
  std::uint16_t id = 0;
  bool truncated = false;
  std::uint8_t rcode = 0;
  std::vector<record> answers;
  std::vector<record> additional;
};

/// Lower case, without the trailing dot ("Backend1.Test.COM." ->
/// "backend1.test.com"); how qorb compares DNS names.
std::string canonical_name(std::string_view name);

/// Decodes a response. Returns nothing, with the reason in `error`, when
/// the bytes are not a well-formed DNS response: out-of-bounds lengths,
/// compression loops or forward pointers, over-long names, bad rdata sizes,
/// a query instead of a response. Never reads outside `bytes`.
std::optional<message> parse_response(std::span<const std::uint8_t> bytes, std::string& error);

}  // namespace qorb::detail::dns
