#!/usr/bin/env bash
# Coverage-guided fuzzing of votestream's edges with afl.rs (AFL++), on
# stable Rust. See docs/FUZZING.md.
#
#   scripts/fuzz.sh smoke                 every target for 20 s (CI)
#   scripts/fuzz.sh run [SECONDS] [T...]  targets (default all) for SECONDS
#                                         each (default 600), niced, resuming
#                                         their corpus in target/fuzz/out
#
# Installs cargo-afl from crates.io and builds AFL++ from the sources it
# ships when missing. Exits non-zero when any target found a crash or hang,
# and prints each target's executions.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

mode=${1:-run}
case "$mode" in
  smoke) secs=${2:-20}; shift $(( $# > 1 ? 2 : 1 )) || true ;;
  run) secs=${2:-600}; shift $(( $# > 1 ? 2 : 1 )) || true ;;
  *) echo "usage: $0 smoke | run [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(parse kafka import http)

if ! cargo afl --version >/dev/null 2>&1; then
  echo "== cargo install cargo-afl"
  cargo install cargo-afl --version '^0.18' --locked
fi
# AFL++ itself, built once from the sources cargo-afl ships.
if ! cargo afl config --build 2>/tmp/afl-config.$$; then
  grep -qi "already" /tmp/afl-config.$$ || { cat /tmp/afl-config.$$ >&2; exit 1; }
fi
rm -f /tmp/afl-config.$$

export CARGO_TARGET_DIR="$root/target/fuzz"
echo "== cargo afl build --release (fuzz/)"
(cd fuzz && cargo afl build --release --locked --bins)

# This machine is shared and has no crash reporter AFL++ knows: no CPU
# pinning, no core-pattern or governor checks.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1
export AFL_NO_UI=1 AFL_QUIET=1
failed=0
total=0
for t in "${targets[@]}"; do
  if [[ $mode == smoke ]]; then
    out=$(mktemp -d "${TMPDIR:-/tmp}/votestream-fuzz-smoke.XXXXXX")
    input=(-i "fuzz/seeds/$t")
  else
    out="$CARGO_TARGET_DIR/out/$t"
    mkdir -p "$out"
    if [[ -d $out/default/queue ]]; then input=(-i -); else input=(-i "fuzz/seeds/$t"); fi
  fi
  timeout=2000
  [[ $t == http ]] && timeout=30000
  echo "== fuzz $t for ${secs} s"
  AFL_AUTORESUME=1 nice -n 19 cargo afl fuzz "${input[@]}" -o "$out" -V "$secs" -t "$timeout" \
    -- "$CARGO_TARGET_DIR/release/$t" >"$out.log" 2>&1 || { tail -20 "$out.log" >&2; failed=1; }
  stats="$out/default/fuzzer_stats"
  if [[ ! -f $stats ]]; then
    echo "   $t: no fuzzer_stats (see $out.log)" >&2
    failed=1
    continue
  fi
  val() { awk -F' *: *' -v k="$1" '$1 == k {print $2}' "$stats"; }
  # A resumed run's fuzzer_stats carry the earlier runs' crash counts: what
  # this run found is what lies in crashes/ and hangs/ now.
  found() { find "$out/default/$1" -maxdepth 1 -name 'id*' 2>/dev/null | wc -l; }
  execs=$(val execs_done); crashes=$(found crashes); hangs=$(found hangs)
  echo "   $t: $execs executions ($(val execs_per_sec)/s), corpus $(val corpus_count), crashes $crashes, hangs $hangs"
  total=$((total + execs))
  if [[ ${crashes:-0} != 0 || ${hangs:-0} != 0 ]]; then
    echo "   $t: saved in $out/default/crashes and hangs; reproduce with" >&2
    echo "   $CARGO_TARGET_DIR/release/replay $t $out/default/crashes/id*" >&2
    failed=1
  fi
  # The HTTP target's stores live in RAM; a child killed by a timeout leaves
  # its own behind (old ones only: another campaign may be running).
  find /dev/shm -maxdepth 1 -name 'votestream-fuzz-*' -mmin +120 -exec rm -rf {} + 2>/dev/null || true
  # A smoke run's corpus goes; what it found stays for `replay`.
  if [[ $mode == smoke && ${crashes:-0} == 0 && ${hangs:-0} == 0 ]]; then rm -rf "$out" "$out.log"; fi
done
echo "== fuzz: $total executions in all"
exit $failed
