#!/usr/bin/env python3
"""votestream's Apache Spark Structured Streaming aggregation engine.

Reads the accepted, enriched votes from Kafka's `votes_topic` (read_committed)
and keeps the same tallies as votestream's built-in engine in PostgreSQL's
results tables, under its own engine name (default 'spark'):

  results_candidate    per (election, candidate)
  results_state        per (election, address.state, candidate)
  results_demographic  per (election, age_band, gender, candidate)
  results_minute       per (election, minute of cast_at, candidate), within the
                       lateness allowance
  results_election     late_votes and max_cast_at per election

Exactly once: each micro-batch is folded into deltas and written in ONE
PostgreSQL transaction together with the batch id (spark_progress) and the
next Kafka offset per partition (spark_offsets). A batch id already recorded
is skipped, and rows below the recorded offsets are filtered out, so a batch
replayed after a crash (or a lost checkpoint) never counts a vote twice.

After the commit the touched totals are read back from PostgreSQL and
published to the compacted topics aggregated_votes_per_candidate (key
"election_id:candidate_id") and aggregated_turnout_by_location (key
"election_id:state"), the built-in engine's keys. The bus URL's prefix
(kafka://…?prefix=P, as votestream's CLI takes it) applies to every topic. At start every
total is published once, so a crash between commit and publish heals.

Run it through scripts/spark.sh (which passes the Kafka connector as local
jars); see spark/README.md.
"""

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections import defaultdict

import psycopg

MINUTE_MS = 60_000
# The advisory lock votestream takes while applying its schema
# (src/store/postgres/mod.rs MIGRATE_LOCK), so both never race on a fresh database.
MIGRATE_LOCK = 0x766F_7465_0000_0001
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SCHEMA = os.path.join(HERE, "..", "src", "store", "postgres_schema.sql")

log = logging.getLogger("votestream_spark")

PROGRESS_DDL = """
CREATE TABLE IF NOT EXISTS spark_progress (
    engine TEXT NOT NULL, query TEXT NOT NULL, batch_id BIGINT NOT NULL,
    PRIMARY KEY (engine, query)
);
-- The candidates' names as seen on votes_topic, for the aggregate topic.
CREATE TABLE IF NOT EXISTS spark_candidates (
    engine TEXT NOT NULL, election_id TEXT NOT NULL, candidate_id TEXT NOT NULL,
    candidate_name TEXT, party_affiliation TEXT, photo_url TEXT,
    PRIMARY KEY (engine, election_id, candidate_id)
);
CREATE TABLE IF NOT EXISTS spark_offsets (
    engine TEXT NOT NULL, topic TEXT NOT NULL, kafka_partition INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (engine, topic, kafka_partition)
);
"""


def env(name, default=None):
    value = os.environ.get(name)
    return value if value not in (None, "") else default


# Topics the Rust CLI creates with this many partitions unless the URL says
# otherwise (src/bus/kafka/mod.rs DEFAULT_PARTITIONS).
DEFAULT_PARTITIONS = 6


class BusUrl:
    """votestream's `--bus kafka://HOST:PORT[,HOST:PORT…][?partitions=N&replication=R&prefix=P]`,
    parsed as the Rust CLI parses it (src/bus/kafka/mod.rs KafkaBus::parse).
    `prefix` namespaces every topic; `partitions` and `replication` apply to
    topics this job creates. A bare `host:port[,…]` is accepted too."""

    def __init__(self, bootstrap, partitions=DEFAULT_PARTITIONS, replication=None, prefix=""):
        self.bootstrap, self.partitions, self.replication, self.prefix = \
            bootstrap, partitions, replication, prefix

    def topic(self, name):
        return f"{self.prefix}{name}"


def parse_bus(url):
    def bad(why):
        raise ValueError(f"bad bus URL {url!r}: {why}")

    rest = url[len("kafka://"):] if url.startswith("kafka://") else url
    hosts, _, query = rest.partition("?")
    hosts = hosts.rstrip("/")
    if not hosts or any(":" not in h for h in hosts.split(",")):
        bad("every broker needs HOST:PORT")
    bus = BusUrl(hosts)
    for pair in filter(None, query.split("&")):
        k, _, v = pair.partition("=")
        if k in ("partitions", "replication"):
            if not v.isdigit() or int(v) <= 0:
                bad(f"{k} must be a positive integer, not {v!r}")
            setattr(bus, k, int(v))
        elif k == "prefix":
            if not all(c.isascii() and (c.isalnum() or c in "._-") for c in v):
                bad("prefix may hold only letters, digits, '.', '_' and '-'")
            bus.prefix = v
        else:
            bad(f"unknown setting {k!r}")
    return bus


