#!/usr/bin/env bash
# The tests that need no service: the unit tests (--lib) and every file in
# tests/ whose first line is `//! Needs: nothing.`. The list is read from the
# files each time, so it cannot go stale; a test file without a `//! Needs:`
# first line is an error. Extra arguments go to `cargo test` after `--`
# (default: --test-threads 2). `--print` prints the command instead.
set -euo pipefail
cd "$(dirname "$0")/.."

print=false
if [[ "${1:-}" == "--print" ]]; then
  print=true
  shift
fi

args=(cargo test --release --lib)
for f in tests/*.rs; do
  first="$(head -n 1 "$f")"
  case "$first" in
    "//! Needs: nothing.") args+=(--test "$(basename "$f" .rs)") ;;
    "//! Needs: "*.) ;;
    *)
      echo "$f: the first line must say which services it needs, e.g. \`//! Needs: nothing.\` or \`//! Needs: Kafka, PostgreSQL.\`" >&2
      exit 1
      ;;
  esac
done

if [[ $# -eq 0 ]]; then
  set -- --test-threads 2
fi
if $print; then
  echo "${args[*]} -- $*"
  exit 0
fi
exec "${args[@]}" -- "$@"
