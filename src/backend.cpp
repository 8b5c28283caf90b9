#include <qorb/backend.hpp>

namespace qorb {

std::string to_string(const asio::ip::tcp::endpoint& endpoint) {
  const auto address = endpoint.address();
  // Appended piece by piece: GCC 12 at -O3 flags `"[" + std::string&&`
  // with a false -Wrestrict (GCC PR 105329), which -Werror makes fatal.
  std::string out;
  if (address.is_v6()) {
    out += '[';
    out += address.to_string();
    out += ']';
  } else {
    out += address.to_string();
  }
  out += ':';
  out += std::to_string(endpoint.port());
  return out;
}

}  // namespace qorb
