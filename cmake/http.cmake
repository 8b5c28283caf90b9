# SPDX-License-Identifier: BSL-1.0
# HTTP/1.1 keep-alive connector (qorb::connectors::http), on Boost.Beast
# (header-only, part of Boost); plain or over the tls component's
# connector, so it needs that component. Library qorb_http (qorb::http).
if(NOT "tls" IN_LIST QORB_COMPONENTS)
  message(FATAL_ERROR "QORB_COMPONENTS: the http component needs the tls component "
    "(in '${QORB_COMPONENTS}'); add tls, or drop http")
endif()
qorb_component(http SOURCES src/connectors/http.cpp REQUIRES tls)
