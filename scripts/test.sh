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
echo "== headless Chromium for the dashboard test"
bash scripts/browser.sh
echo "== cargo test --release"
cargo test --release -- --test-threads 2
