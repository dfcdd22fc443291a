#!/bin/bash
# Runs once, when the official image initializes a canton's primary (/docker-entrypoint-initdb.d): a role its standby
# replicates as, and the pg_hba.conf line that lets it stream. Password authentication, as for the API's role.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v password="$REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'password';
SQL
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
