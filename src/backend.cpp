// SPDX-License-Identifier: BSL-1.0
#include <qorb/backend.hpp>

#include <charconv>

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

std::optional<asio::ip::tcp::endpoint> parse_endpoint(std::string_view text,
                                                      std::optional<std::uint16_t> default_port) {
  std::string_view host = text;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    const auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port_text = rest.substr(1);
      if (port_text.empty()) return std::nullopt;
    }
  } else if (const auto colon = text.find(':');
             colon != std::string_view::npos &&
             text.find(':', colon + 1) == std::string_view::npos) {
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (port_text.empty()) return std::nullopt;
  }
  std::uint16_t port = 0;
  if (port_text.empty()) {
    if (!default_port) return std::nullopt;
    port = *default_port;
  } else {
    unsigned value = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || value > 65535) {
      return std::nullopt;
    }
    port = static_cast<std::uint16_t>(value);
  }
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(std::string(host), ec);
  if (ec) return std::nullopt;
  return asio::ip::tcp::endpoint(address, port);
}

namespace {

// The host and port parts of "host:port", "[v6]:port", "host" or "[v6]".
struct host_port {
  std::string_view host;
  std::optional<std::string_view> port;
  bool ok = true;
};

host_port split_host_port(std::string_view text) {
  host_port out{text, std::nullopt};
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return {text, std::nullopt, false};
    out.host = text.substr(1, close - 1);
    const auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return {text, std::nullopt, false};
      out.port = rest.substr(1);
    }
  } else if (const auto colon = text.find(':');
             colon != std::string_view::npos &&
             text.find(':', colon + 1) == std::string_view::npos) {
    out.host = text.substr(0, colon);
    out.port = text.substr(colon + 1);
  }
  return out;
}

bool valid_port(std::string_view text) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return !text.empty() && ec == std::errc{} && end == text.data() + text.size() && value <= 65535;
}

// Letters, digits, '-', '.' and '_' (SRV-style labels): what a host name
// can hold, so that "10.0.0.1.2" is not called one while "db-1.local" is.
bool looks_like_host_name(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  bool letter = false;
  for (const char c : host) {
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    letter = letter || alpha || c == '-' || c == '_';
    if (!alpha && !(c >= '0' && c <= '9') && c != '-' && c != '.' && c != '_') return false;
  }
  return letter;
}

}  // namespace

std::string endpoint_error(std::string_view text, std::optional<std::uint16_t> default_port) {
  if (parse_endpoint(text, default_port)) return std::string();
  // Appended piece by piece (GCC PR 105329, as in to_string).
  std::string quoted;
  quoted += '"';
  quoted += text;
  quoted += '"';
  if (text.empty()) return "an empty string is not an address (IP:PORT or [IPv6]:PORT)";
  const auto parts = split_host_port(text);
  if (!parts.ok) return quoted + " is not an address: an IPv6 address is written [::1]:PORT";
  if (parts.port && !valid_port(*parts.port)) {
    return quoted + " has no valid port (a number from 0 to 65535 after the last ':')";
  }
  if (looks_like_host_name(parts.host)) {
    return quoted +
           " is a host name; the fixed resolver takes addresses: use qorb::dns_resolver or "
           "resolve it first (qorb::fixed_resolver::from_names)";
  }
  if (!parts.port && !default_port) {
    boost::system::error_code ec;
    asio::ip::make_address(std::string(parts.host), ec);
    if (!ec) return quoted + " has no port (IP:PORT or [IPv6]:PORT)";
  }
  return quoted + " is not an address (IP:PORT or [IPv6]:PORT)";
}

}  // namespace qorb
