#!/usr/bin/env bash
# A real PostgreSQL for tests, CI and local use: Debian's packages, on
# 127.0.0.1, data under target/pg. No Docker.
#
#   scripts/pg.sh start     install if missing, init, start, create db; prints the URL
#   scripts/pg.sh stop      stop the server this script started (only that one)
#   scripts/pg.sh restart   fast restart of that server (the connection-loss test uses it)
#   scripts/pg.sh url       print the URL
#   scripts/pg.sh status    exit 0 when it answers
#
# Environment: PGPORT (default 15432), VOTESTREAM_PG_DIR (default
# <repo>/target/pg). Every default port the scripts use is below Linux's
# ephemeral range (32768-60999), so an outgoing connection never holds it. With DATABASE_URL set, start only checks that it is
# reachable and prints it; stop and restart do nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PORT="${PGPORT:-15432}"
BASE="${VOTESTREAM_PG_DIR:-$ROOT/target/pg}"
DATA="$BASE/data"
LOG="$BASE/server.log"
DB=votestream
URL="postgres://postgres@127.0.0.1:$PORT/$DB"

log() { echo "pg.sh: $*" >&2; }

bindir() {
  local d
  # The newest installed major version.
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  [[ -n "$d" && -x "$d/initdb" ]] && echo "$d"
}

install_pg() {
  if [[ -n "$(bindir)" ]]; then return; fi
  if [[ $(id -u) -ne 0 ]]; then
    log "PostgreSQL is not installed and this is not root: run 'apt-get install -y postgresql' first"
    exit 1
  fi
  log "installing PostgreSQL from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  # The package starts its own cluster on 5432; ours is separate. Stop theirs
  # so it does not hold memory (harmless if there is none).
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    for c in $(ls /etc/postgresql 2>/dev/null); do pg_ctlcluster "$c" main stop >/dev/null 2>&1 || true; done
  fi
  [[ -n "$(bindir)" ]] || { log "installation did not provide initdb"; exit 1; }
}

# Runs a command as the postgres OS user (the server refuses to run as root).
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

ready() {
  "$(bindir)/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 2 >/dev/null 2>&1
}

wait_ready() {
  local i
  for i in $(seq 1 120); do
    if ready; then return 0; fi
    sleep 0.5
  done
  log "PostgreSQL did not become ready in 60 s; last lines of $LOG:"
  tail -n 30 "$LOG" >&2 || true
  return 1
}

init_cluster() {
  mkdir -p "$BASE"
  if [[ $(id -u) -eq 0 ]]; then
    chown postgres:postgres "$BASE"
    # postgres must be able to reach the data dir through the repo's folders.
    local p="$BASE"
    while [[ "$p" != "/" ]]; do
      chmod o+x "$p" 2>/dev/null || true
      p="$(dirname "$p")"
    done
  fi
  if [[ ! -f "$DATA/PG_VERSION" ]]; then
    log "initdb into $DATA"
    rm -rf "$DATA"
    as_pg "$(bindir)/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null ||
      as_pg "$(bindir)/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
    # Trust only on loopback: listen_addresses is 127.0.0.1 alone.
    cat >"$DATA/postgresql.auto.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
shared_buffers = '256MB'
max_wal_size = '4GB'
checkpoint_timeout = '15min'
wal_compression = 'lz4'
fsync = on
synchronous_commit = on
EOF
    chown postgres:postgres "$DATA/postgresql.auto.conf" 2>/dev/null || true
  fi
}

# True when postmaster.pid names no live server: no such process, a zombie
# (a killed server that nobody reaped, as under a container's init), or a
# reused pid that is not postgres.
stale_pid() {
  local pid state
  pid="$(head -n 1 "$DATA/postmaster.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  [[ -e "/proc/$pid" ]] || return 0
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo X)"
  [[ "$state" == Z || "$state" == X ]] && return 0
  ! grep -qx postgres "/proc/$pid/comm" 2>/dev/null
}

start_server() {
  if ready; then return 0; fi
  local attempt
  for attempt in 1 2 3 4 5; do
    if [[ -f "$DATA/postmaster.pid" ]] && stale_pid; then
      log "removing stale $DATA/postmaster.pid"
      rm -f "$DATA/postmaster.pid"
    fi
    touch "$LOG"
    chown postgres:postgres "$LOG" 2>/dev/null || true
    if as_pg "$(bindir)/pg_ctl" -D "$DATA" -l "$LOG" -o "-p $PORT" -w -t 60 start >/dev/null; then
      wait_ready
      return
    fi
    # The children of a killed server may still be exiting: give them a moment.
    sleep 2
  done
  log "pg_ctl start failed; last lines of $LOG:"
  tail -n 30 "$LOG" >&2
  exit 1
}

create_db() {
  local psql
  psql="$(bindir)/psql"
  if ! "$psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
    "$psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -qc "CREATE DATABASE $DB" >/dev/null
  fi
}

check_external() {
  local psql
  psql="$(command -v psql || echo "$(bindir)/psql")"
  if [[ -x "$psql" ]]; then
    "$psql" "$DATABASE_URL" -tAc 'SELECT 1' >/dev/null ||
      { log "DATABASE_URL is set but does not answer"; exit 1; }
  else
    log "DATABASE_URL is set (not checked: psql is not installed)"
  fi
  echo "$DATABASE_URL"
}

cmd="${1:-}"
case "$cmd" in
  start)
    if [[ -n "${DATABASE_URL:-}" ]]; then check_external; exit 0; fi
    install_pg
    init_cluster
    start_server
    create_db
    echo "$URL"
    ;;
  stop)
    if [[ -n "${DATABASE_URL:-}" ]]; then exit 0; fi
    if [[ -n "$(bindir)" && -f "$DATA/postmaster.pid" ]]; then
      as_pg "$(bindir)/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    fi
    ;;
  restart)
    if [[ -n "${DATABASE_URL:-}" ]]; then exit 0; fi
    as_pg "$(bindir)/pg_ctl" -D "$DATA" -l "$LOG" -o "-p $PORT" -m fast -w -t 60 restart >/dev/null
    wait_ready
    ;;
  url)
    echo "${DATABASE_URL:-$URL}"
    ;;
  status)
    if [[ -n "${DATABASE_URL:-}" ]]; then check_external >/dev/null; exit 0; fi
    [[ -n "$(bindir)" ]] && ready
    ;;
  *)
    echo "usage: $0 start|stop|restart|url|status" >&2
    exit 2
    ;;
esac
