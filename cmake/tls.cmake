# TLS connector (qorb::tls_connector), on Asio SSL over Debian's OpenSSL
# (libssl-dev). The public header includes Asio's SSL headers, so consumers
# compile OpenSSL calls themselves and link libssl and libcrypto (named in
# qorb's installed interface and in qorb.pc); OpenSSL's headers are in the
# system include path.
find_package(OpenSSL 1.1.1 REQUIRED)
target_sources(qorb PRIVATE src/connectors/tls.cpp)
qorb_private_dependency(OpenSSL::SSL ssl libssl)
qorb_private_dependency(OpenSSL::Crypto crypto libcrypto)
