# PostgreSQL connector (qorb::connectors::postgres), on Debian's libpq-dev.
# The public header only forward-declares PGconn, so consumers need libpq's
# headers only when they call libpq themselves; they always link libpq.
find_package(PostgreSQL REQUIRED)
target_sources(qorb PRIVATE
  src/connectors/postgres.cpp
  src/connectors/postgres_protocol.cpp)
qorb_private_dependency(PostgreSQL::PostgreSQL pq libpq)
