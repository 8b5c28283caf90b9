// SPDX-License-Identifier: BSL-1.0
// libFuzzer target: the DNS message parser and one server's lookup fed the
// parsed answer (SRV, then every follow-up question answered with the same
// bytes). Whatever the bytes, parsing must stay in bounds and the lookup
// must end with at most max_backends backends.
#include "resolvers/dns_lookup.hpp"
#include "resolvers/dns_message.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace qorb::detail::dns;
  const std::span<const std::uint8_t> bytes(data, size);
  std::string error;
  static_cast<void>(parse_response(bytes, error));

  lookup_limits limits;
  limits.max_backends = 64;
  server_lookup lookup("_echo._tcp.test.com", qorb::address_family::both, std::uint16_t{80},
                       limits);
  auto next = lookup.on_answer(lookup.first_question(), bytes);
  for (const auto& q : next) lookup.on_answer(q, bytes);
  if (lookup.result().backends.size() > limits.max_backends) std::abort();
  if (!next.empty() && !lookup.done() && next.size() > 2 * max_srv_targets) std::abort();
  return 0;
}
