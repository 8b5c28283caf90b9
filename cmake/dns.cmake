# The DNS resolver (qorb::dns_resolver): c-ares, driven by Asio.
find_package(PkgConfig REQUIRED)
pkg_check_modules(CARES REQUIRED IMPORTED_TARGET libcares)
target_sources(qorb PRIVATE
  src/resolvers/dns_message.cpp
  src/resolvers/dns_lookup.cpp
  src/resolvers/dns_state.cpp
  src/resolvers/dns_resolver.cpp)
# The resolver's private headers are included as "resolvers/...".
target_include_directories(qorb PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
qorb_private_dependency(PkgConfig::CARES cares libcares)