def bootstrap_of(bus):
    """The bootstrap servers of a bus URL."""
    return parse_bus(bus).bootstrap


def parse_args(argv=None):
    allowance_default = env("VOTESTREAM_SPARK_ALLOWANCE_MS")
    if allowance_default is None and env("VOTESTREAM_ALLOWANCE_SECS") is not None:
        allowance_default = int(env("VOTESTREAM_ALLOWANCE_SECS")) * 1000
    p = argparse.ArgumentParser(
        description="votestream's Spark Structured Streaming aggregation engine",
        epilog="Every flag has an environment variable (in brackets).",
    )
    p.add_argument("--bus", default=env("VOTESTREAM_BUS", env("KAFKA_BOOTSTRAP", "127.0.0.1:19092")),
                   help="the bus as votestream's CLI takes it: kafka://HOST:PORT[,…][?partitions=N"
                        "&replication=R&prefix=P] (prefix namespaces every topic this reads "
                        "and writes), or host:port [VOTESTREAM_BUS, KAFKA_BOOTSTRAP]")
    p.add_argument("--topic", default=env("VOTESTREAM_SPARK_TOPIC", "votes_topic"),
                   help="the accepted votes topic, before the bus prefix [VOTESTREAM_SPARK_TOPIC]")
    p.add_argument("--store", default=env("VOTESTREAM_STORE", env("DATABASE_URL")),
                   help="PostgreSQL URL postgres://… [VOTESTREAM_STORE, DATABASE_URL]")
    p.add_argument("--checkpoint", default=env("VOTESTREAM_SPARK_CHECKPOINT", "target/spark/checkpoint"),
                   help="Spark checkpoint location; keep it to resume [VOTESTREAM_SPARK_CHECKPOINT]")
    p.add_argument("--allowance-ms", type=int, default=int(allowance_default or 60_000),
                   help="how late (event time) a vote may be and still count in its minute "
                        "[VOTESTREAM_SPARK_ALLOWANCE_MS, or VOTESTREAM_ALLOWANCE_SECS × 1000]")
    p.add_argument("--trigger-ms", type=int, default=int(env("VOTESTREAM_SPARK_TRIGGER_MS", 500)),
                   help="micro-batch trigger interval [VOTESTREAM_SPARK_TRIGGER_MS]")
    p.add_argument("--engine", default=env("VOTESTREAM_SPARK_ENGINE", "spark"),
                   help="engine name in the results tables [VOTESTREAM_SPARK_ENGINE]")
    p.add_argument("--max-offsets-per-trigger", type=int,
                   default=int(env("VOTESTREAM_SPARK_MAX_OFFSETS", 0)) or None,
                   help="cap a micro-batch's size (default: no cap) [VOTESTREAM_SPARK_MAX_OFFSETS]")
    p.add_argument("--kafka-option", action="append", default=[], metavar="KEY=VALUE",
                   help="extra option of Spark's Kafka source, e.g. kafka.fetch.max.wait.ms=100 "
                        "(repeatable)")
    p.add_argument("--candidate-topic", default=env("VOTESTREAM_SPARK_CANDIDATE_TOPIC",
                                                    "aggregated_votes_per_candidate"),
                   help="before the bus prefix [VOTESTREAM_SPARK_CANDIDATE_TOPIC]")
    p.add_argument("--turnout-topic", default=env("VOTESTREAM_SPARK_TURNOUT_TOPIC",
                                                  "aggregated_turnout_by_location"),
                   help="before the bus prefix [VOTESTREAM_SPARK_TURNOUT_TOPIC]")
    p.add_argument("--no-publish", action="store_true",
                   default=env("VOTESTREAM_SPARK_NO_PUBLISH") not in (None, "0", "false"),
                   help="write PostgreSQL only [VOTESTREAM_SPARK_NO_PUBLISH]")
    p.add_argument("--schema", default=env("VOTESTREAM_SPARK_SCHEMA", DEFAULT_SCHEMA),
                   help="votestream's PostgreSQL schema, applied at start if the file exists "
                        "[VOTESTREAM_SPARK_SCHEMA]")
    p.add_argument("--master", default=env("VOTESTREAM_SPARK_MASTER"),
                   help="Spark master when not set by spark-submit [VOTESTREAM_SPARK_MASTER]")
    args = p.parse_args(argv)
    if not args.store:
        p.error("--store postgres://… (or VOTESTREAM_STORE) is required")
    try:
        bus = parse_bus(args.bus)
    except ValueError as exc:
        p.error(str(exc))
    args.bootstrap = bus.bootstrap
    args.partitions, args.replication, args.prefix = bus.partitions, bus.replication, bus.prefix
    # Every topic name from here on is the full (prefixed) one.
    args.topic = bus.topic(args.topic)
    args.candidate_topic = bus.topic(args.candidate_topic)
    args.turnout_topic = bus.topic(args.turnout_topic)
    return args


