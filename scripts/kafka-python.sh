#!/usr/bin/env bash
# A Python venv with kafka-python from PyPI and nothing else: no lz4, snappy
# or zstd library, like the original tutorial's dashboard environment. The
# interop test reads votestream's topics with it, default settings, to prove
# that any Kafka client can. Prints the venv's python.
#
#   scripts/kafka-python.sh        create target/kafka-python if missing
#
# Environment: VOTESTREAM_KAFKA_PYTHON_VENV (default <repo>/target/kafka-python).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${VOTESTREAM_KAFKA_PYTHON_VENV:-$root/target/kafka-python}"
version="3.0.12"

if ! "$venv/bin/python" -c "import kafka" 2>/dev/null; then
  python3 -m venv --help >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3-venv; }
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  echo "kafka-python.sh: installing kafka-python $version (no extras) into $venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "kafka-python==$version" >&2
fi
# The point of this venv: no compression library beyond Python's own zlib.
if "$venv/bin/python" -c "import lz4" 2>/dev/null; then
  echo "kafka-python.sh: $venv has lz4 installed; it must not" >&2
  exit 1
fi
echo "$venv/bin/python"
