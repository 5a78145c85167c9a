#!/usr/bin/env bash
# `scripts/compose.sh test`: the stack from scratch, then failure drills,
# each during a night of simulated ballots and each bounded in time:
#   1. kill one Kafka broker          3. kill one Spark worker
#   2. kill the PostgreSQL primary,   4. kill one `serve` instance while a
#      promote the replica               client casts ballots through HAProxy
# After each: every ballot sent is recorded once (a vote, or a rejection
# with its reason), `votestream audit` passes, and the Spark engine's
# results equal the built-in engine's. Last, the load balancer's results
# show the final totals. VOTESTREAM_VOTERS (30000) and VOTESTREAM_RATE (400)
# size the nights. Stops the stack at the end (KEEP=1 keeps it).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
sh=(bash "$root/scripts/compose.sh")
export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-votestream}"
export VOTESTREAM_VOTERS="${VOTESTREAM_VOTERS:-30000}" VOTESTREAM_RATE="${VOTESTREAM_RATE:-400}"
export VOTESTREAM_API_TOKEN="${VOTESTREAM_API_TOKEN:-compose-api-token}"
store="$(sed -n 's/^x-store: &store //p' compose.yaml)"
bus="$(sed -n 's/^x-bus: &bus //p' compose.yaml)"
lb="http://127.0.0.1:${VOTESTREAM_LB_PORT:-8480}"
started=$SECONDS
failed=()

say() { printf '\n== %s (%ds)\n' "$*" $((SECONDS - started)); }
compose() { if docker compose version >/dev/null 2>&1; then docker compose "$@"; else docker-compose "$@"; fi; }
check() {
  compose exec -T -e VOTESTREAM_STORE="$store" -e VOTESTREAM_BUS="$bus" \
    -e VOTESTREAM_API_TOKEN="$VOTESTREAM_API_TOKEN" -e CHECK_TIMEOUT="${CHECK_TIMEOUT:-240}" \
    spark-master /votestream/target/spark/venv/bin/python - "$@" <scripts/compose_check.py
}
cleanup() {
  if [ "${KEEP:-0}" != 1 ]; then "${sh[@]}" down -v; fi
}
trap cleanup EXIT

# A night of ballots from its own seed (a new mix of first ballots and of
# voters who already voted), in the background; its container's name.
night() {
  local name="night-$1"
  docker rm -f "$name" >/dev/null 2>&1 || true
  compose run -d --no-deps --name "$name" simulate \
    simulate --seed "$1" --turnout 0.3 --rate "$VOTESTREAM_RATE" >/dev/null
  echo "$name"
}
wait_night() {
  local rc
  rc="$(timeout 600 docker wait "$1")" || rc=timeout
  docker logs "$1" 2>&1 | tail -1
  docker rm -f "$1" >/dev/null
  echo "night $1: simulator exit $rc"
  [ "$rc" = 0 ]
}

# The drill's checks; a failed one is remembered, the next drill still runs.
# The audit comes after the engines check, which waits for both engines to
# count every vote: tallies are exact once the pipeline has drained, and an
# aggregator can still be catching up after a consumer-group rebalance.
verify() {
  local drill="$1" ok=1
  check ledger "$drill" || ok=0
  check engines || ok=0
  compose exec -T aggregate-1 votestream audit >/tmp/compose-audit.txt 2>&1 && echo "audit: passed" ||
    { ok=0; echo "audit: FAILED"; cat /tmp/compose-audit.txt; }
  ((ok)) || failed+=("$drill")
}

say "stack up (clean, $VOTESTREAM_VOTERS voters)"
"${sh[@]}" engine
compose down -v --remove-orphans
"${sh[@]}" up --scale simulate=0

say "drill 1: kill one Kafka broker during a night"
n="$(night 101)"; sleep 8
compose kill kafka-2
wait_night "$n" || failed+=(night-1)
compose start kafka-2
"${sh[@]}" wait-healthy 180
verify kafka-broker

