#!/usr/bin/env bash
# `scripts/compose.sh bench`: the cluster's end-to-end rate and freshness.
# A fresh stack with VOTESTREAM_VOTERS (300000) registered voters, then two
# nights from the simulator container, each measured from inside the stack
# by scripts/compose_bench.py: one at full speed (half the electorate, rate
# max), one at a steady BENCH_RATE ballots/s (2000, below what the stack sustains here). Every service shares
# this machine's cores, so the figures say what the cluster's overhead
# costs, not what more machines would bring. Stops the stack at the end
# (KEEP=1 keeps it).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
sh=(bash "$root/scripts/compose.sh")
export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-votestream}"
export VOTESTREAM_VOTERS="${VOTESTREAM_VOTERS:-300000}"
rate="${BENCH_RATE:-2000}"
store="$(sed -n 's/^x-store: &store //p' compose.yaml)"
started=$SECONDS

say() { printf '\n== %s (%ds)\n' "$*" $((SECONDS - started)); }
compose() { if docker compose version >/dev/null 2>&1; then docker compose "$@"; else docker-compose "$@"; fi; }
cleanup() { if [ "${KEEP:-0}" != 1 ]; then "${sh[@]}" down -v; fi; }
trap cleanup EXIT

# CPU time (ns) each of the stack's containers has used, "name ns" lines
# (cgroup v1 or v2, whichever the engine uses).
cpu_usage() {
  local id name f
  for id in $(docker ps -q --no-trunc --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME"); do
    name="$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}}' "$id")"
    for f in "/sys/fs/cgroup/cpuacct/docker/$id/cpuacct.usage" "/sys/fs/cgroup/system.slice/docker-$id.scope/cpu.stat"; do
      [ -r "$f" ] || continue
      case "$f" in
        *cpu.stat) echo "$name $(awk '$1 == "usage_usec" {print $2 * 1000}' "$f")" ;;
        *) echo "$name $(cat "$f")" ;;
      esac
      break
    done
  done | sort
}

# Each container's share of the CPU the stack used between two cpu_usage
# snapshots, and its CPU time per 1,000 votes.
cpu_table() {
  local votes="$1"
  join "$2" "$3" | awk -v votes="$votes" '
    { used[$1] = ($3 - $2) / 1e9; total += used[$1] }
    END {
      printf "%-16s %9s %7s %16s\n", "container", "CPU s", "share", "CPU ms/1k votes"
      for (c in used) printf "%-16s %9.1f %6.1f%% %16.1f\n", c, used[c], 100 * used[c] / total, 1e6 * used[c] / votes | "sort -k2 -nr"
      close("sort -k2 -nr")
      printf "%-16s %9.1f %6.1f%% %16.1f\n", "all", total, 100, 1e6 * total / votes
    }'
}

votes_now() {
  compose exec -T postgres-1 psql -h 127.0.0.1 -U postgres -d votestream -tAc 'SELECT COUNT(*) FROM votes' | tr -d '[:space:]'
}

# A night (seed, ballots/s) while the probe watches: the probe's line, then
# what each container spent on it.
night() {
  local seed="$1" rate="$2" label="$3" name="bench-$1" probe rc before after v0 sent
  docker rm -f "$name" >/dev/null 2>&1 || true
  before="$(mktemp)" after="$(mktemp)"
  v0="$(votes_now)"
  cpu_usage >"$before"
  compose exec -T -e VOTESTREAM_STORE="$store" spark-master \
    /votestream/target/spark/venv/bin/python - probe "$label" <scripts/compose_bench.py &
  probe=$!
  sleep 1
  compose run -d --no-deps --name "$name" simulate \
    simulate --seed "$seed" --turnout 0.5 --rate "$rate" >/dev/null
  rc="$(timeout 900 docker wait "$name")" || rc=timeout
  sent="$(docker logs "$name" 2>&1 | tail -1)"
  echo "$sent"
  docker rm -f "$name" >/dev/null
  sent="$(grep -o 'sent [0-9]*' <<<"$sent" | cut -d' ' -f2)"
  compose exec -T spark-master bash -c "echo ${sent:-0} >/tmp/bench-night-done"
  wait "$probe"
  cpu_usage >"$after"
  cpu_table "$(($(votes_now) - v0))" "$before" "$after"
  rm -f "$before" "$after"
  [ "$rc" = 0 ] || { echo "simulator exit $rc"; return 1; }
}

say "stack up (clean, $VOTESTREAM_VOTERS voters)"
"${sh[@]}" engine
compose down -v --remove-orphans
"${sh[@]}" up --scale simulate=0
echo "load average before the nights: $(cut -d' ' -f1-3 /proc/loadavg)"

say "night at full speed (rate max)"
night 201 max "cluster, rate max"

say "night at $rate ballots/s"
night 202 "$rate" "cluster, $rate ballots/s"

say "audit"
compose exec -T aggregate-1 votestream audit | tail -2
say "done"