# ---------------------------------------------------------------- PostgreSQL

def prepare_store(args):
    with psycopg.connect(args.store, autocommit=True) as conn:
        if args.schema and os.path.exists(args.schema):
            with open(args.schema, encoding="utf-8") as f:
                schema = f.read()
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
                conn.execute(schema)
        conn.execute(PROGRESS_DDL)
        missing = [t for t in ("results_candidate", "results_state", "results_demographic",
                               "results_minute", "results_election")
                   if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0] is None]
        if missing:
            raise SystemExit(f"votestream_spark: the store lacks {', '.join(missing)}: open it once with "
                             "votestream or apply src/store/postgres_schema.sql")


class Deltas:
    """One micro-batch folded into per-key increments."""

    def __init__(self):
        self.candidate = defaultdict(int)     # (election, candidate)
        self.state = defaultdict(int)         # (election, state, candidate)
        self.demographic = defaultdict(int)   # (election, age_band, gender, candidate)
        self.minute = defaultdict(int)        # (election, minute, candidate)
        self.late = defaultdict(int)          # election
        self.max_cast = {}                    # election -> max cast_at in the batch
        self.offsets = {}                     # partition -> next offset
        self.meta = {}                        # (election, candidate) -> (name, party, photo)
        self.invalid = 0
        self.votes = 0


def fold(rows, prior_max, allowance):
    """Folds the batch's grouped rows into Deltas.

    Lateness follows the built-in engine (src/aggregate/mod.rs Tallies::apply)
    with one difference: within one micro-batch the watermark does not
    advance, so every vote of the batch is judged against the max cast time
    committed before the batch (`prior_max`, per election)."""
    d = Deltas()
    for r in rows:
        part, off = r["partition"], r["max_offset"]
        if off is not None and off + 1 > d.offsets.get(part, -1):
            d.offsets[part] = off + 1
        e, c, n = r["election_id"], r["candidate_id"], r["n"]
        if e is None or c is None or r["minute"] is None or r["state"] is None \
                or r["age_band"] is None or r["gender"] is None:
            d.invalid += n
            continue
        d.votes += n
        d.candidate[(e, c)] += n
        d.state[(e, r["state"], c)] += n
        d.demographic[(e, r["age_band"], r["gender"], c)] += n
        minute = r["minute"]
        before = prior_max.get(e)
        if before is None or minute + MINUTE_MS > before - allowance:
            d.minute[(e, minute, c)] += n
        else:
            d.late[e] += n
        if r["max_cast"] is not None and r["max_cast"] > d.max_cast.get(e, r["max_cast"] - 1):
            d.max_cast[e] = r["max_cast"]
        d.meta[(e, c)] = (r["candidate_name"], r["party_affiliation"], r["photo_url"])
    return d


UPSERTS = {
    "candidate": """INSERT INTO results_candidate (engine, election_id, candidate_id, votes)
                    VALUES (%s, %s, %s, %s)
                    ON CONFLICT (engine, election_id, candidate_id)
                    DO UPDATE SET votes = results_candidate.votes + EXCLUDED.votes""",
    "state": """INSERT INTO results_state (engine, election_id, state, candidate_id, votes)
                VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT (engine, election_id, state, candidate_id)
                DO UPDATE SET votes = results_state.votes + EXCLUDED.votes""",
    "demographic": """INSERT INTO results_demographic (engine, election_id, age_band, gender, candidate_id, votes)
                      VALUES (%s, %s, %s, %s, %s, %s)
                      ON CONFLICT (engine, election_id, age_band, gender, candidate_id)
                      DO UPDATE SET votes = results_demographic.votes + EXCLUDED.votes""",
    "minute": """INSERT INTO results_minute (engine, election_id, minute, candidate_id, votes)
                 VALUES (%s, %s, %s, %s, %s)
                 ON CONFLICT (engine, election_id, minute, candidate_id)
                 DO UPDATE SET votes = results_minute.votes + EXCLUDED.votes""",
}


