// SPDX-License-Identifier: BSL-1.0
// Test-only: building DNS messages byte by byte, to feed the parser and to
// answer from the fake UDP server.
#pragma once

#include <boost/asio/ip/address.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace qorb::test::dns {

using bytes = std::vector<std::uint8_t>;

inline void put16(bytes& b, std::uint16_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v & 0xFF));
}

inline void put32(bytes& b, std::uint32_t v) {
  put16(b, static_cast<std::uint16_t>(v >> 16));
  put16(b, static_cast<std::uint16_t>(v & 0xFFFF));
}

/// Uncompressed wire form of a dotted name ("" or "." is the root).
inline bytes encode_name(const std::string& name) {
  bytes b;
  if (name == ".") return {0};
  std::size_t start = 0;
  while (start < name.size()) {
    auto dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    b.push_back(static_cast<std::uint8_t>(dot - start));
    b.insert(b.end(), name.begin() + static_cast<std::ptrdiff_t>(start),
             name.begin() + static_cast<std::ptrdiff_t>(dot));
    start = dot + 1;
  }
  b.push_back(0);
  return b;
}

struct rr {
  std::string name;
  std::uint16_t type;
  std::uint32_t ttl;
  bytes rdata;
};

inline rr a_rr(const std::string& name, std::uint32_t ttl, const std::string& ip) {
  const auto a = boost::asio::ip::make_address_v4(ip).to_bytes();
  return {name, 1, ttl, bytes(a.begin(), a.end())};
}

inline rr aaaa_rr(const std::string& name, std::uint32_t ttl, const std::string& ip) {
  const auto a = boost::asio::ip::make_address_v6(ip).to_bytes();
  return {name, 28, ttl, bytes(a.begin(), a.end())};
}

inline rr cname_rr(const std::string& name, std::uint32_t ttl, const std::string& target) {
  return {name, 5, ttl, encode_name(target)};
}

inline rr srv_rr(const std::string& name, std::uint32_t ttl, std::uint16_t port,
                 const std::string& target, std::uint16_t priority = 0, std::uint16_t weight = 0) {
  bytes d;
  put16(d, priority);
  put16(d, weight);
  put16(d, port);
  const auto t = encode_name(target);
  d.insert(d.end(), t.begin(), t.end());
  return {name, 33, ttl, d};
}

inline void put_rr(bytes& b, const rr& r) {
  const auto n = encode_name(r.name);
  b.insert(b.end(), n.begin(), n.end());
  put16(b, r.type);
  put16(b, 1);
  put32(b, r.ttl);
  put16(b, static_cast<std::uint16_t>(r.rdata.size()));
  b.insert(b.end(), r.rdata.begin(), r.rdata.end());
}

struct response_spec {
  std::uint16_t id = 0x1234;
  std::uint8_t rcode = 0;
  bool truncated = false;
  std::string qname = "_echo._tcp.test.com";
  std::uint16_t qtype = 33;
  std::vector<rr> answers;
  std::vector<rr> additional;
};

inline bytes build_response(const response_spec& s) {
  bytes b;
  put16(b, s.id);
  std::uint16_t flags = 0x8000 | 0x0400 | 0x0100 | 0x0080 | s.rcode;  // QR AA RD RA
  if (s.truncated) flags |= 0x0200;
  put16(b, flags);
  put16(b, 1);
  put16(b, static_cast<std::uint16_t>(s.answers.size()));
  put16(b, 0);
  put16(b, static_cast<std::uint16_t>(s.additional.size()));
  const auto q = encode_name(s.qname);
  b.insert(b.end(), q.begin(), q.end());
  put16(b, s.qtype);
  put16(b, 1);
  for (const auto& r : s.answers) put_rr(b, r);
  for (const auto& r : s.additional) put_rr(b, r);
  return b;
}

/// The id, question name and type of a query (the fake server echoes them).
struct query_info {
  std::uint16_t id = 0;
  std::string qname;
  std::uint16_t qtype = 0;
  bool ok = false;
};

inline query_info read_query(const std::uint8_t* data, std::size_t size) {
  query_info q;
  if (size < 12) return q;
  q.id = static_cast<std::uint16_t>((data[0] << 8) | data[1]);
  std::size_t pos = 12;
  while (pos < size && data[pos] != 0) {
    const std::size_t len = data[pos];
    if (pos + 1 + len > size) return q;
    if (!q.qname.empty()) q.qname += '.';
    q.qname.append(reinterpret_cast<const char*>(data + pos + 1), len);
    pos += 1 + len;
  }
  if (pos + 5 > size) return q;
  q.qtype = static_cast<std::uint16_t>((data[pos + 1] << 8) | data[pos + 2]);
  q.ok = true;
  return q;
}

}  // namespace qorb::test::dns
