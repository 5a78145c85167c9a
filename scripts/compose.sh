#!/usr/bin/env bash
# Runs compose.yaml, the multi-node shape, on this machine with no container
# registry needed: installs Debian's Docker engine and compose if missing,
# starts the engine if none answers, and builds the base images the
# Dockerfiles name locally (under the same names) when they cannot be pulled.
#
#   scripts/compose.sh images      base images + every image of compose.yaml
#   scripts/compose.sh up          images, then the whole stack, waits until healthy
#   scripts/compose.sh down        stops the stack (and the engine, if started here)
#   scripts/compose.sh failover-pg kills the PostgreSQL primary, promotes the replica
#   scripts/compose.sh test        from scratch: a night per failure drill, then down
#   scripts/compose.sh bench       from scratch: the cluster's rate and freshness, then down
#   (also: base, engine, wait-healthy [SECS] [SKIP], used by the test)
#
# VOTESTREAM_COMPOSE_CACHE (default target/compose) holds the debootstrap
# rootfs, the toolchain's build context and the engine's log and pid.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${VOTESTREAM_COMPOSE_CACHE:-$root/target/compose}"
export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-votestream}"
mkdir -p "$cache"
cd "$root"

log() { echo "compose: $*" >&2; }

ensure_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  ((${#missing[@]} == 0)) && return
  log "installing ${missing[*]} from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}

# An engine that already answers is used as it is and never stopped here.
ensure_engine() {
  if docker info >/dev/null 2>&1; then return; fi
  log "starting dockerd (log: $cache/dockerd.log)"
  nohup dockerd >"$cache/dockerd.log" 2>&1 &
  echo $! >"$cache/dockerd.pid"
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && return; sleep 1; done
  log "dockerd did not answer within 60 s"; tail -20 "$cache/dockerd.log" >&2; exit 1
}

stop_engine() {
  [ -f "$cache/dockerd.pid" ] || return 0
  local pid; pid="$(cat "$cache/dockerd.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping the dockerd started here (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  fi
  rm -f "$cache/dockerd.pid"
}

# `docker compose` (v2) where installed, else Debian's docker-compose (v1).
compose() {
  if docker compose version >/dev/null 2>&1; then docker compose "$@"; else docker-compose "$@"; fi
}

have_or_pull() {
  docker image inspect "$1" >/dev/null 2>&1 && return 0
  timeout 120 docker pull -q "$1" >/dev/null 2>&1
}

# debian:bookworm-slim from Debian's own packages. Extra CAs this host trusts
# (a TLS-intercepting egress, say) go into the rootfs so that images built on
# it reach PyPI, Maven Central and crates.io as the host does; the real image
# has none and needs none.
build_debian() {
  local rootfs="$cache/rootfs"
  if [ ! -f "$rootfs/.complete" ]; then
    log "debootstrap --variant=minbase bookworm into $rootfs"
    rm -rf "$rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 ||
      { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
    cat >"$rootfs/etc/apt/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
    mkdir -p "$rootfs/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
    touch "$rootfs/.complete"
  fi
  log "importing the rootfs as debian:bookworm-slim"
  tar -C "$rootfs" --exclude=./.complete -c . | docker import --change 'CMD ["bash"]' - debian:bookworm-slim >/dev/null
}

# rust:<version>-slim-bookworm from the local debian image plus this host's
# own toolchain (Debian's rustc is too old for the crate).
build_rust() {
  local image="$1" ctx="$cache/rust-ctx" tc
  tc="$(rustup toolchain list 2>/dev/null | awk '{print $1}' | grep "^${rust_version}" | head -1 || true)"
  tc="${tc:-${rust_version}-x86_64-unknown-linux-gnu}"
  [ -d "$HOME/.rustup/toolchains/$tc" ] || { log "no toolchain $tc in ~/.rustup to build $image from"; exit 1; }
  log "building $image from debian:bookworm-slim and ~/.rustup/toolchains/$tc"
  rm -rf "$ctx" && mkdir -p "$ctx/toolchain" "$ctx/cargo-bin"
  # The docs (share/) are most of a toolchain's size and no build needs them.
  for d in bin lib libexec etc; do
    [ -e "$HOME/.rustup/toolchains/$tc/$d" ] && cp -aL "$HOME/.rustup/toolchains/$tc/$d" "$ctx/toolchain/"
  done
  cp -aL "$HOME/.cargo/bin/." "$ctx/cargo-bin/"
  cp "$root/docker/rust/Dockerfile" "$ctx/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q --build-arg "TOOLCHAIN=$tc" -t "$image" "$ctx" >/dev/null
  rm -rf "$ctx"
}

rust_image() { sed -n 's/^FROM \(rust:[^ ]*\).*/\1/p' "$root/Dockerfile" | head -1; }

base_images() {
  have_or_pull debian:bookworm-slim || build_debian
  local rust; rust="$(rust_image)"
  rust_version="${rust#rust:}"; rust_version="${rust_version%%-*}"
  have_or_pull "$rust" || build_rust "$rust"
}

images() {
  ensure_packages
  ensure_engine
  base_images
  log "building compose.yaml's images"
  # The classic builder: Debian's engine may have no BuildKit frontend to pull.
  DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0 compose build -q >&2
}

# Waits until every container of the stack is healthy or exited 0 (the
# one-shot ones); SKIP, a regex, names containers left out (killed in a drill).
wait_healthy() {
  local deadline=$((SECONDS + ${1:-600})) skip="${2:-^$}" pending
  while :; do
    pending="$(docker ps -a --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
      --format '{{.Names}} {{.Status}}' | grep -v -E '\(healthy\)|Exited \(0\)' | grep -v -E "$skip" || true)"
    [ -z "$pending" ] && return 0
    if ((SECONDS > deadline)); then log "not healthy in time:"; echo "$pending" >&2; return 1; fi
    sleep 3
  done
}

up() {
  images
  log "starting the stack"
  compose up -d "$@" >&2
  wait_healthy 600
  log "up: dashboard on http://127.0.0.1:${VOTESTREAM_LB_PORT:-8480}/, Prometheus on :${VOTESTREAM_PROMETHEUS_PORT:-9490}"
}

down() {
  if docker info >/dev/null 2>&1; then compose down --remove-orphans "$@" >&2; fi
  stop_engine
}

# Kills the primary and promotes the streaming replica; the multi-host store
# URL then finds the replica writable. The old primary stays down.
failover_pg() {
  log "killing postgres-1 (the primary), promoting postgres-2"
  compose kill postgres-1 >&2
  local promoted
  promoted="$(compose exec -T postgres-2 bash /usr/local/bin/pg.sh promote | tr -d '[:space:]')"
  # pg_promote(wait => true) answers t once the replica takes writes.
  [ "$promoted" = t ] || { log "postgres-2 did not promote (pg_promote: ${promoted:-no answer})"; return 1; }
  log "postgres-2 promoted: it takes writes"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  images) images ;;
  base) ensure_packages; ensure_engine; base_images ;;
  engine) ensure_packages; ensure_engine ;;
  up) up "$@" ;;
  down) down "$@" ;;
  failover-pg) failover_pg ;;
  wait-healthy) wait_healthy "$@" ;;
  test) exec bash "$root/scripts/compose-test.sh" ;;
  bench) exec bash "$root/scripts/compose-bench.sh" ;;
  *) echo "usage: $0 up | down | test | bench | images | failover-pg" >&2; exit 2 ;;
esac
