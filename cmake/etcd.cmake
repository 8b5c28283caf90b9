# The etcd resolver (qorb::etcd_resolver) and backend registration
# (qorb::etcd_registration): etcd's v3 JSON gateway over HTTP, on
# Boost.Beast and Boost.JSON (no gRPC stack).
find_package(Boost 1.81 CONFIG REQUIRED COMPONENTS json)
target_sources(qorb PRIVATE
  src/resolvers/etcd_codec.cpp
  src/resolvers/etcd_http.cpp
  src/resolvers/etcd_resolver.cpp
  src/resolvers/etcd_registration.cpp)
# The component's private headers are included as "resolvers/...".
target_include_directories(qorb PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
# Once in qorb.pc's Libs, also when observability links it too.
get_property(qorb_pc_libs GLOBAL PROPERTY QORB_PC_LIBS)
if(qorb_pc_libs MATCHES "-lboost_json")
  target_link_libraries(qorb PRIVATE $<BUILD_INTERFACE:Boost::json>)
else()
  qorb_private_dependency(Boost::json boost_json "")
endif()
