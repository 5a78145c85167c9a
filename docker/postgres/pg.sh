#!/usr/bin/env bash
# One PostgreSQL 15 server, with scripts/pg.sh's settings.
#   pg.sh primary          initdb once; commits wait for one synchronous standby
#   pg.sh replica PRIMARY  pg_basebackup from PRIMARY once, then streams from it
#   pg.sh promote          makes this replica the primary (failover)
# Access is trust on the compose network only (no port of it is published).
set -euo pipefail
settings=(-c listen_addresses='*' -c max_connections=200 -c shared_buffers=128MB
  -c max_wal_size=1GB -c wal_compression=lz4 -c fsync=on -c synchronous_commit=on
  -c wal_level=replica -c max_wal_senders=5 -c hot_standby=on)
case "${1:-primary}" in
  primary)
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
      # UTF-8 as the official image has it (a bare initdb here would be SQL_ASCII).
      initdb -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
      echo "host all,replication all all trust" >>"$PGDATA/pg_hba.conf"
      postgres -D "$PGDATA" -c listen_addresses='' -k /tmp & pid=$!
      until pg_isready -h /tmp -q; do sleep 0.2; done
      createdb -h /tmp votestream
      kill "$pid"; wait "$pid" || true
    fi
    # '*': any connected standby acknowledges; an acknowledged vote is on two servers.
    exec postgres -D "$PGDATA" "${settings[@]}" -c synchronous_standby_names='*'
    ;;
  replica)
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
      until pg_isready -h "$2" -q; do sleep 1; done
      pg_basebackup -h "$2" -U postgres -D "$PGDATA" -R -X stream
      chmod 700 "$PGDATA"
    fi
    # No synchronous standby of its own: once promoted it commits alone.
    exec postgres -D "$PGDATA" "${settings[@]}" -c synchronous_standby_names=''
    ;;
  promote)
    exec psql -h 127.0.0.1 -U postgres -tAc 'SELECT pg_promote(true, 60)'
    ;;
esac
