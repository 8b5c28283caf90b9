// SPDX-License-Identifier: BSL-1.0
#include "resolvers/etcd_codec.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>

namespace qorb::detail::etcd {

namespace json = boost::json;

namespace {

constexpr std::string_view alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<std::int8_t, 256> decoding_table() {
  std::array<std::int8_t, 256> table{};
  for (auto& t : table) t = -1;
  for (std::size_t i = 0; i < alphabet.size(); ++i) {
    table[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int8_t>(i);
  }
  return table;
}

// jsonpb writes int64 fields as strings; accept numbers too. A value
// outside int64 saturates (it is never wrapped into a negative one).
// Absent: 0. False when present but not an integer.
bool as_int64(const json::object& o, std::string_view field, std::int64_t& out) {
  out = 0;
  const auto* v = o.if_contains(field);
  if (!v) return true;
  constexpr auto most = std::numeric_limits<std::int64_t>::max();
  if (const auto* i = v->if_int64()) {
    out = *i;
    return true;
  }
  if (const auto* u = v->if_uint64()) {
    out = *u > static_cast<std::uint64_t>(most) ? most : static_cast<std::int64_t>(*u);
    return true;
  }
  if (const auto* s = v->if_string()) {
    const auto* first = s->data();
    const auto* last = s->data() + s->size();
    const auto [end, ec] = std::from_chars(first, last, out);
    if (end != last || s->empty()) return false;
    if (ec == std::errc::result_out_of_range) {
      out = *first == '-' ? std::numeric_limits<std::int64_t>::min() : most;
      return true;
    }
    return ec == std::errc{};
  }
  return false;
}

// A revision: an integer from 0 to INT64_MAX (etcd's are int64 and start at
// 1); `error` names the field otherwise.
bool read_revision(const json::object& o, std::string_view field, std::string_view where,
                   std::int64_t& out, std::string& error) {
  if (!as_int64(o, field, out) || out < 0) {
    const auto* v = o.if_contains(field);
    error = std::string(where).append(field).append(" is not a revision (0 to 2^63-1): ");
    error.append(json::serialize(*v).substr(0, 40));
    out = 0;
    return false;
  }
  return true;
}

std::string as_string(const json::object& o, std::string_view field) {
  const auto* v = o.if_contains(field);
  if (!v) return {};
  if (const auto* s = v->if_string()) return std::string(*s);
  if (v->is_int64() || v->is_uint64()) return json::serialize(*v);
  return {};
}

// A key or value field: base64 in the reply; absent means empty.
bool decode_field(const json::object& o, std::string_view field, std::string& out) {
  const auto text = as_string(o, field);
  auto decoded = base64_decode(text);
  if (!decoded) return false;
  out = std::move(*decoded);
  return true;
}

bool read_kv(const json::value& v, key_value& out, std::string& error) {
  const auto* o = v.if_object();
  if (!o) {
    error = "a key-value is not an object";
    return false;
  }
  if (!read_revision(*o, "mod_revision", "kv.", out.mod_revision, error)) return false;
  if (!decode_field(*o, "key", out.key) || !decode_field(*o, "value", out.value)) {
    error = "a key or value is not base64";
    return false;
  }
  return true;
}

std::string serialize(const json::object& o) { return json::serialize(o); }

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const auto n = (static_cast<unsigned>(static_cast<unsigned char>(bytes[i])) << 16) |
                   (static_cast<unsigned>(static_cast<unsigned char>(bytes[i + 1])) << 8) |
                   static_cast<unsigned>(static_cast<unsigned char>(bytes[i + 2]));
    out += alphabet[(n >> 18) & 63];
    out += alphabet[(n >> 12) & 63];
    out += alphabet[(n >> 6) & 63];
    out += alphabet[n & 63];
  }
  const auto rest = bytes.size() - i;
  if (rest > 0) {
    unsigned n = static_cast<unsigned>(static_cast<unsigned char>(bytes[i])) << 16;
    if (rest == 2) n |= static_cast<unsigned>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    out += alphabet[(n >> 18) & 63];
    out += alphabet[(n >> 12) & 63];
    out += rest == 2 ? alphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  static constexpr auto table = decoding_table();
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  unsigned bits = 0;
  int count = 0;
  for (const char c : text) {
    const auto d = table[static_cast<unsigned char>(c)];
    if (d < 0) return std::nullopt;
    bits = (bits << 6) | static_cast<unsigned>(d);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xff);
    }
  }
  return out;
}

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto& last = end.back();
    if (static_cast<unsigned char>(last) != 0xff) {
      last = static_cast<char>(static_cast<unsigned char>(last) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

std::optional<asio::ip::tcp::endpoint> parse_value(std::string_view value, std::string& error) {
  auto trimmed = value;
  while (!trimmed.empty() && (trimmed.back() == '\n' || trimmed.back() == ' ')) {
    trimmed.remove_suffix(1);
  }
  while (!trimmed.empty() && (trimmed.front() == ' ' || trimmed.front() == '\n')) {
    trimmed.remove_prefix(1);
  }
  if (!trimmed.empty() && trimmed.front() == '{') {
    boost::system::error_code ec;
    const auto v = json::parse(trimmed, ec);
    const auto* o = ec ? nullptr : v.if_object();
    if (!o) {
      error = "not a JSON object";
      return std::nullopt;
    }
    const auto* address = o->if_contains("address");
    if (!address || !address->is_string()) {
      error = "the JSON object has no \"address\" string";
      return std::nullopt;
    }
    const std::string text(address->get_string());
    const auto* port = o->if_contains("port");
    if (!port) {
      auto parsed = parse_endpoint(text);
      if (!parsed || parsed->port() == 0) {
        error = "\"address\" '" + text + "' is not ip:port and there is no \"port\"";
        return std::nullopt;
      }
      return parsed;
    }
    std::int64_t p = -1;
    if (const auto* i = port->if_int64()) p = *i;
    if (const auto* u = port->if_uint64()) p = *u > 65535 ? -1 : static_cast<std::int64_t>(*u);
    if (p < 1 || p > 65535) {
      error = std::string("\"port\" ")
                  .append(json::serialize(*port))
                  .append(" is not a port (1 to 65535)");
      return std::nullopt;
    }
    boost::system::error_code aec;
    auto host = text;
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    const auto ip = asio::ip::make_address(host, aec);
    if (aec) {
      error = "\"address\" '" + text + "' is not an IP address";
      return std::nullopt;
    }
    return asio::ip::tcp::endpoint(ip, static_cast<unsigned short>(p));
  }
  auto parsed = parse_endpoint(trimmed);
  if (!parsed || parsed->port() == 0) {
    error = "not ip:port, [v6]:port or {\"address\": ..., \"port\": ...}";
    return std::nullopt;
  }
  return parsed;
}

reply parse_reply(std::string_view body) {
  reply out;
  boost::system::error_code ec;
  const auto v = json::parse(body, ec);
  if (ec || !v.is_object()) {
    out.error = "not a JSON object";
    if (ec) out.error.append(": ").append(ec.message());
    return out;
  }
  const json::object* o = &v.get_object();
  if (const auto* r = o->if_contains("result"); r && r->is_object()) o = &r->get_object();
  if (const auto* e = o->if_contains("error")) {
    out.error = "etcd: ";
    if (const auto* obj = e->if_object()) {
      out.error += as_string(*obj, "message");
    } else {
      const auto message = as_string(*o, "message");
      out.error += message.empty() && e->is_string() ? std::string(e->get_string()) : message;
    }
    return out;
  }
  if (const auto* h = o->if_contains("header"); h && h->is_object()) {
    if (!read_revision(h->get_object(), "revision", "header.", out.revision, out.error)) return out;
  }
  if (const auto* kvs = o->if_contains("kvs"); kvs && kvs->is_array()) {
    for (const auto& kv : kvs->get_array()) {
      key_value parsed;
      if (!read_kv(kv, parsed, out.error)) return out;
      out.kvs.push_back(std::move(parsed));
    }
  }
  if (const auto* events = o->if_contains("events"); events && events->is_array()) {
    for (const auto& e : events->get_array()) {
      const auto* eo = e.if_object();
      const auto* kv = eo ? eo->if_contains("kv") : nullptr;
      watch_event parsed;
      if (!kv) {
        out.error = "a watch event without a kv";
        return out;
      }
      if (!read_kv(*kv, parsed.kv, out.error)) {
        out.error.insert(0, "a watch event: ");
        return out;
      }
      parsed.deleted = as_string(*eo, "type") == "DELETE";
      out.events.push_back(std::move(parsed));
    }
  }
  if (const auto* c = o->if_contains("created")) out.created = c->is_bool() && c->get_bool();
  if (const auto* c = o->if_contains("canceled")) out.canceled = c->is_bool() && c->get_bool();
  if (!read_revision(*o, "compact_revision", "", out.compact_revision, out.error)) return out;
  out.cancel_reason = as_string(*o, "cancel_reason");
  out.lease_id = as_string(*o, "ID");
  // Negative or absent: the lease is gone. Huge: saturated here, bounded
  // by the registration.
  if (!as_int64(*o, "TTL", out.ttl)) {
    out.error = "TTL is not an integer";
    return out;
  }
  return out;
}

line_splitter::status line_splitter::next(std::string& pending, std::string& line,
                                          std::size_t max_line) {
  for (;;) {
    const auto end = pending.find('\n', std::min(searched_, pending.size()));
    if (end == std::string::npos) {
      searched_ = pending.size();
      return pending.size() >= max_line ? status::too_long : status::more;
    }
    searched_ = 0;
    if (end >= max_line) return status::too_long;
    line.assign(pending, 0, end);
    pending.erase(0, end + 1);
    if (line.find_first_not_of(" \r\t") != std::string::npos) return status::line;
  }
}

std::string range_request(std::string_view prefix) {
  return serialize(
      {{"key", base64_encode(prefix)}, {"range_end", base64_encode(prefix_end(prefix))}});
}

std::int64_t next_revision(std::int64_t revision) {
  return revision < std::numeric_limits<std::int64_t>::max()
             ? std::max<std::int64_t>(revision, 0) + 1
             : revision;
}

std::string watch_request(std::string_view prefix, std::int64_t start_revision) {
  json::object create{{"key", base64_encode(prefix)},
                      {"range_end", base64_encode(prefix_end(prefix))},
                      {"start_revision", std::to_string(start_revision)}};
  return serialize({{"create_request", std::move(create)}});
}

std::string grant_request(std::int64_t ttl_seconds) {
  return serialize({{"TTL", std::to_string(ttl_seconds)}});
}

std::string put_request(std::string_view key, std::string_view value, std::string_view lease_id) {
  return serialize(
      {{"key", base64_encode(key)}, {"value", base64_encode(value)}, {"lease", lease_id}});
}

std::string lease_request(std::string_view lease_id) { return serialize({{"ID", lease_id}}); }

}  // namespace qorb::detail::etcd
