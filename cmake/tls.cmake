# SPDX-License-Identifier: BSL-1.0
# TLS connector (qorb::tls_connector), on Asio SSL over Debian's OpenSSL
# (libssl-dev). The public header includes Asio's SSL headers, so consumers
# compile OpenSSL calls themselves and link libssl and libcrypto (named in
# the installed interface and in qorb-tls.pc); OpenSSL's headers are in the
# system include path. Library qorb_tls (qorb::tls).
find_package(OpenSSL 1.1.1 REQUIRED)
qorb_component(tls SOURCES src/connectors/tls.cpp)
qorb_private_dependency(tls OpenSSL::SSL ssl libssl)
qorb_private_dependency(tls OpenSSL::Crypto crypto libcrypto)
