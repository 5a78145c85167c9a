#!/usr/bin/env bash
# Runs votestream's Apache Spark Structured Streaming engine (spark/) with
# pyspark from PyPI and the Kafka connector as local jars from Maven Central
# (no --packages resolution at run time, no Docker).
#
#   scripts/spark.sh fetch          venv (pyspark, psycopg, confluent-kafka) + connector jars
#   scripts/spark.sh run [ARGS]     runs the job in the foreground (ARGS: see --help)
#   scripts/spark.sh start [ARGS]   the same in the background, log in target/spark/job.log
#   scripts/spark.sh stop           stops the job this script started (PID file)
#   scripts/spark.sh test           fetch, start Kafka and PostgreSQL if needed, run the tests
#   scripts/spark.sh freshness [ARGS]  measures produce -> visible in results_candidate
#   scripts/spark.sh freshness-engines [ARGS]  both engines on one stream of the whole
#                                   pipeline: vote committed -> counted (needs a release build)
#
# Environment: KAFKA_BOOTSTRAP / DATABASE_URL point at running servers (as for
# scripts/kafka.sh and scripts/pg.sh); VOTESTREAM_SPARK_HOME (default
# <repo>/target/spark); VOTESTREAM_SPARK_PIDFILE (default <home>/job.pid);
# SPARK_DRIVER_MEMORY (default 1g); SPARK_MASTER (default local[2]). Every
# job flag has an environment variable too. `votestream aggregate --engine
# spark` runs `bash scripts/spark.sh run --bus … --store …`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
home="${VOTESTREAM_SPARK_HOME:-$root/target/spark}"
venv="$home/venv"
jars="$home/jars"
# One job per PID file: a test (or a second engine name) running its own job
# beside another one names its own.
pidfile="${VOTESTREAM_SPARK_PIDFILE:-$home/job.pid}"
# pyspark must match the connector (spark-sql-kafka-0-10_2.13) in scripts/spark/pom.xml.
spark_version="$(sed -n 's:.*<spark.version>\(.*\)</spark.version>.*:\1:p' "$root/scripts/spark/pom.xml")"
py_packages=("pyspark==$spark_version" "psycopg[binary]==3.3.9" "confluent-kafka==2.16.1" "pytest==9.2.0")

fetch() {
  local stamp="$spark_version ${py_packages[*]} $(md5sum <"$root/scripts/spark/pom.xml" | cut -c1-12)"
  if [ -f "$home/.complete" ] && [ "$(cat "$home/.complete")" = "$stamp" ]; then return; fi
  command -v java >/dev/null || { apt-get update -qq && apt-get install -y -qq default-jre-headless; }
  command -v mvn >/dev/null || { apt-get update -qq && apt-get install -y -qq maven; }
  python3 -m venv --help >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3-venv; }
  mkdir -p "$home"
  echo "spark: installing ${py_packages[*]} into $venv" >&2
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  nice -n 10 "$venv/bin/pip" install -q --disable-pip-version-check "${py_packages[@]}" >&2
  echo "spark: fetching the Kafka connector's jars from Maven Central into $jars" >&2
  rm -rf "$jars"
  nice -n 10 mvn -q -f "$root/scripts/spark/pom.xml" dependency:copy-dependencies \
    -DexcludeTransitive=true -DoutputDirectory="$jars" >&2
  echo "$stamp" >"$home/.complete"
}

# The job runs as a plain Python driver: pyspark launches its JVM as a child
# with these submit arguments, and that JVM exits when the Python process dies.
job_env() {
  local list
  list="$(ls "$jars"/*.jar | paste -sd, -)"
  export PYSPARK_PYTHON="$venv/bin/python" PYSPARK_DRIVER_PYTHON="$venv/bin/python"
  export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
  export PYSPARK_SUBMIT_ARGS="--master ${SPARK_MASTER:-local[2]} --driver-memory ${SPARK_DRIVER_MEMORY:-1g} --conf spark.driver.extraJavaOptions=-XX:+UseSerialGC --jars $list pyspark-shell"
  export VOTESTREAM_SPARK_CHECKPOINT="${VOTESTREAM_SPARK_CHECKPOINT:-$home/checkpoint}"
  if [ -z "${VOTESTREAM_STORE:-}" ] && [ -z "${DATABASE_URL:-}" ]; then
    export VOTESTREAM_STORE="$("$root/scripts/pg.sh" url)"
  fi
  if [ -z "${VOTESTREAM_BUS:-}" ] && [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
    export KAFKA_BOOTSTRAP="$("$root/scripts/kafka.sh" url)"
  fi
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  fetch)
    fetch
    ;;
  run)
    fetch; job_env
    if running; then echo "spark: already running (pid $(cat "$pidfile"))" >&2; exit 1; fi
    echo $$ >"$pidfile"
    exec nice -n "${SPARK_NICE:-10}" "$venv/bin/python" "$root/spark/votestream_spark.py" "$@"
    ;;
  start)
    fetch; job_env
    if running; then echo "spark: already running (pid $(cat "$pidfile"))" >&2; exit 0; fi
    nohup nice -n "${SPARK_NICE:-10}" "$venv/bin/python" "$root/spark/votestream_spark.py" "$@" \
      >"$home/job.log" 2>&1 &
    echo $! >"$pidfile"
    echo "spark: started (pid $!, log $home/job.log)" >&2
    ;;
  stop)
    if running; then
      pid="$(cat "$pidfile")"
      kill "$pid"
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    ;;
  test)
    fetch
    # Use servers that already run (as they are: a 3-broker cluster stays
    # one); start, and afterwards stop, only those that do not.
    started=()
    if [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
      KAFKA_BOOTSTRAP="$("$root/scripts/kafka.sh" url)"
      first="${KAFKA_BOOTSTRAP%%,*}"
      if ! (exec 3<>"/dev/tcp/${first%:*}/${first##*:}") 2>/dev/null; then
        KAFKA_BOOTSTRAP="$("$root/scripts/kafka.sh" start)"; started+=(kafka)
      fi
    else
      "$root/scripts/kafka.sh" start >/dev/null
    fi
    if [ -z "${DATABASE_URL:-}" ] && ! "$root/scripts/pg.sh" status; then started+=(pg); fi
    DATABASE_URL="$("$root/scripts/pg.sh" start)"
    export KAFKA_BOOTSTRAP DATABASE_URL
    job_env
    cd "$root"
    rc=0
    nice -n "${SPARK_NICE:-10}" "$venv/bin/python" -m pytest -v -p no:cacheprovider spark/tests "$@" || rc=$?
    for s in "${started[@]}"; do "$root/scripts/$s.sh" stop || true; done
    exit "$rc"
    ;;
  freshness)
    fetch; job_env
    cd "$root"
    exec nice -n "${SPARK_NICE:-10}" "$venv/bin/python" spark/freshness.py "$@"
    ;;
  freshness-engines)
    # Both engines on one stream through the whole pipeline (needs a release build).
    fetch; job_env
    cd "$root"
    exec "$venv/bin/python" spark/freshness_engines.py "$@"
    ;;
  *)
    echo "usage: $0 fetch | run [ARGS] | start [ARGS] | stop | test [PYTEST ARGS] | freshness [ARGS] | freshness-engines [ARGS]" >&2
    exit 2
    ;;
esac