class Store:
    def __init__(self, args):
        self.args = args
        self.conn = psycopg.connect(args.store)

    def reconnect(self):
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001 - the old connection is gone either way
            pass
        self.conn = psycopg.connect(self.args.store)

    def committed(self, query_id):
        """(last batch id, {partition: next offset}) committed by this engine."""
        a = self.args
        with self.conn.transaction():
            row = self.conn.execute(
                "SELECT batch_id FROM spark_progress WHERE engine = %s AND query = %s",
                (a.engine, query_id)).fetchone()
            offsets = dict(self.conn.execute(
                "SELECT kafka_partition, next_offset FROM spark_offsets WHERE engine = %s AND topic = %s",
                (a.engine, a.topic)).fetchall())
        return (row[0] if row else None), offsets

    def prior_max(self):
        with self.conn.transaction():
            return dict(self.conn.execute(
                "SELECT election_id, max_cast_at FROM results_election WHERE engine = %s "
                "AND max_cast_at IS NOT NULL", (self.args.engine,)).fetchall())

    def commit(self, query_id, batch_id, d, expect_offsets):
        """Writes the batch in one transaction. Returns False (writing
        nothing) when another run committed this batch or these offsets
        meanwhile."""
        a, eng = self.args, self.args.engine
        with self.conn.transaction():
            cur = self.conn.cursor()
            # Serialise writers of this engine: the row locks below are taken
            # under this lock, and a concurrent second job fails the check.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('votestream_spark:' || %s))", (eng,))
            row = cur.execute("SELECT batch_id FROM spark_progress WHERE engine = %s AND query = %s",
                              (eng, query_id)).fetchone()
            if row is not None and row[0] >= batch_id:
                return False
            now = dict(cur.execute(
                "SELECT kafka_partition, next_offset FROM spark_offsets WHERE engine = %s AND topic = %s",
                (eng, a.topic)).fetchall())
            if now != expect_offsets:
                return False
            if d.candidate:
                cur.executemany(UPSERTS["candidate"], [(eng, e, c, n) for (e, c), n in d.candidate.items()])
                cur.executemany(UPSERTS["state"], [(eng, e, s, c, n) for (e, s, c), n in d.state.items()])
                cur.executemany(UPSERTS["demographic"],
                                [(eng, e, b, g, c, n) for (e, b, g, c), n in d.demographic.items()])
            if d.meta:
                cur.executemany(
                    """INSERT INTO spark_candidates (engine, election_id, candidate_id, candidate_name,
                                                     party_affiliation, photo_url)
                       VALUES (%s, %s, %s, %s, %s, %s)
                       ON CONFLICT (engine, election_id, candidate_id) DO UPDATE SET
                         candidate_name = EXCLUDED.candidate_name,
                         party_affiliation = EXCLUDED.party_affiliation, photo_url = EXCLUDED.photo_url""",
                    [(eng, e, c, *m) for (e, c), m in sorted(d.meta.items())])
            if d.minute:
                cur.executemany(UPSERTS["minute"], [(eng, e, m, c, n) for (e, m, c), n in d.minute.items()])
            elections = set(d.max_cast) | set(d.late)
            if elections:
                cur.executemany(
                    """INSERT INTO results_election (engine, election_id, late_votes, max_cast_at)
                       VALUES (%s, %s, %s, %s)
                       ON CONFLICT (engine, election_id) DO UPDATE SET
                         late_votes = results_election.late_votes + EXCLUDED.late_votes,
                         max_cast_at = GREATEST(results_election.max_cast_at, EXCLUDED.max_cast_at)""",
                    [(eng, e, d.late.get(e, 0), d.max_cast.get(e)) for e in sorted(elections)])
            if d.offsets:
                cur.executemany(
                    """INSERT INTO spark_offsets (engine, topic, kafka_partition, next_offset)
                       VALUES (%s, %s, %s, %s)
                       ON CONFLICT (engine, topic, kafka_partition)
                       DO UPDATE SET next_offset = GREATEST(spark_offsets.next_offset, EXCLUDED.next_offset)""",
                    [(eng, a.topic, p, o) for p, o in sorted(d.offsets.items())])
            cur.execute(
                """INSERT INTO spark_progress (engine, query, batch_id) VALUES (%s, %s, %s)
                   ON CONFLICT (engine, query) DO UPDATE SET batch_id = EXCLUDED.batch_id""",
                (eng, query_id, batch_id))
        return True

    def candidate_totals(self, keys=None):
        """[(election, candidate, votes, name, party, photo)] for the given
        (election, candidate) keys, or all."""
        eng = self.args.engine
        select = ("SELECT r.election_id, r.candidate_id, r.votes, m.candidate_name, m.party_affiliation, "
                  "m.photo_url FROM results_candidate r LEFT JOIN spark_candidates m "
                  "ON m.engine = r.engine AND m.election_id = r.election_id AND m.candidate_id = r.candidate_id ")
        with self.conn.transaction():
            if keys is None:
                return self.conn.execute(select + "WHERE r.engine = %s", (eng,)).fetchall()
            return self.conn.execute(
                select + "JOIN unnest(%s::text[], %s::text[]) AS k(e, c) "
                "ON r.election_id = k.e AND r.candidate_id = k.c WHERE r.engine = %s",
                ([e for e, _ in keys], [c for _, c in keys], eng)).fetchall()

    def state_totals(self, keys=None):
        """[(election, state, count)] for the given (election, state) keys, or all."""
        eng = self.args.engine
        with self.conn.transaction():
            if keys is None:
                return self.conn.execute(
                    "SELECT election_id, state, SUM(votes)::bigint FROM results_state WHERE engine = %s "
                    "GROUP BY election_id, state", (eng,)).fetchall()
            return self.conn.execute(
                "SELECT r.election_id, r.state, SUM(r.votes)::bigint FROM results_state r "
                "JOIN unnest(%s::text[], %s::text[]) AS k(e, s) ON r.election_id = k.e AND r.state = k.s "
                "WHERE r.engine = %s GROUP BY r.election_id, r.state",
                ([e for e, _ in keys], [s for _, s in keys], eng)).fetchall()


