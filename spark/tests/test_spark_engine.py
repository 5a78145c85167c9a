"""The Spark engine against real Kafka, real PostgreSQL and real Spark:
its tallies equal a reference of the built-in engine's semantics once the
stream drains, also after SIGKILL and restarts mid-stream, and after the
checkpoint is lost."""

import json
import os
import shutil
import sys
import time

import psycopg
import pytest
from confluent_kafka import Producer

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import votegen  # noqa: E402
import votestream_spark  # noqa: E402
from conftest import read_compacted  # noqa: E402

DRAIN_TIMEOUT = 180
ENGINE = "spark"


# ----------------------------------------------------------------- helpers

def produce_transactional(bootstrap, topic, votes, txn_size=2000, aborted=None, junk=()):
    """Produces votes keyed by voter_id in committed transactions; `aborted`
    votes go in a transaction that is aborted (read_committed must not see
    them) and `junk` raw values are committed too."""
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"test-{topic}-{time.time_ns()}",
                  "linger.ms": 5})
    p.init_transactions(30)
    if aborted:
        p.begin_transaction()
        for v in aborted:
            p.produce(topic, key=v["voter_id"].encode(), value=json.dumps(v).encode())
        p.flush(30)
        p.abort_transaction(30)
    for i in range(0, len(votes), txn_size):
        p.begin_transaction()
        for v in votes[i:i + txn_size]:
            p.produce(topic, key=v["voter_id"].encode(), value=json.dumps(v).encode())
        if i == 0:
            for raw in junk:
                p.produce(topic, key=b"junk", value=raw)
        p.commit_transaction(30)


def counted(url):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT COALESCE(SUM(votes), 0)::bigint FROM results_candidate WHERE engine = %s",
                            (ENGINE,)).fetchone()[0]


def wait_counted(url, job, expected, timeout=DRAIN_TIMEOUT):
    """Waits until the engine has counted `expected` votes, then checks it stays there."""
    deadline = time.time() + timeout
    n = -1
    while time.time() < deadline:
        n = counted(url)
        if n >= expected:
            break
        if job is not None and not job.alive():
            pytest.fail(f"the Spark job died (counted {n} of {expected}):\n{job.log_tail()}")
        time.sleep(0.5)
    else:
        pytest.fail(f"counted {n} of {expected} after {timeout} s:\n"
                    f"{job.log_tail() if job is not None else ''}")
    time.sleep(2)
    assert counted(url) == expected, "the engine counted more votes than were produced"


def wait_until(cond, what, job, timeout=DRAIN_TIMEOUT):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        if not job.alive():
            pytest.fail(f"the Spark job died waiting for {what}:\n{job.log_tail()}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}:\n{job.log_tail()}")


def tables(url):
    with psycopg.connect(url) as conn:
        q = lambda sql: conn.execute(sql, (ENGINE,)).fetchall()  # noqa: E731
        return {
            "results_candidate": {(e, c): n for e, c, n in q(
                "SELECT election_id, candidate_id, votes FROM results_candidate WHERE engine = %s")},
            "results_state": {(e, s, c): n for e, s, c, n in q(
                "SELECT election_id, state, candidate_id, votes FROM results_state WHERE engine = %s")},
            "results_demographic": {(e, b, g, c): n for e, b, g, c, n in q(
                "SELECT election_id, age_band, gender, candidate_id, votes FROM results_demographic "
                "WHERE engine = %s")},
            "results_minute": {(e, m, c): n for e, m, c, n in q(
                "SELECT election_id, minute, candidate_id, votes FROM results_minute WHERE engine = %s")},
            "results_election": {(e,): (late, mx) for e, late, mx in q(
                "SELECT election_id, late_votes, max_cast_at FROM results_election WHERE engine = %s")},
        }


def assert_tallies(url, ref):
    got, want = tables(url), ref.tables()
    for table in want:
        assert got[table] == want[table], f"{table} differs from the reference"
    # Sanity of the stream itself: it had late votes and several minute windows.
    assert sum(late for late, _ in want["results_election"].values()) > 0
    assert len({m for _, m, _ in want["results_minute"]}) >= 3


