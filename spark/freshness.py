#!/usr/bin/env python3
"""Freshness of the Spark engine: produce -> visible in results_candidate.

Creates a fresh database and votes topic, starts the Spark job on them (as
scripts/spark.sh does), produces votes at a steady rate, and among them
"probe" votes, each for a candidate id of its own. The freshness of a probe
is the time from just before it is produced to the first poll of
PostgreSQL (every 20 ms) that shows its candidate in results_candidate.
Prints p50/p99/max, then stops the job and drops the database and topic.

Run it through `scripts/spark.sh freshness [--rate N --seconds S]`.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import votegen  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bus", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    ap.add_argument("--store", default=os.environ.get("VOTESTREAM_STORE") or os.environ.get("DATABASE_URL"),
                    help="a PostgreSQL URL; a fresh database is created beside it")
    ap.add_argument("--rate", type=int, default=1000, help="votes per second")
    ap.add_argument("--probes", type=int, default=10, help="probe votes per second (within the rate)")
    ap.add_argument("--seconds", type=int, default=60, help="measured seconds")
    ap.add_argument("--warmup-seconds", type=int, default=20,
                    help="seconds at the same rate before measuring (the JVM's JIT warms up)")
    ap.add_argument("--trigger-ms", type=int, default=500)
    ap.add_argument("--log", default=os.path.join(ROOT, "target", "spark", "freshness-job.log"))
    args = ap.parse_args()
    bootstrap = args.bus.removeprefix("kafka://")

    tag = uuid.uuid4().hex[:8]
    db = f"spark_fresh_{tag}"
    topic = f"votes_fresh_{tag}"
    parts = urlsplit(args.store)
    url = urlunsplit((parts.scheme, parts.netloc, "/" + db, parts.query, parts.fragment))
    admin = AdminClient({"bootstrap.servers": bootstrap})
    with psycopg.connect(args.store, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    with psycopg.connect(url, autocommit=True) as conn, \
            open(os.path.join(ROOT, "src", "store", "postgres_schema.sql"), encoding="utf-8") as f:
        conn.execute(f.read())
    for fut in admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=-1)]).values():
        fut.result()
    os.makedirs(os.path.dirname(args.log), exist_ok=True)
    ckpt = os.path.join(ROOT, "target", "spark", f"freshness-ckpt-{tag}")
    job = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "votestream_spark.py"), "--bus", bootstrap, "--topic", topic,
         "--store", url, "--checkpoint", ckpt, "--trigger-ms", str(args.trigger_ms),
         "--candidate-topic", f"agg_candidate_{tag}", "--turnout-topic", f"agg_turnout_{tag}"],
        stdout=open(args.log, "wb"), stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all",
                         "enable.idempotence": True})
    rng = votegen.rng_for(1)
    seq = 0

    def send(v):
        producer.produce(topic, key=v["voter_id"].encode(), value=json.dumps(v).encode())

    try:
        with psycopg.connect(url, autocommit=True) as conn:
            def seen():
                return {c: time.monotonic() for (c,) in conn.execute(
                    "SELECT candidate_id FROM results_candidate WHERE candidate_id LIKE 'probe-%'").fetchall()}

            # Warm up: wait until the job counts a first vote.
            deadline = time.monotonic() + 180
            warm = votegen.vote(rng, seq, "e1", votegen.T0)
            warm["candidate_id"] = "probe-warmup"
            send(warm)
            producer.flush(10)
            seq += 1
            while "probe-warmup" not in seen():
                if job.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the Spark job did not start; see {args.log}")
                time.sleep(0.2)

            sent, first_seen = {}, {}
            start = time.monotonic()
            probe_every = max(1, args.rate // max(1, args.probes))
            next_poll = start
            while time.monotonic() - start < args.warmup_seconds + args.seconds:
                due = int((time.monotonic() - start) * args.rate)
                while seq - 1 < due:
                    v = votegen.vote(rng, seq, "e1", votegen.T0 + int((time.monotonic() - start) * 1000))
                    if seq % probe_every == 0 and time.monotonic() - start >= args.warmup_seconds:
                        v["candidate_id"] = f"probe-{seq}"
                        sent[v["candidate_id"]] = time.monotonic()
                    send(v)
                    seq += 1
                producer.poll(0)
                now = time.monotonic()
                if now >= next_poll:
                    for c, t in seen().items():
                        first_seen.setdefault(c, t)
                    next_poll = now + 0.02
                time.sleep(0.002)
            producer.flush(10)
            deadline = time.monotonic() + 60
            while set(sent) - set(first_seen) and time.monotonic() < deadline:
                for c, t in seen().items():
                    first_seen.setdefault(c, t)
                time.sleep(0.02)
            lat = [(first_seen[c] - t) * 1000 for c, t in sent.items() if c in first_seen]
            missing = len(sent) - len(lat)
            (total,) = conn.execute("SELECT SUM(votes)::bigint FROM results_candidate").fetchone()
        print(f"Spark engine freshness, produce -> visible in results_candidate "
              f"({args.rate} votes/s for {args.seconds} s after {args.warmup_seconds} s of warm-up, trigger {args.trigger_ms} ms, "
              f"{len(lat)} probes{f', {missing} never seen' if missing else ''}; {total} of {seq} votes counted):")
        print(f"  p50 {pct(lat, 50):.0f} ms   p99 {pct(lat, 99):.0f} ms   max {max(lat):.0f} ms   "
              f"(target p99 <= 3000 ms)")
    finally:
        try:
            os.killpg(job.pid, signal.SIGTERM)
            job.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(job.pid, signal.SIGKILL)  # the JVM, if it outlived the driver
        except ProcessLookupError:
            pass
        with psycopg.connect(args.store, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        for fut in admin.delete_topics([topic, f"agg_candidate_{tag}", f"agg_turnout_{tag}"]).values():
            try:
                fut.result()
            except Exception:  # noqa: BLE001
                pass
        subprocess.run(["rm", "-rf", ckpt], check=False)


if __name__ == "__main__":
    main()
