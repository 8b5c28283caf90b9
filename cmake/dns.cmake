# SPDX-License-Identifier: BSL-1.0
# The DNS resolver (qorb::dns_resolver): c-ares, driven by Asio. Library
# qorb_dns (qorb::dns).
find_package(PkgConfig REQUIRED)
pkg_check_modules(CARES REQUIRED IMPORTED_TARGET libcares)
qorb_component(dns SOURCES
  src/resolvers/dns_message.cpp
  src/resolvers/dns_lookup.cpp
  src/resolvers/dns_state.cpp
  src/resolvers/ares_transport.cpp
  src/resolvers/dns_resolver.cpp)
qorb_private_dependency(dns PkgConfig::CARES cares libcares)
