"""What scripts/compose.sh bench measures inside the stack (run with the
Spark image's Python, which has psycopg), while a night of ballots plays:

  probe LABEL     polls the votes ledger (its last position) and the built-in
                  engine's tallies in PostgreSQL every few milliseconds, and
                  the results API behind the load balancer every 20 ms, until
                  the ledger has been still for a while and everything shows
                  it; prints one line: the ledger's rate from its first to
                  its last new vote, and the freshness of each vote (ledger
                  commit -> counted in the tallies, and -> shown by the API)
                  as p50/p99, weighted by votes.

Seqs are gap-free in commit order, so "counted >= seq" is "that vote is
visible". The probe's own poll interval bounds its resolution: a freshness
is measured to within one poll of the ledger (about 2-5 ms here) plus one of
the reader (the API: 20 ms).
"""
import json, os, sys, threading, time, urllib.request

import psycopg

STORE = os.environ["VOTESTREAM_STORE"]
LB = os.environ.get("LB", "http://lb:8080")
ELECTION = "general-2026"
# Written by the script once the simulator has exited: how many ballots it
# sent. The night is over when each is recorded (a vote or a rejection): a
# still ledger can be a processor's long transaction, not the end.
DONE = os.environ.get("BENCH_DONE_FILE", "/tmp/bench-night-done")
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT_SECS", "900"))


def api_poller(out, stop):
    url = f"{LB}/api/v1/elections/{ELECTION}/results/totals"
    last = -1
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                counted = json.load(r).get("counted", 0)
            if counted > last:
                last = counted
                out.append((counted, time.monotonic()))
        except OSError:
            pass
        time.sleep(0.02)


def freshness(start, commits, seen):
    """Vote-weighted delays from each ledger step to the first reading that
    covers it, in ms; commits and seen are (position, time) in time order."""
    delays, j, prev = [], 0, start
    for pos, t in commits:
        while j < len(seen) and seen[j][0] < pos:
            j += 1
        if j == len(seen):
            break
        votes, prev = pos - prev, pos
        delays.append((max(seen[j][1] - t, 0.0) * 1000, votes))
    return delays


def pct(delays, q):
    total = sum(n for _, n in delays)
    if not total:
        return float("nan")
    acc = 0
    for d, n in sorted(delays):
        acc += n
        if acc >= q * total:
            return d
    return sorted(delays)[-1][0]


def probe(label):
    if os.path.exists(DONE):
        os.remove(DONE)
    conn = psycopg.connect(STORE, autocommit=True)
    ledger = lambda: conn.execute("SELECT COALESCE(MAX(seq), 0) FROM votes").fetchone()[0]
    counted = lambda: conn.execute(
        "SELECT COALESCE(SUM(votes), 0) FROM results_candidate WHERE engine = 'builtin' AND election_id = %s",
        (ELECTION,)).fetchone()[0]
    records = lambda: ledger() + conn.execute("SELECT COUNT(*) FROM rejected_ballots").fetchone()[0]
    start, records_before, recorded, checked = ledger(), records(), False, 0.0
    commits, seen, api = [(start, time.monotonic())], [(counted(), time.monotonic())], []
    stop = threading.Event()
    threading.Thread(target=api_poller, args=(api, stop), daemon=True).start()
    began, polls = time.monotonic(), 0
    while True:
        polls += 1
        now = time.monotonic()
        pos = ledger()
        if pos > commits[-1][0]:
            commits.append((pos, time.monotonic()))
        c = counted()
        if c > seen[-1][0]:
            seen.append((c, time.monotonic()))
        if not recorded and now - checked > 0.5 and os.path.exists(DONE):
            checked = now
            with open(DONE) as f:
                sent = int(f.read().strip() or 0)
            recorded = records() - records_before >= sent
        caught_up = seen[-1][0] >= commits[-1][0] and api and api[-1][0] >= commits[-1][0]
        if recorded and caught_up and ledger() == commits[-1][0]:
            break
        if now - began > TIMEOUT:
            print(f"{label}: timed out after {TIMEOUT:.0f} s (ledger {pos}, counted {c})")
            return False
        time.sleep(0.002)
    stop.set()
    steps = commits[1:]
    # The first step's votes were committed before its reading: the rate
    # counts from that reading on.
    votes = steps[-1][0] - steps[0][0]
    secs = steps[-1][1] - steps[0][1] or float("nan")
    store_f, api_f = freshness(start, steps, seen), freshness(start, steps, api)
    print(f"{label}: {votes} votes in {secs:.1f} s = {votes / secs:.0f} votes/s (ledger, first to last new vote); "
          f"freshness ledger->tallies p50 {pct(store_f, .5):.0f} ms p99 {pct(store_f, .99):.0f} ms; "
          f"ledger->results API behind the load balancer p50 {pct(api_f, .5):.0f} ms p99 {pct(api_f, .99):.0f} ms "
          f"({len(steps)} ledger steps seen in {polls} polls over {time.monotonic() - began:.0f} s)")
    return True


if __name__ == "__main__":
    if sys.argv[1] != "probe":
        sys.exit(f"unknown command {sys.argv[1]}")
    sys.exit(0 if probe(sys.argv[2] if len(sys.argv) > 2 else "night") else 1)