def assert_published(bootstrap, topics, url):
    """The compacted topics hold the latest totals, with the built-in
    engine's keys: "election_id:candidate_id" and "election_id:state"."""
    with psycopg.connect(url) as conn:
        cand = conn.execute("SELECT election_id, candidate_id, votes FROM results_candidate WHERE engine = %s",
                            (ENGINE,)).fetchall()
        states = conn.execute("SELECT election_id, state, SUM(votes)::bigint FROM results_state "
                              "WHERE engine = %s GROUP BY 1, 2", (ENGINE,)).fetchall()
    want_cand = {f"{e}:{c}": n for e, c, n in cand}
    want_state = {f"{e}:{s}": n for e, s, n in states}
    deadline = time.time() + 30
    while True:
        by_cand = read_compacted(bootstrap, topics["candidate"])
        by_state = read_compacted(bootstrap, topics["turnout"])
        ok = {k: v.get("total_votes") for k, v in by_cand.items()} == want_cand and \
            {k: v.get("count") for k, v in by_state.items()} == want_state
        if ok or time.time() > deadline:
            break
        time.sleep(1)
    assert ok, f"aggregate topics do not hold the latest totals: {by_cand} {by_state}"
    for key, value in by_cand.items():
        assert key == f"{value['election_id']}:{value['candidate_id']}"
    for key, value in by_state.items():
        assert key == f"{value['election_id']}:{value['state']}"
    some = next(iter(by_cand.values()))
    assert set(some) == {"candidate_id", "candidate_name", "party_affiliation", "photo_url", "total_votes",
                         "election_id"}
    assert some["candidate_name"].startswith("Candidate ")
    assert set(next(iter(by_state.values()))) == {"state", "count", "election_id"}


def job_args(bootstrap, url, topics, checkpoint, *extra):
    # The bus URL as votestream's CLI takes it: the prefix names every topic.
    return ["--bus", f"kafka://{bootstrap}?partitions=2&prefix={topics['prefix']}", "--store", url,
            "--checkpoint", checkpoint, "--engine", ENGINE, "--trigger-ms", "300", *extra]


# ------------------------------------------------------------------- tests

def test_micro_batch_lateness_uses_the_max_committed_before_the_batch():
    """Pure fold: no Spark. A batch is judged against the max cast time
    committed before it; the batch's own max only applies to later batches."""
    row = dict(partition=0, min_offset=0, max_offset=9, election_id="e", candidate_id="c", state="S",
               age_band="18-24", gender="male", candidate_name="C", party_affiliation="P", photo_url="u")
    m = votegen.T0
    rows = [dict(row, minute=m, n=3, max_cast=m + 5),
            dict(row, minute=m + 10 * 60_000, n=2, max_cast=m + 10 * 60_000 + 1, max_offset=12)]
    d = votestream_spark.fold(rows, {}, 60_000)         # first batch: max unknown, nothing late
    assert d.minute == {("e", m, "c"): 3, ("e", m + 600_000, "c"): 2} and not d.late
    assert d.max_cast == {"e": m + 600_001} and d.offsets == {0: 13}
    d = votestream_spark.fold(rows, {"e": m + 600_001}, 60_000)
    assert d.late == {"e": 3} and d.minute == {("e", m + 600_000, "c"): 2}
    assert d.candidate == {("e", "c"): 5}                # totals never drop a late vote
    d = votestream_spark.fold(rows, {"e": m + 600_001}, 10 * 60_000)  # a larger allowance
    assert not d.late
    bad = dict(row, election_id=None, minute=None, n=4, max_cast=None, max_offset=20)
    d = votestream_spark.fold([bad], {}, 60_000)
    assert d.invalid == 4 and not d.candidate and d.offsets == {0: 21}


def test_bus_url_is_parsed_as_the_rust_cli_parses_it():
    """Pure parsing: no Spark."""
    b = votestream_spark.parse_bus("kafka://a:1,b:2/?partitions=3&replication=1&prefix=t1.")
    assert (b.bootstrap, b.partitions, b.replication, b.prefix) == ("a:1,b:2", 3, 1, "t1.")
    assert b.topic("votes_topic") == "t1.votes_topic"
    b = votestream_spark.parse_bus("127.0.0.1:19092")
    assert (b.bootstrap, b.partitions, b.replication, b.prefix) == ("127.0.0.1:19092", 6, None, "")
    for bad in ("kafka://", "kafka://a", "kafka://a:1?partitions=0", "kafka://a:1?partitions=x",
                "kafka://a:1?prefix=a/b", "kafka://a:1?colour=red"):
        with pytest.raises(ValueError):
            votestream_spark.parse_bus(bad)
    args = votestream_spark.parse_args(["--bus", "kafka://h:9?prefix=p-", "--store", "postgres://x/y"])
    assert (args.topic, args.candidate_topic, args.turnout_topic, args.bootstrap) == \
        ("p-votes_topic", "p-aggregated_votes_per_candidate", "p-aggregated_turnout_by_location", "h:9")


