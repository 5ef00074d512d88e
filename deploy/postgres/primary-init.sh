#!/bin/sh
# The primary's first start only (the postgres image runs /docker-entrypoint-initdb.d/ on an
# empty data directory): a role the replica streams WAL as, and a pg_hba.conf line that
# lets it connect for replication over the compose network (the image's own lines admit
# ordinary connections from anywhere, replication ones only from localhost).
set -eu

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     --set=password="$REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'password';
SQL

echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
