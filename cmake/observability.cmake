# Observability: qorb::stats_server (HTTP /stats, /metrics, WebSocket
# /qtop/stats) on Boost.Beast, Boost.JSON and prometheus-cpp. The public
# header keeps Beast out; only this one source file compiles it.
find_package(Boost 1.81 CONFIG REQUIRED COMPONENTS json)
find_package(prometheus-cpp CONFIG REQUIRED)
target_sources(qorb PRIVATE src/observability/stats_server.cpp src/observability/stats_request.cpp)
qorb_private_dependency(Boost::json boost_json "")
qorb_private_dependency(prometheus-cpp::core prometheus-cpp-core prometheus-cpp-core)
