// The etcd component's pure parts: base64, key ranges, backend values and
// the JSON of the v3 gateway's requests and replies. No I/O, so the tests
// can drive them directly.
#pragma once

#include <qorb/backend.hpp>

#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qorb::detail::etcd {

std::string base64_encode(std::string_view bytes);
/// Empty when `text` is not base64 (standard alphabet, padded or not).
std::optional<std::string> base64_decode(std::string_view text);

/// The end of the range of keys that start with `prefix` (the prefix with
/// its last byte that is not 0xff incremented, the rest dropped); "\0"
/// (every key from `prefix` on) when there is no such byte.
std::string prefix_end(std::string_view prefix);

/// A backend's value: "ip:port", "[v6]:port", or a JSON object
/// {"address": "ip", "port": N}. Empty (with `error` set) otherwise.
std::optional<asio::ip::tcp::endpoint> parse_value(std::string_view value, std::string& error);

/// One key-value pair as the gateway sends it (decoded).
struct key_value {
  std::string key;
  std::string value;
  std::int64_t mod_revision = 0;
};

/// One watch event.
struct watch_event {
  bool deleted = false;
  key_value kv;
};

/// What one reply (or one message of the watch stream) says.
struct reply {
  std::string error;  ///< non-empty: the gateway's error, or why it could not be read.
  std::int64_t revision = 0;  ///< header.revision
  std::vector<key_value> kvs;  ///< range
  std::vector<watch_event> events;  ///< watch
  bool created = false;  ///< watch created
  bool canceled = false;  ///< watch canceled
  std::int64_t compact_revision = 0;  ///< watch canceled by compaction
  std::string cancel_reason;
  std::string lease_id;  ///< lease grant / keepalive ("ID", a decimal string)
  std::int64_t ttl = 0;  ///< lease grant / keepalive ("TTL"; 0 or absent: lease gone)
};

/// Parses a gateway reply body; a watch stream message is {"result": ...}.
reply parse_reply(std::string_view body);

std::string range_request(std::string_view prefix);
std::string watch_request(std::string_view prefix, std::int64_t start_revision);
std::string grant_request(std::int64_t ttl_seconds);
std::string put_request(std::string_view key, std::string_view value, std::string_view lease_id);
std::string lease_request(std::string_view lease_id);  ///< keepalive, revoke

}  // namespace qorb::detail::etcd
