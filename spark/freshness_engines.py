#!/usr/bin/env python3
"""Freshness of the Spark engine beside the built-in engine, on one stream.

Runs the real distributed pipeline on a fresh database and a topic prefix of
its own: `votestream generate`, `process`, the built-in `aggregate --follow`
and `aggregate --engine spark`, then `simulate --rate R` through Kafka. Every
`--poll-ms` one query reads, in one snapshot, the number of committed votes
(max(seq) of the votes table: seq grows in commit order without gaps) and
each engine's SUM(votes) in results_candidate. The freshness of vote k for an
engine is the time of the first poll at which that engine has counted k
votes minus the time of the first poll at which k votes were committed.
Measuring starts after --warmup-seconds, and not before the Spark engine
has caught up once (counted every vote committed a second earlier): its
first batches after a start, while the JVM warms up, take several seconds
each and let a backlog build. The time that took is printed too.

Run it through `scripts/spark.sh freshness-engines [ARGS]` (venv and jars);
it needs a release build of votestream (--votestream, default
$CARGO_TARGET_DIR/release/votestream or target/release/votestream).
"""

import argparse
import bisect
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
from confluent_kafka.admin import AdminClient

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def first_reaching(samples, k):
    """Time of the first sample whose count is >= k (samples: sorted by time, counts monotone)."""
    counts = [c for _, c in samples]
    i = bisect.bisect_left(counts, k)
    return samples[i][0] if i < len(samples) else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ap.add_argument("--votestream", default=os.path.join(target, "release", "votestream"))
    ap.add_argument("--bus", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:19092"),
                    help="Kafka bootstrap servers (host:port or kafka://host:port)")
    ap.add_argument("--store", default=os.environ.get("VOTESTREAM_STORE") or os.environ.get("DATABASE_URL"),
                    help="a PostgreSQL URL; a fresh database is created beside it and dropped after")
    ap.add_argument("--rate", type=int, default=2000, help="simulated ballots per second")
    ap.add_argument("--seconds", type=int, default=60, help="measured seconds")
    ap.add_argument("--warmup-seconds", type=int, default=20)
    ap.add_argument("--poll-ms", type=int, default=20)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--log-dir", default=None, help="stage logs (default: a temporary directory, kept)")
    args = ap.parse_args()
    if not os.access(args.votestream, os.X_OK):
        raise SystemExit(f"no votestream binary at {args.votestream}: cargo build --release (or --votestream)")
    bootstrap = args.bus.removeprefix("kafka://").split("?")[0]
    tag = uuid.uuid4().hex[:8]
    prefix = f"fresh-{tag}."
    bus = f"kafka://{bootstrap}?partitions={args.partitions}&prefix={prefix}"
    db = f"fresh_engines_{tag}"
    parts = urlsplit(args.store)
    url = urlunsplit((parts.scheme, parts.netloc, "/" + db, parts.query, parts.fragment))
    logs = args.log_dir or tempfile.mkdtemp(prefix=f"freshness-{tag}-")
    os.makedirs(logs, exist_ok=True)
    # Enough voters that the simulation outlasts warm-up, catch-up and
    # measurement (80% turnout).
    voters = int((args.warmup_seconds + args.seconds + 130) * args.rate / 0.8)

    with psycopg.connect(args.store, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOTESTREAM_")}
    env.update(VOTESTREAM_LOG="warn", VOTESTREAM_SPARK_SCRIPT=os.path.join(ROOT, "scripts", "spark.sh"),
               VOTESTREAM_SPARK_PIDFILE=os.path.join(logs, "spark.pid"))
    procs = []

    def vs(*a):
        return [args.votestream, *a, "--store", url, "--bus", bus]

    def spawn(name, cmd):
        log = open(os.path.join(logs, f"{name}.log"), "wb")
        p = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        procs.append(p)
        return p

    try:
        t0 = time.monotonic()
        subprocess.run(vs("generate", "--voters", str(voters)), env=env, cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        print(f"generated {voters} voters in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        spawn("process", vs("process", "--instance", "p1"))
        spawn("builtin", vs("aggregate", "--follow"))
        spark = spawn("spark", vs("aggregate", "--engine", "spark", "--checkpoint",
                                  os.path.join(logs, "checkpoint")))
        # The Spark query is up once the job logs "streaming …".
        deadline = time.monotonic() + 240
        while b"streaming " not in open(os.path.join(logs, "spark.log"), "rb").read():
            if spark.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the Spark engine did not start; see {logs}/spark.log")
            time.sleep(0.5)
        sim = spawn("simulate", vs("simulate", "--rate", str(args.rate)))
        sim_start = time.monotonic()
        samples = {"commit": [], "builtin": [], "spark": []}
        poll = args.poll_ms / 1000
        with psycopg.connect(url, autocommit=True) as conn:
            q = ("SELECT (SELECT COALESCE(max(seq), 0) FROM votes), "
                 "(SELECT COALESCE(SUM(votes), 0) FROM results_candidate WHERE engine = 'builtin'), "
                 "(SELECT COALESCE(SUM(votes), 0) FROM results_candidate WHERE engine = 'spark')")
            measure_from = end = None
            drained_since = None
            while True:
                now = time.monotonic()
                c, b, s = conn.execute(q).fetchone()
                t = (now + time.monotonic()) / 2
                for name, n in (("commit", c), ("builtin", b), ("spark", s)):
                    if not samples[name] or n > samples[name][-1][1]:
                        samples[name].append((t, int(n)))
                if measure_from is None and now - sim_start >= args.warmup_seconds:
                    second_ago = [n for tt, n in samples["commit"] if tt <= now - 1.0]
                    if second_ago and s >= second_ago[-1]:
                        measure_from, end = now, now + args.seconds
                    elif now - sim_start > args.warmup_seconds + 120:
                        raise SystemExit("the Spark engine did not catch up within 120 s after the warm-up")
                if end is not None and now > end:
                    if sim.poll() is None:
                        sim.send_signal(signal.SIGTERM)  # the measured part is over
                    if c == b == s and sim.poll() is not None:
                        drained_since = drained_since or now
                        if now - drained_since > 2:
                            break
                    if now > end + 120:
                        print("warning: not drained 120 s after the measurement", file=sys.stderr)
                        break
                time.sleep(max(0.0, poll - (time.monotonic() - now)))
        commit = samples["commit"]
        lo = next(n for t, n in commit if t >= measure_from)
        hi = max(n for t, n in commit if t <= end)
        ks = range(lo + 1, hi + 1, max(1, (hi - lo) // 5000))
        secs = (first_reaching(commit, hi) - first_reaching(commit, lo + 1))
        print(f"Freshness, vote committed (votes table) -> counted in results_candidate, one stream: "
              f"simulate --rate {args.rate} through Kafka ({args.partitions} partitions), process, the "
              f"built-in engine and the Spark engine side by side; {hi - lo} votes committed in the "
              f"{secs:.0f} s measured from {measure_from - sim_start:.0f} s into the stream (warm-up "
              f"{args.warmup_seconds} s, then Spark caught up) at {(hi - lo) / max(secs, 1e-9):.0f} "
              f"votes/s, polled every {args.poll_ms} ms:")
        for engine in ("builtin", "spark"):
            lat = []
            for k in ks:
                tc, te = first_reaching(commit, k), first_reaching(samples[engine], k)
                if tc is not None and te is not None:
                    lat.append(max(0.0, te - tc) * 1000)
            target = 250 if engine == "builtin" else 3000
            print(f"  {engine:8} p50 {pct(lat, 50):5.0f} ms   p99 {pct(lat, 99):5.0f} ms   "
                  f"max {max(lat):5.0f} ms   ({len(lat)} votes sampled; target p99 <= {target} ms)")
        print(f"  logs: {logs}")
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in reversed(procs):
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(p.pid, signal.SIGKILL)  # whatever outlived SIGTERM (a JVM)
            except ProcessLookupError:
                pass
        with psycopg.connect(args.store, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin = AdminClient({"bootstrap.servers": bootstrap})
        mine = [t for t in admin.list_topics(timeout=30).topics if t.startswith(prefix)]
        if mine:
            for fut in admin.delete_topics(mine, operation_timeout=30).values():
                try:
                    fut.result()
                except Exception:  # noqa: BLE001
                    pass


if __name__ == "__main__":
    main()
