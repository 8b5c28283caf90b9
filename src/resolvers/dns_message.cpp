// SPDX-License-Identifier: BSL-1.0
#include "resolvers/dns_message.hpp"

#include <algorithm>
#include <cctype>

namespace qorb::detail::dns {

namespace {

constexpr std::size_t header_size = 12;
constexpr std::size_t max_name_length = 255;
// A name of at most 255 bytes has at most 127 labels, so a longer chain of
// compression pointers cannot be a real name; the cap keeps a hostile chain
// from costing more than this per name.
constexpr std::size_t max_pointers_per_name = 127;

// A bounds-checked cursor over the message; every read fails (sets `ok`
// false) instead of reading past the end.
class reader {
 public:
  explicit reader(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  std::size_t position() const { return pos_; }
  void fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
  }

  std::uint8_t u8() {
    if (!need(1)) return 0;
    return bytes_[pos_++];
  }
  std::uint16_t u16() {
    if (!need(2)) return 0;
    const auto v = static_cast<std::uint16_t>((bytes_[pos_] << 8) | bytes_[pos_ + 1]);
    pos_ += 2;
    return v;
  }
  std::uint32_t u32() {
    const std::uint32_t high = u16();
    const std::uint32_t low = u16();
    return (high << 16) | low;
  }
  void skip(std::size_t n) {
    if (need(n)) pos_ += n;
  }
  std::span<const std::uint8_t> take(std::size_t n) {
    if (!need(n)) return {};
    auto s = bytes_.subspan(pos_, n);
    pos_ += n;
    return s;
  }

  // A possibly compressed name. Pointers must point strictly backwards
  // (which also rules out loops).
  std::string name() {
    std::string out;
    std::size_t pos = pos_;
    std::optional<std::size_t> resume;  // where to continue after the first pointer
    std::size_t lowest_pointer = pos_;
    std::size_t pointers = 0;
    for (;;) {
      if (pos >= bytes_.size()) {
        fail("name runs past the end of the message");
        return {};
      }
      const std::uint8_t len = bytes_[pos];
      if ((len & 0xC0) == 0xC0) {
        if (pos + 1 >= bytes_.size()) {
          fail("compression pointer runs past the end of the message");
          return {};
        }
        const std::size_t target = static_cast<std::size_t>((len & 0x3F) << 8) | bytes_[pos + 1];
        if (target >= lowest_pointer) {
          fail("compression pointer does not point backwards");
          return {};
        }
        if (++pointers > max_pointers_per_name) {
          fail("too many compression pointers in one name");
          return {};
        }
        if (!resume) resume = pos + 2;
        lowest_pointer = target;
        pos = target;
        continue;
      }
      if ((len & 0xC0) != 0) {
        fail("unsupported label type");
        return {};
      }
      if (len == 0) {
        pos_ = resume ? *resume : pos + 1;
        return out;
      }
      if (pos + 1 + len > bytes_.size()) {
        fail("label runs past the end of the message");
        return {};
      }
      if (!out.empty()) out += '.';
      out.append(reinterpret_cast<const char*>(bytes_.data() + pos + 1), len);
      if (out.size() > max_name_length) {
        fail("name longer than 255 bytes");
        return {};
      }
      pos += 1 + len;
    }
  }

 private:
  bool need(std::size_t n) {
    if (!ok()) return false;
    if (bytes_.size() - pos_ < n) {
      fail("message truncated");
      return false;
    }
    return true;
  }

  std::span<const std::uint8_t> bytes_;
  std::size_t pos_ = 0;
  std::string error_;
};

record read_record(reader& r) {
  record rec;
  rec.name = canonical_name(r.name());
  rec.type = r.u16();
  r.u16();  // class
  rec.ttl = r.u32();
  // RFC 2181: a TTL with the top bit set is treated as zero.
  if (rec.ttl > 0x7FFFFFFFu) rec.ttl = 0;
  const std::uint16_t rdlength = r.u16();
  if (!r.ok()) return rec;
  const std::size_t end = r.position() + rdlength;
  switch (static_cast<rr_type>(rec.type)) {
    case rr_type::a: {
      if (rdlength != 4) {
        r.fail("A record with " + std::to_string(rdlength) + " bytes of data");
        return rec;
      }
      asio::ip::address_v4::bytes_type b;
      const auto s = r.take(4);
      if (!r.ok()) return rec;
      std::copy(s.begin(), s.end(), b.begin());
      rec.data = asio::ip::address(asio::ip::address_v4(b));
      break;
    }
    case rr_type::aaaa: {
      if (rdlength != 16) {
        r.fail("AAAA record with " + std::to_string(rdlength) + " bytes of data");
        return rec;
      }
      asio::ip::address_v6::bytes_type b;
      const auto s = r.take(16);
      if (!r.ok()) return rec;
      std::copy(s.begin(), s.end(), b.begin());
      rec.data = asio::ip::address(asio::ip::address_v6(b));
      break;
    }
    case rr_type::srv: {
      srv_data srv;
      srv.priority = r.u16();
      srv.weight = r.u16();
      srv.port = r.u16();
      srv.target = canonical_name(r.name());
      if (r.ok() && r.position() != end) r.fail("SRV record data length mismatch");
      rec.data = std::move(srv);
      break;
    }
    case rr_type::cname: {
      std::string target = canonical_name(r.name());
      if (r.ok() && r.position() != end) r.fail("CNAME record data length mismatch");
      rec.data = std::move(target);
      break;
    }
    default:
      r.skip(rdlength);
      break;
  }
  return rec;
}

}  // namespace

std::string canonical_name(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string out(name);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::optional<message> parse_response(std::span<const std::uint8_t> bytes, std::string& error) {
  reader r(bytes);
  message m;
  m.id = r.u16();
  const std::uint16_t flags = r.u16();
  const std::uint16_t qdcount = r.u16();
  const std::uint16_t ancount = r.u16();
  const std::uint16_t nscount = r.u16();
  const std::uint16_t arcount = r.u16();
  if (!r.ok()) {
    error = "message shorter than a DNS header (" + std::to_string(bytes.size()) + " bytes)";
    return std::nullopt;
  }
  if ((flags & 0x8000) == 0) {
    error = "not a response";
    return std::nullopt;
  }
  m.truncated = (flags & 0x0200) != 0;
  m.rcode = static_cast<std::uint8_t>(flags & 0x000F);
  // Each record takes at least 11 bytes and each question 5: a count that
  // cannot fit is malformed, however the records would parse.
  const std::size_t minimum =
      header_size + std::size_t{qdcount} * 5 + (std::size_t{ancount} + nscount + arcount) * 11;
  if (minimum > bytes.size()) {
    error = "record counts do not fit in the message";
    return std::nullopt;
  }
  for (std::uint16_t i = 0; i < qdcount && r.ok(); ++i) {
    r.name();
    r.skip(4);
  }
  m.answers.reserve(ancount);
  for (std::uint16_t i = 0; i < ancount && r.ok(); ++i) m.answers.push_back(read_record(r));
  for (std::uint16_t i = 0; i < nscount && r.ok(); ++i) read_record(r);
  m.additional.reserve(arcount);
  for (std::uint16_t i = 0; i < arcount && r.ok(); ++i) m.additional.push_back(read_record(r));
  if (!r.ok()) {
    error = r.error();
    return std::nullopt;
  }
  return m;
}

}  // namespace qorb::detail::dns
