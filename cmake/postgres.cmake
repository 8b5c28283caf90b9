# SPDX-License-Identifier: BSL-1.0
# PostgreSQL connector (qorb::connectors::postgres), on Debian's libpq-dev.
# The public header only forward-declares PGconn, so consumers need libpq's
# headers only when they call libpq themselves; they always link libpq.
# Library qorb_postgres (qorb::postgres).
find_package(PostgreSQL REQUIRED)
qorb_component(postgres SOURCES
  src/connectors/postgres.cpp
  src/connectors/postgres_protocol.cpp)
qorb_private_dependency(postgres PostgreSQL::PostgreSQL pq libpq)
