#include <qorb/backend.hpp>

namespace qorb {

std::string to_string(const asio::ip::tcp::endpoint& endpoint) {
  const auto address = endpoint.address();
  const auto port = std::to_string(endpoint.port());
  if (address.is_v6()) {
    return "[" + address.to_string() + "]:" + port;
  }
  return address.to_string() + ":" + port;
}

}  // namespace qorb
