#!/usr/bin/env bash
# Starts and stops a real Apache Kafka 4.x (KRaft, no ZooKeeper) on 127.0.0.1,
# run from the Maven Central jars (no tarball, no Docker).
#
#   scripts/kafka.sh start [1|3]   one broker (default) or three (RF 3, min ISR 2)
#   scripts/kafka.sh stop          stops the brokers this script started
#   scripts/kafka.sh restart N     stops and starts broker N (failure tests)
#   scripts/kafka.sh url           prints the bootstrap servers
#   scripts/kafka.sh status        exit 0 when every broker it started runs
#
# With KAFKA_BOOTSTRAP set, `start` only checks that it is reachable.
# VOTESTREAM_KAFKA_HOME (default target/kafka) and KAFKA_BASE_PORT (19092)
# let a second cluster run beside the first; VOTESTREAM_KAFKA_LIBS shares jars.
# Node N listens on base+100*(N-1) (clients) and that +1 (controller): 19092,
# 19192, 19292, all below Linux's ephemeral range (32768-60999).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
home="${VOTESTREAM_KAFKA_HOME:-$root/target/kafka}"
libs="${VOTESTREAM_KAFKA_LIBS:-$home/libs}"
base_port="${KAFKA_BASE_PORT:-19092}"

port_of() { echo $((base_port + ($1 - 1) * 100)); }          # client port of node N
cport_of() { echo $((base_port + ($1 - 1) * 100 + 1)); }     # controller port of node N

bootstrap() {
  local n="$1" out="" i
  for ((i = 1; i <= n; i++)); do out+="${out:+,}127.0.0.1:$(port_of "$i")"; done
  echo "$out"
}

wait_port() {
  local port="$1" deadline=$((SECONDS + 90))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if ((SECONDS > deadline)); then echo "kafka: nothing listens on 127.0.0.1:$port after 90 s" >&2; return 1; fi
    sleep 0.5
  done
}

fetch() {
  if [ -f "$libs/.complete" ]; then return; fi
  command -v java >/dev/null || { apt-get update -qq && apt-get install -y -qq default-jre-headless; }
  command -v mvn >/dev/null || { apt-get update -qq && apt-get install -y -qq maven; }
  echo "kafka: fetching the broker's jars from Maven Central into $libs" >&2
  rm -rf "$libs"
  mvn -q -f "$root/scripts/kafka/pom.xml" dependency:copy-dependencies -DoutputDirectory="$libs" >&2
  touch "$libs/.complete"
}

java_run() { java -Xms64m -Xmx256m -cp "$libs/*" "$@" 2>/dev/null; }

configure() {
  local node="$1" nodes="$2" voters="" i
  local dir="$home/node-$node"
  for ((i = 1; i <= nodes; i++)); do voters+="${voters:+,}$i@127.0.0.1:$(cport_of "$i")"; done
  mkdir -p "$dir"
  bash "$root/scripts/kafka/server-properties.sh" "$node" "$voters" \
    "PLAINTEXT://127.0.0.1:$(port_of "$node"),CONTROLLER://127.0.0.1:$(cport_of "$node")" \
    "PLAINTEXT://127.0.0.1:$(port_of "$node")" "$dir/data" "$nodes" >"$dir/server.properties"
}

start_node() {
  local node="$1" dir="$home/node-$1"
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then return; fi
  nohup java -Xms256m -Xmx512m -cp "$libs/*" kafka.Kafka "$dir/server.properties" >"$dir/server.log" 2>&1 &
  echo $! >"$dir/pid"
}

stop_node() {
  local dir="$home/node-$1" pid
  [ -f "$dir/pid" ] || return 0
  pid="$(cat "$dir/pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/pid"
}

cmd="${1:-}"
case "$cmd" in
  start)
    if [ -n "${KAFKA_BOOTSTRAP:-}" ]; then
      wait_port "${KAFKA_BOOTSTRAP##*:}"; echo "$KAFKA_BOOTSTRAP"; exit 0
    fi
    nodes="${2:-1}"
    fetch
    if [ ! -f "$home/nodes" ] || [ "$(cat "$home/nodes")" != "$nodes" ]; then
      "$0" stop >/dev/null 2>&1 || true
      rm -rf "$home"/node-*
      cluster="$(java_run kafka.tools.StorageTool random-uuid)"
      for ((i = 1; i <= nodes; i++)); do
        configure "$i" "$nodes"
        java_run kafka.tools.StorageTool format --cluster-id "$cluster" --config "$home/node-$i/server.properties" --ignore-formatted >/dev/null
      done
      echo "$nodes" >"$home/nodes"
    fi
    for ((i = 1; i <= nodes; i++)); do start_node "$i"; done
    for ((i = 1; i <= nodes; i++)); do wait_port "$(port_of "$i")"; done
    bootstrap "$nodes"
    ;;
  stop)
    for dir in "$home"/node-*; do [ -d "$dir" ] && stop_node "${dir##*-}"; done
    ;;
  restart)
    node="${2:?which node}"
    stop_node "$node"; start_node "$node"; wait_port "$(port_of "$node")"
    ;;
  url)
    bootstrap "$(cat "$home/nodes" 2>/dev/null || echo 1)"
    ;;
  status)
    nodes="$(cat "$home/nodes" 2>/dev/null || echo 0)"
    ((nodes > 0)) || { echo "kafka: not started here" >&2; exit 1; }
    for ((i = 1; i <= nodes; i++)); do
      pidfile="$home/node-$i/pid"
      [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null || { echo "kafka: broker $i is not running" >&2; exit 1; }
    done
    bootstrap "$nodes"
    ;;
  *)
    echo "usage: $0 start [1|3] | stop | restart N | url | status" >&2; exit 2
    ;;
esac
