# SPDX-License-Identifier: BSL-1.0
# The etcd resolver (qorb::etcd_resolver) and backend registration
# (qorb::etcd_registration): etcd's v3 JSON gateway over HTTP, on
# Boost.Beast and Boost.JSON (no gRPC stack). Library qorb_etcd (qorb::etcd).
find_package(Boost 1.81 CONFIG REQUIRED COMPONENTS json)
qorb_component(etcd SOURCES
  src/resolvers/etcd_codec.cpp
  src/resolvers/etcd_http.cpp
  src/resolvers/etcd_resolver.cpp
  src/resolvers/etcd_registration.cpp)
qorb_private_dependency(etcd Boost::json boost_json "")
