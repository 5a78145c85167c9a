#!/usr/bin/env bash
# Mutation testing: breaks one guarantee at a time in a scratch copy of the
# tree and checks that the tests which need no service catch it.
#
#   bash scripts/mutants.sh            every mutant, each test run 5 times
#   bash scripts/mutants.sh 3 NAME...  only the named mutants, 3 runs each
#
# Each mutant is a few exact text replacements (listed below; one per row of
# docs/ARCHITECTURE.md "Invariants and how they are kept", plus the audit,
# the lateness boundary, the engine's catch-ups and the HTTP answer). A
# replacement that no longer matches the code fails the script: a stale list
# must be fixed, not skipped. A mutant is *killed* only when the tests fail
# on every run; one passing run and it *survived*.
#
# The copy lives in target/mutants/tree, its builds in target/mutants/target
# (seeded once from target/release, so a mutant costs an incremental build
# of the votestream crate, not of its dependencies). The tests run are the
# service-free ones that guard these guarantees: the library's unit tests,
# tests/guarantees.rs, tests/boundaries.rs and the SQLite half of
# tests/audit_fails.rs.
# Environment: MUTANTS_DIR (default <repo>/target/mutants).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${MUTANTS_DIR:-$root/target/mutants}"
tree="$work/tree"
runs="${1:-5}"
[ $# -gt 0 ] && shift
only=("$@")

# name | file | text in the code | its replacement  (\n = newline; a mutant
# with several edits has several rows of one name)
mutants() {
  cat <<'EOF'
audit-always-clean|src/audit.rs|        self.differences.is_empty()|        true
lateness-off-by-one|src/tally.rs|Some(max) => minute + MINUTE_MS > max - allowance,|Some(max) => minute + MINUTE_MS >= max - allowance,
no-final-catch-up|src/aggregate/engine.rs|        // The bus may have closed before the last commits reached it.\n        self.catch_up(i64::MAX, shutdown)?;\n|
counts-a-counted-vote|src/aggregate/engine.rs|            if v.seq <= self.position {\n                continue; // already counted (caught up from the store)\n            }\n|
gap-not-filled|src/aggregate/engine.rs|                self.catch_up(v.seq - 1, shutdown)?;\n|
answer-before-commit|src/process/mod.rs|                    if let Some(ack) = ack {\n                        pending.push(ack::Pending {\n                            slot: ack::Slot::Vote(batch.votes.len()),\n                            ballot_id: v.ballot_id.clone(),\n                            ack,\n                        });\n                    }|                    if let Some(ack) = ack {\n                        let _ = ack.0.send(ack::Decision {\n                            ballot_id: v.ballot_id.clone(),\n                            outcome: ack::Outcome::Accepted { replay: false },\n                        });\n                    }
1-two-votes-per-voter|src/store/sqlite_schema.sql|    src_offset    INTEGER,\n    UNIQUE (election_no, voter_no)\n);|    src_offset    INTEGER\n);
1-two-votes-per-voter|src/store/sqlite/write.rs| ON CONFLICT (election_no, voter_no) DO NOTHING",|",
2-replay-counted-again|src/store/sqlite/write.rs|                    } else if first == v.ballot_id {\n                        VoteOutcome::Replay|                    } else if false {\n                        VoteOutcome::Replay
3-counters-from-the-batch|src/store/sqlite/write.rs|                if inserted == 1 {\n                    *counts.entry((&v.election_id, "accepted")).or_default() += 1;|                *counts.entry((&v.election_id, "accepted")).or_default() += 1;\n                if inserted == 1 {
4-save-without-compare-and-set|src/store/sqlite/write.rs|    if found != from {\n        return Err(StoreError::EngineMoved {|    if found != from && false {\n        return Err(StoreError::EngineMoved {
5-watermark-never-advances|src/tally.rs|        if max_cast.is_none_or(\|m\| vote.cast_at > m) {|        if max_cast.is_none() {
6-failed-write-drops-the-batch|src/process/record.rs|                if !backoff.wait(&e, shutdown) {\n                    return Err((e, back));\n                }\n                batch = back;|                let _ = (&mut backoff, back);\n                return Err((e, Batch::default()));
EOF
}

tests=(cargo test --release --no-fail-fast --lib --test guarantees --test boundaries --test audit_fails -- --skip postgres)

log() { echo "mutants: $*" >&2; }

# A fresh copy of the working tree (tracked and new files, not target/).
sync_tree() {
  rm -rf "$tree"
  mkdir -p "$tree"
  (cd "$root" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -xmf - -C "$tree"
}

# Puts back the files a mutant changed (copied, so their mtime is new and
# cargo rebuilds them).
restore() {
  for path in "$@"; do cp "$root/$path" "$tree/$path"; done
}

# Applies every row of mutant $1 to the copy and prints the files changed;
# fails on a row that does not match exactly once.
apply() {
  mutants | python3 -c '
import sys
name, tree = sys.argv[1], sys.argv[2]
rows = [l.rstrip("\n").replace("\\|", "\0").split("|") for l in sys.stdin if l.strip()]
rows = [[c.replace("\0", "|").replace("\\n", "\n") for c in r] for r in rows if r[0] == name]
if not rows:
    sys.exit(f"no mutant named {name}")
for _, path, old, new in rows:
    p = f"{tree}/{path}"
    text = open(p).read()
    n = text.count(old)
    if n != 1:
        sys.exit(f"mutant {name}: the text to replace occurs {n} times in {path} (stale list?)")
    open(p, "w").write(text.replace(old, new))
    print(path)
' "$1" "$tree"
}

export CARGO_TARGET_DIR="$work/target"
if [ ! -d "$CARGO_TARGET_DIR/release" ] && [ -d "$root/target/release" ]; then
  log "seeding $CARGO_TARGET_DIR from target/release"
  mkdir -p "$CARGO_TARGET_DIR"
  cp -a "$root/target/release" "$CARGO_TARGET_DIR/"
fi

names=()
while IFS= read -r n; do names+=("$n"); done < <(mutants | cut -d'|' -f1 | uniq)
[ ${#only[@]} -gt 0 ] && names=("${only[@]}")

sync_tree
log "the unmutated tree must pass first"
(cd "$tree" && "${tests[@]}" >"$work/baseline.log" 2>&1) || {
  log "the tests fail without any mutant: see $work/baseline.log"
  exit 2
}

declare -A result
for name in "${names[@]}"; do
  changed="$(apply "$name" | sort -u)"
  log "$name: building ($(echo $changed))"
  if ! (cd "$tree" && cargo test --release --no-run --lib --test guarantees --test boundaries --test audit_fails \
        >"$work/$name.build.log" 2>&1); then
    result[$name]="BUILD FAILED (see $work/$name.build.log)"
    restore $changed
    continue
  fi
  failed=0
  for i in $(seq 1 "$runs"); do
    if (cd "$tree" && "${tests[@]}" >"$work/$name.run$i.log" 2>&1); then
      log "$name: run $i passed"
    else
      failed=$((failed + 1))
      log "$name: run $i failed: $(grep -E '^    [a-z_0-9]+$|^test .* FAILED' "$work/$name.run$i.log" | sort -u | tr -s ' \n' ' ')"
    fi
  done
  if [ "$failed" -eq "$runs" ]; then
    result[$name]="killed ($failed/$runs runs failed)"
  else
    result[$name]="SURVIVED ($failed/$runs runs failed)"
  fi
  restore $changed
done

echo
echo "| mutant | result | failing tests (run 1) |"
echo "|---|---|---|"
status=0
for name in "${names[@]}"; do
  which="$(grep -E '^    [a-z_0-9:]+$' "$work/$name.run1.log" 2>/dev/null | sort -u | tr -d ' ' | paste -sd, - || true)"
  echo "| $name | ${result[$name]} | ${which//,/, } |"
  [[ "${result[$name]}" == killed* ]] || status=1
done
exit "$status"
