#!/bin/sh
# A streaming replica of postgres-primary. On an empty data directory, clone the primary
# with pg_basebackup; -R writes standby.signal and primary_conninfo (with the password
# from PGPASSWORD), so the server below starts as a hot standby that follows the primary.
# Runs as the postgres user (compose.yaml: user: postgres).
set -eu

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    until pg_basebackup --host="$PRIMARY_HOST" --username=replicator --pgdata="$PGDATA" \
                        --wal-method=stream --write-recovery-conf --checkpoint=fast; do
        echo "replica: the primary is not ready yet; trying again in 2 s"
        rm -rf "${PGDATA:?}"/*
        sleep 2
    done
    chmod 0700 "$PGDATA"
fi

exec postgres -c hot_standby=on
