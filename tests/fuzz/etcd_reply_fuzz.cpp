// SPDX-License-Identifier: BSL-1.0
// libFuzzer target: the etcd client's replies and watch stream. The bytes
// are parsed whole as one gateway reply, then fed as a watch stream's body
// in pieces (sized by the bytes themselves) through the line splitter with
// a small line bound, each line parsed as a watch message and each value
// read as a backend address. Whatever the bytes: no throw, no line or
// pending text past its bound, no revision negative, and the next watch's
// start revision never below the last one (no overflow).
#include "resolvers/etcd_codec.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using namespace qorb::detail::etcd;

constexpr std::size_t max_line = 512;

void check(const reply& r) {
  if (!r.error.empty()) return;
  if (r.revision < 0 || r.compact_revision < 0) std::abort();
  if (next_revision(r.revision) < r.revision || next_revision(r.revision) < 1) std::abort();
  for (const auto& kv : r.kvs) {
    if (kv.mod_revision < 0) std::abort();
    std::string error;
    if (!parse_value(kv.value, error) && error.empty()) std::abort();
  }
  for (const auto& e : r.events) {
    if (e.kv.mod_revision < 0) std::abort();
    std::string error;
    if (!parse_value(e.kv.value, error) && error.empty()) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    check(parse_reply(bytes));

    line_splitter lines;
    std::string pending;
    std::string line;
    std::size_t at = 0;
    while (at < bytes.size()) {
      const std::size_t piece = 1 + static_cast<unsigned char>(bytes[at]) % 64;
      pending.append(bytes.substr(at, piece));
      at += piece;
      for (;;) {
        const auto got = lines.next(pending, line, max_line);
        if (got == line_splitter::status::too_long) return 0;  // the member fails here
        if (got == line_splitter::status::more) break;
        if (line.size() >= max_line || line.find('\n') != std::string::npos) std::abort();
        check(parse_reply(line));
      }
      if (pending.size() >= max_line) std::abort();
    }
  } catch (...) {
    std::abort();  // nothing in the client's parsing may throw
  }
  return 0;
}