# --------------------------------------------------------------------- Kafka

class Publisher:
    """Publishes the latest totals to the compacted aggregate topics."""

    def __init__(self, args):
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient, NewTopic

        self.args = args
        admin = AdminClient({"bootstrap.servers": args.bootstrap})
        wanted = [args.candidate_topic, args.turnout_topic]
        existing = admin.list_topics(timeout=30).topics
        # As the Rust CLI creates them (KafkaBus::ensure_topics): the bus URL's
        # partitions, compacted; replication from the URL or the broker's default.
        new = [NewTopic(t, num_partitions=args.partitions, replication_factor=args.replication or -1,
                        config={"cleanup.policy": "compact"})
               for t in wanted if t not in existing]
        if new:
            for topic, fut in admin.create_topics(new, operation_timeout=30).items():
                try:
                    fut.result()
                    log.info("created compacted topic %s", topic)
                except Exception as exc:  # noqa: BLE001 - created meanwhile by another process is fine
                    if "TOPIC_ALREADY_EXISTS" not in str(exc):
                        raise
        self.producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True,
                                  "acks": "all", "linger.ms": 5})

    def publish(self, candidates, states):
        a = self.args
        for e, c, votes, name, party, photo in candidates:
            value = {"candidate_id": c, "candidate_name": name, "party_affiliation": party,
                     "photo_url": photo, "total_votes": votes, "election_id": e}
            # The built-in engine's keys (src/aggregate/stream.rs): one per election and candidate.
            self.producer.produce(a.candidate_topic, key=f"{e}:{c}".encode(), value=json.dumps(value).encode())
        for e, s, count in states:
            value = {"state": s, "count": count, "election_id": e}
            self.producer.produce(a.turnout_topic, key=f"{e}:{s}".encode(), value=json.dumps(value).encode())
        left = self.producer.flush(30)
        if left:
            log.warning("%d aggregate messages not yet delivered", left)


# --------------------------------------------------------------------- Spark