say "drill 2: kill the PostgreSQL primary during a night, fail over"
n="$(night 102)"; sleep 8
"${sh[@]}" failover-pg
wait_night "$n" || failed+=(night-2)
"${sh[@]}" wait-healthy 180 '^votestream_postgres-1_|^votestream-postgres-1-'
verify postgres-failover

say "drill 3: kill one Spark worker during a night"
n="$(night 103)"; sleep 8
compose kill spark-worker-1
wait_night "$n" || failed+=(night-3)
compose start spark-worker-1
verify spark-worker

say "drill 4: kill one serve instance while a client casts through HAProxy"
# Both instances must be in the pool for the drill to mean anything. A
# `serve` whose in-process aggregator owns no partition that still gets
# votes can report itself stuck once the night is over; say so and restart it.
for s in serve-1 serve-2; do
  why="$(compose exec -T "$s" curl -sS -m 5 http://127.0.0.1:8080/readyz || true)"
  if [ "$why" != ready ]; then echo "$s /readyz: $why; restarting it"; compose restart "$s"; fi
done
"${sh[@]}" wait-healthy 120 '^votestream_postgres-1_|^votestream-postgres-1-'
check cast "${CAST:-1500}" /tmp/answers.json >/tmp/compose-cast.txt 2>&1 &
caster=$!
sleep 5
compose kill serve-1
wait "$caster" || failed+=(cast)
cat /tmp/compose-cast.txt
compose start serve-1
check answered /tmp/answers.json || failed+=(http-answers)
verify serve-instance

say "final totals behind the load balancer"
votes="$(compose exec -T postgres-2 psql -h 127.0.0.1 -U postgres -d votestream -tAc 'SELECT COUNT(*) FROM votes')"
echo "votes table: $votes"
# The servers refresh their view of the results every moment: poll a while.
for _ in $(seq 1 30); do
  totals="$(curl -fsS "$lb/api/v1/elections/general-2026/results/totals" || true)"
  grep -q "\"counted\":$votes[,}]" <<<"$totals" && break
  sleep 2
done
echo "load balancer /results/totals: $(grep -o '"counted":[0-9]*' <<<"$totals" || echo "$totals")"
grep -q "\"counted\":$votes[,}]" <<<"$totals" || failed+=(totals-api)
# The dashboard page itself, rendered by headless Chromium (Debian's): its
# "accepted" figure, with thousands separators.
bash scripts/browser.sh >/dev/null
pretty="$(sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$votes")"
for _ in 1 2 3 4 5; do
  dom="$(timeout 60 chromium --headless --no-sandbox --disable-gpu --timeout=15000 --dump-dom "$lb/" 2>"$root/target/compose/chromium.log" || true)"
  shown="$(grep -o 'id="n-accepted">[0-9,]*' <<<"$dom" | cut -d'>' -f2 || true)"
  [ "$shown" = "$pretty" ] && break
  sleep 3
done
printf '%s' "$dom" >"$root/target/compose/dashboard.html"
echo "dashboard through the load balancer (headless Chromium): accepted ${shown:-nothing} (page: ${#dom} bytes)"
[ "$shown" = "$pretty" ] || failed+=(dashboard)

say "Prometheus scrapes every votestream instance"
prom="http://127.0.0.1:${VOTESTREAM_PROMETHEUS_PORT:-9490}"
up=0
for _ in $(seq 1 20); do
  answer="$(curl -fsS "$prom/api/v1/query?query=up%7Bjob%3D~%22votestream.*%22%7D%3D%3D1" || true)"
  up="$(grep -o '"instance":"[^"]*"' <<<"$answer" | sort -u | wc -l)"
  [ "$up" -ge 7 ] && break
  sleep 3
done
echo "prometheus: $up of 7 votestream instances up (2 serve, 3 process, 2 aggregate)"
[ "$up" -ge 7 ] || failed+=(prometheus)

say "done"
if ((${#failed[@]})); then echo "FAILED: ${failed[*]}"; exit 1; fi
echo "every drill passed"