def test_tallies_equal_the_reference(bootstrap, database, topics, spark_job, tmp_path):
    """20k votes in three phases (late votes in the last two), transactional,
    with an aborted transaction and malformed messages that must not count."""
    rng = votegen.rng_for(6)
    ref = votegen.Reference()
    phases = [votegen.phase(rng, 0, 8000, 0),
              votegen.phase(rng, 1, 5500, 500, start_seq=10_000),
              votegen.phase(rng, 2, 5500, 500, start_seq=20_000)]
    assert sum(map(len, phases)) == 20_000
    aborted = votegen.phase(rng, 1, 300, 0, start_seq=90_000)

    # Phase 0 waits in Kafka before the job starts: the job reads from the earliest offset.
    produce_transactional(bootstrap, topics["votes"], phases[0],
                          junk=[b"not json", b'{"election_id": "e1"}', b"{}"])
    job = spark_job(job_args(bootstrap, database, topics, str(tmp_path / "ckpt")))
    total = 0
    for i, votes in enumerate(phases):
        if i > 0:
            produce_transactional(bootstrap, topics["votes"], votes, aborted=aborted if i == 1 else None)
        for v in votes:
            ref.apply(v)
        total += len(votes)
        wait_counted(database, job, total)
    assert_tallies(database, ref)
    assert_published(bootstrap, topics, database)
    with psycopg.connect(database) as conn:
        (batches,) = conn.execute("SELECT count(*) FROM spark_progress WHERE engine = %s", (ENGINE,)).fetchone()
    assert batches == 1


def test_sigkill_and_restart_mid_stream_stay_exact(bootstrap, database, topics, spark_job, tmp_path):
    """SIGKILL of the job (its whole process group) while it works through a
    backlog and again while new votes arrive; each restart resumes from the
    same checkpoint. Then a restart with a NEW checkpoint (a lost one) reads
    the topic from the start again and must still count nothing twice."""
    allowance = 120_000
    rng = votegen.rng_for(7)
    ref = votegen.Reference(allowance)
    phases = [votegen.phase(rng, 0, 10_000, 0, allowance=allowance),
              votegen.phase(rng, 1, 5000, 600, start_seq=20_000, allowance=allowance),
              votegen.phase(rng, 2, 4000, 400, start_seq=40_000, allowance=allowance)]
    ckpt = str(tmp_path / "ckpt")
    args = job_args(bootstrap, database, topics, ckpt, "--allowance-ms", str(allowance),
                    "--max-offsets-per-trigger", "800")

    produce_transactional(bootstrap, topics["votes"], phases[0], txn_size=500)
    for v in phases[0]:
        ref.apply(v)
    job = spark_job(args)
    # Kill 1: in the middle of the backlog.
    wait_until(lambda: counted(database) >= 2000, "the first 2,000 votes", job)
    job.kill()
    assert counted(database) < len(phases[0]), "the backlog drained before the kill; make it larger"
    job = spark_job(args)
    wait_counted(database, job, len(phases[0]))

    # Kill 2: while the next phase is being counted.
    before = counted(database)
    produce_transactional(bootstrap, topics["votes"], phases[1], txn_size=500)
    for v in phases[1]:
        ref.apply(v)
    wait_until(lambda: counted(database) > before, "the next phase to start counting", job)
    job.kill()
    job = spark_job(args)
    total = len(phases[0]) + len(phases[1])
    wait_counted(database, job, total)

    produce_transactional(bootstrap, topics["votes"], phases[2], txn_size=500)
    for v in phases[2]:
        ref.apply(v)
    total += len(phases[2])
    wait_counted(database, job, total)
    assert_tallies(database, ref)
    job.stop()

    # A lost checkpoint: the new query starts at the earliest offsets again.
    shutil.rmtree(ckpt)
    new_ckpt = str(tmp_path / "ckpt-new")
    with psycopg.connect(database, autocommit=True) as conn:
        queries = lambda: conn.execute(  # noqa: E731
            "SELECT count(*) FROM spark_progress WHERE engine = %s", (ENGINE,)).fetchone()[0]
        assert queries() == 1
        job = spark_job(job_args(bootstrap, database, topics, new_ckpt, "--allowance-ms", str(allowance)))
        wait_until(lambda: queries() == 2, "the new query's first batch", job)
    time.sleep(2)
    assert counted(database) == total
    assert_tallies(database, ref)
    assert_published(bootstrap, topics, database)
