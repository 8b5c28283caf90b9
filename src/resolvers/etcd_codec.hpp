// SPDX-License-Identifier: BSL-1.0
// The etcd component's pure parts: base64, key ranges, backend values and
// the JSON of the v3 gateway's requests and replies. No I/O, so the tests
// can drive them directly.
#pragma once

#include <qorb/backend.hpp>

#include <boost/json/value.hpp>

#include <cstddef>
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
  std::string error;           ///< non-empty: the gateway's error, or why it could not be read.
  std::int64_t revision = 0;   ///< header.revision
  std::vector<key_value> kvs;  ///< range
  std::vector<watch_event> events;    ///< watch
  bool created = false;               ///< watch created
  bool canceled = false;              ///< watch canceled
  std::int64_t compact_revision = 0;  ///< watch canceled by compaction
  std::string cancel_reason;
  std::string lease_id;  ///< lease grant / keepalive ("ID", a decimal string)
  std::int64_t ttl = 0;  ///< lease grant / keepalive ("TTL"; 0 or absent: lease gone)
};

/// Parses a gateway reply body; a watch stream message is {"result": ...}.
/// Revisions are integers from 0 to INT64_MAX: a negative one, or one that
/// is not an integer, is an error naming the field; a TTL beyond int64
/// saturates.
reply parse_reply(std::string_view body);

/// The revision after `revision`, saturating at INT64_MAX (a watch from
/// there sees the last event again, which changes nothing).
std::int64_t next_revision(std::int64_t revision);

/// The most a reply body, or one message of the watch stream, may hold.
/// A watch message can batch the events of many revisions (etcd sends up
/// to 1,000 per message when a watch catches up), so it gets the same
/// bound as a range read of the whole prefix rather than a smaller one
/// that a legitimate catch-up could exceed on every member at once.
inline constexpr std::size_t max_reply = 64 * 1024 * 1024;

/// Splits the watch stream's body into lines. Pure, so the fuzz target can
/// drive it without sockets; remembers how far it searched, so a long
/// line costs each byte once (searching from the start after every read
/// made a line that never ends cost one core).
class line_splitter {
 public:
  enum class status { line, more, too_long };
  /// The next non-blank line of `pending` (removed from it, with its
  /// '\n'), `more` when none is complete yet, `too_long` once an
  /// incomplete line has reached `max_line` bytes.
  status next(std::string& pending, std::string& line, std::size_t max_line = max_reply);

 private:
  std::size_t searched_ = 0;
};

std::string range_request(std::string_view prefix);
std::string watch_request(std::string_view prefix, std::int64_t start_revision);
std::string grant_request(std::int64_t ttl_seconds);
std::string put_request(std::string_view key, std::string_view value, std::string_view lease_id);
std::string lease_request(std::string_view lease_id);  ///< keepalive, revoke

}  // namespace qorb::detail::etcd
