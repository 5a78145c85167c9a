#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every test in
# release mode (the pipeline tests push hundreds of thousands of ballots).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust from https://rustup.rs first" >&2
  exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -- -D warnings"
cargo clippy --release --all-targets -- -D warnings
# Servers this script started are stopped on exit; running ones are left be.
cleanup=()
trap 'for c in "${cleanup[@]}"; do eval "$c" || true; done' EXIT

# The PostgreSQL tests need a real server: the project's own (Debian's
# packages, 127.0.0.1, data under target/pg), or DATABASE_URL when given.
if [[ -z "${VOTESTREAM_TEST_PG_URL:-}" ]]; then
  if [[ -z "${DATABASE_URL:-}" ]] && ! bash scripts/pg.sh status >/dev/null 2>&1; then
    cleanup+=("bash scripts/pg.sh stop")
  fi
  echo "== scripts/pg.sh start"
  VOTESTREAM_TEST_PG_URL="$(bash scripts/pg.sh start)"
  export VOTESTREAM_TEST_PG_URL
fi

# The Kafka tests need a real broker: the project's own (Apache Kafka from
# Maven Central, KRaft, 127.0.0.1:19092), or KAFKA_BOOTSTRAP when given.
if [[ -z "${VOTESTREAM_TEST_KAFKA:-}" ]]; then
  if [[ -z "${KAFKA_BOOTSTRAP:-}" ]] && ! bash scripts/kafka.sh status >/dev/null 2>&1; then
    cleanup+=("bash scripts/kafka.sh stop")
  fi
  echo "== scripts/kafka.sh start"
  VOTESTREAM_TEST_KAFKA="$(bash scripts/kafka.sh start)"
  export VOTESTREAM_TEST_KAFKA
fi

# The Spark engine's tests (tests/spark_engine.rs, spark/tests) need pyspark
# from PyPI and the Kafka connector's jars from Maven Central, in
# target/spark (a no-op once fetched).
echo "== scripts/spark.sh fetch"
bash scripts/spark.sh fetch

echo "== headless Chromium for the dashboard test"
bash scripts/browser.sh
echo "== cargo test --release"
cargo test --release -- --test-threads 2

# A short run of each fuzz target (afl.rs, stable Rust; about 80 s of
# fuzzing plus the instrumented build, which a cached target/fuzz makes
# incremental). Any crash or hang fails the run.
echo "== scripts/fuzz.sh smoke"
bash scripts/fuzz.sh smoke

# The Spark job's own tests (real Spark, Kafka and PostgreSQL; about 4
# minutes on 2 cores), on the servers above.
echo "== scripts/spark.sh test"
KAFKA_BOOTSTRAP="$VOTESTREAM_TEST_KAFKA" DATABASE_URL="$VOTESTREAM_TEST_PG_URL" bash scripts/spark.sh test