def build_stream(spark, args):
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    schema = T.StructType([
        T.StructField("election_id", T.StringType()),
        T.StructField("candidate_id", T.StringType()),
        T.StructField("candidate_name", T.StringType()),
        T.StructField("party_affiliation", T.StringType()),
        T.StructField("photo_url", T.StringType()),
        T.StructField("gender", T.StringType()),
        T.StructField("age_band", T.StringType()),
        T.StructField("cast_at", T.LongType()),
        T.StructField("address", T.StructType([T.StructField("state", T.StringType())])),
    ])
    reader = (spark.readStream.format("kafka")
              .option("kafka.bootstrap.servers", args.bootstrap)
              .option("subscribe", args.topic)
              .option("startingOffsets", "earliest")
              .option("kafka.isolation.level", "read_committed")
              .option("failOnDataLoss", "true")
              # A task reads each partition to the batch's end offset; at the
              # log's end the broker would hold the fetch for the default
              # 500 ms. That wait, not the work, dominated a small batch.
              .option("kafka.fetch.max.wait.ms", "10"))
    for kv in args.kafka_option:
        key, _, value = kv.partition("=")
        reader = reader.option(key, value)
    if args.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", args.max_offsets_per_trigger)
    raw = reader.load()
    v = F.from_json(F.col("value").cast("string"), schema)
    return raw.select(
        F.col("partition"), F.col("offset"),
        v["election_id"].alias("election_id"),
        v["candidate_id"].alias("candidate_id"),
        v["candidate_name"].alias("candidate_name"),
        v["party_affiliation"].alias("party_affiliation"),
        v["photo_url"].alias("photo_url"),
        v["address"]["state"].alias("state"),
        v["age_band"].alias("age_band"),
        v["gender"].alias("gender"),
        v["cast_at"].alias("cast_at"),
    )


def group_batch(df, offsets=None):
    """One Spark job per batch: the batch's rows grouped by every key the
    tallies need, plus the Kafka partition (for its offset range).

    With `offsets` ({partition: next offset}), rows below them are dropped
    first. That filter is the slow path (its literals change every batch,
    so Spark generates and compiles new code each time); Engine uses it only
    when a batch starts below the committed offsets (a lost checkpoint)."""
    from pyspark.sql import functions as F

    if offsets:
        keep = ~F.col("partition").isin(list(offsets))
        for p, nxt in offsets.items():
            keep = keep | ((F.col("partition") == p) & (F.col("offset") >= nxt))
        df = df.where(keep)
    minute = (F.floor(F.col("cast_at") / MINUTE_MS) * MINUTE_MS).cast("long")
    # coalesce(1): one task reads every Kafka partition and aggregates in
    # place, with no shuffle stage; a batch is small at the trigger interval,
    # and task scheduling, not the aggregation, is what costs here.
    return (df.coalesce(1).withColumn("minute", minute)
            .groupBy("partition", "election_id", "candidate_id", "state", "age_band", "gender", "minute")
            .agg(F.count(F.lit(1)).alias("n"), F.max("cast_at").alias("max_cast"),
                 F.min("offset").alias("min_offset"), F.max("offset").alias("max_offset"),
                 F.first("candidate_name", ignorenulls=True).alias("candidate_name"),
                 F.first("party_affiliation", ignorenulls=True).alias("party_affiliation"),
                 F.first("photo_url", ignorenulls=True).alias("photo_url"))
            .collect())


def replays(rows, offsets):
    """True when some row lies below the committed offsets."""
    return any(r["min_offset"] is not None and r["min_offset"] < offsets.get(r["partition"], -1)
               for r in rows)


