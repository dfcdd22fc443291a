#!/bin/bash
# A streaming standby of $PRIMARY_HOST: made once with pg_basebackup -R (standby.signal, primary_conninfo), named
# $STANDBY_NAME (its application_name, which the primary's synchronous_standby_names lists), then run as a hot standby.
set -euo pipefail
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  export PGPASSWORD="$REPLICATION_PASSWORD"
  until pg_basebackup -h "$PRIMARY_HOST" -U replicator -D "$PGDATA" -R -X stream; do
    echo "waiting for $PRIMARY_HOST"; sleep 2
  done
  echo "primary_conninfo = 'host=$PRIMARY_HOST port=5432 user=replicator password=$REPLICATION_PASSWORD application_name=$STANDBY_NAME'" \
    >> "$PGDATA/postgresql.auto.conf"
  chmod 700 "$PGDATA"
fi
exec postgres -c hot_standby=on
