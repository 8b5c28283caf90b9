# SPDX-License-Identifier: BSL-1.0
# Observability: qorb::stats_server (HTTP /stats, /metrics, WebSocket
# /qtop/stats) on Boost.Beast, Boost.JSON and prometheus-cpp, and the same
# metrics in the application's prometheus-cpp registry or exposer
# (<qorb/metrics.hpp>, which names prometheus-cpp's types but includes none
# of its headers). The public headers keep Beast out; only these sources
# compile it. Library qorb_observability (qorb::observability).
find_package(Boost 1.81 CONFIG REQUIRED COMPONENTS json)
find_package(prometheus-cpp CONFIG REQUIRED)
qorb_component(observability SOURCES
  src/observability/stats_server.cpp
  src/observability/stats_session.cpp
  src/observability/stats_registry.cpp
  src/observability/stats_json.cpp
  src/observability/stats_prometheus.cpp
  src/observability/stats_limits.cpp
  src/observability/stats_request.cpp
  src/observability/metrics.cpp)
qorb_private_dependency(observability Boost::json boost_json "")
qorb_private_dependency(observability prometheus-cpp::core prometheus-cpp-core prometheus-cpp-core)