class Engine:
    def __init__(self, args):
        self.args = args
        self.store = Store(args)
        self.publisher = None if args.no_publish else Publisher(args)
        self.query_id = None
        self.ready = threading.Event()

    def publish_all(self):
        if self.publisher is None:
            return
        self.publisher.publish(self.store.candidate_totals(), self.store.state_totals())

    def on_batch(self, df, batch_id):
        self.ready.wait(120)
        qid = self.query_id
        for attempt in range(3):
            try:
                return self._batch(df, batch_id, qid)
            except psycopg.OperationalError as exc:
                if attempt == 2:
                    raise
                log.warning("PostgreSQL: %s; reconnecting", exc)
                time.sleep(1 + attempt)
                self.store.reconnect()

    def _batch(self, df, batch_id, qid):
        started = time.monotonic()
        last, offsets = self.store.committed(qid)
        if last is not None and last >= batch_id:
            log.info("batch %d already committed; skipped", batch_id)
            return
        prior = self.store.prior_max()
        t0 = time.monotonic()
        rows = group_batch(df)
        if replays(rows, offsets):
            log.warning("batch %d starts below the committed Kafka offsets (a new checkpoint?): "
                        "counting only the rows past them", batch_id)
            rows = group_batch(df, offsets)
        t1 = time.monotonic()
        d = fold(rows, prior, self.args.allowance_ms)
        if not d.offsets:
            # Nothing new (an empty batch or one fully replayed): still record the batch id.
            self.store.commit(qid, batch_id, d, offsets)
            return
        if not self.store.commit(qid, batch_id, d, offsets):
            log.warning("batch %d: committed meanwhile by another run; skipped", batch_id)
            return
        if d.invalid:
            log.warning("batch %d: %d messages without the fields a tally needs", batch_id, d.invalid)
        log.info("batch %d: %d votes (%d late) committed in %.0f ms (Spark job %.0f ms)", batch_id,
                 d.votes, sum(d.late.values()), (time.monotonic() - started) * 1000, (t1 - t0) * 1000)
        if self.publisher is not None and d.candidate:
            try:
                self.publisher.publish(
                    self.store.candidate_totals(list(d.candidate)),
                    self.store.state_totals(sorted({(e, s) for e, s, _ in d.state})))
            except Exception as exc:  # noqa: BLE001 - the results are committed; the next batch republishes
                log.warning("publishing batch %d's totals failed: %s", batch_id, exc)


def wait_for_topic(args):
    """Waits until the votes topic exists (Spark's Kafka source fails on a
    missing one; the processor or an admin creates it)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    said = 0.0
    while True:
        try:
            if args.topic in admin.list_topics(timeout=10).topics:
                return
            what = f"topic {args.topic} does not exist yet"
        except Exception as exc:  # noqa: BLE001 - Kafka not up yet: keep waiting
            what = f"Kafka at {args.bootstrap}: {exc}"
        if time.monotonic() - said > 30:
            log.info("waiting: %s", what)
            said = time.monotonic()
        time.sleep(1)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=env("VOTESTREAM_SPARK_LOG", "INFO"), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    prepare_store(args)

    from pyspark.sql import SparkSession

    builder = (SparkSession.builder.appName(f"votestream-{args.engine}")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.sql.adaptive.enabled", "false")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.streaming.minBatchesToRetain", "20"))
    if args.master:
        builder = builder.master(args.master)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(env("VOTESTREAM_SPARK_JVM_LOG", "WARN"))

    wait_for_topic(args)
    engine = Engine(args)
    engine.publish_all()
    stream = build_stream(spark, args)
    query = (stream.writeStream
             .queryName(f"votestream_{args.engine}")
             .option("checkpointLocation", args.checkpoint)
             .trigger(processingTime=f"{args.trigger_ms} milliseconds")
             .foreachBatch(engine.on_batch)
             .start())
    engine.query_id = str(query.id)
    engine.ready.set()
    log.info("streaming %s from %s into %s as engine %r (query %s, checkpoint %s, allowance %d ms, "
             "trigger %d ms)", args.topic, args.bootstrap, args.store.split("@")[-1], args.engine,
             query.id, args.checkpoint, args.allowance_ms, args.trigger_ms)
    def stop_on_sigterm(signum, frame):  # noqa: ARG001
        # Once: a second SIGTERM (a whole process group signalled, and
        # votestream passing its own on) must not cut the stop short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    # SIGTERM (votestream aggregate --engine spark forwards its own, as do
    # `scripts/spark.sh stop` and container runtimes) stops the query as
    # Ctrl-C does; whatever batch is cut short is replayed at the next start.
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        query.awaitTermination()
    except KeyboardInterrupt:
        # A stop asked for is a clean exit, even when it cuts a batch short
        # (the batch is not committed, and is replayed at the next start):
        # stopping the query then reports that batch's interruption.
        log.info("stopping")
        try:
            query.stop()
        except Exception as exc:  # noqa: BLE001
            log.info("the query stopped in the middle of a batch: %s", str(exc).splitlines()[0][:200])
    finally:
        try:
            spark.stop()
        except Exception as exc:  # noqa: BLE001
            log.warning("stopping Spark: %s", str(exc).splitlines()[0][:200])


if __name__ == "__main__":
    main()
