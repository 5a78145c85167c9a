"""Fixtures for the Spark engine's tests: the REAL Kafka and PostgreSQL that
scripts/kafka.sh and scripts/pg.sh start (scripts/spark.sh test starts them
and sets KAFKA_BOOTSTRAP and DATABASE_URL), and the Spark job run as a child
process. Nothing is skipped: a missing service fails the test."""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
JOB = os.path.join(ROOT, "spark", "votestream_spark.py")
SCHEMA = os.path.join(ROOT, "src", "store", "postgres_schema.sql")
SPARK_HOME = os.environ.get("VOTESTREAM_SPARK_HOME", os.path.join(ROOT, "target", "spark"))


def _require_env(name, how):
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: {how} (or run `bash scripts/spark.sh test`)", pytrace=False)
    return value


@pytest.fixture(scope="session")
def bootstrap():
    servers = _require_env("KAFKA_BOOTSTRAP", "start Kafka with scripts/kafka.sh start")
    admin = AdminClient({"bootstrap.servers": servers})
    try:
        admin.list_topics(timeout=20)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"Kafka at {servers} does not answer: {exc}", pytrace=False)
    return servers


@pytest.fixture(scope="session")
def pg_url():
    url = _require_env("DATABASE_URL", "start PostgreSQL with scripts/pg.sh start")
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"PostgreSQL at {url} does not answer: {exc}", pytrace=False)
    return url


@pytest.fixture(scope="session")
def spark_env():
    """The environment the Spark job runs in: pyspark's submit arguments with
    the connector's local jars (as scripts/spark.sh sets them)."""
    env = dict(os.environ)
    if not env.get("PYSPARK_SUBMIT_ARGS"):
        jars = sorted(glob.glob(os.path.join(SPARK_HOME, "jars", "*.jar")))
        if not any("spark-sql-kafka" in j for j in jars):
            pytest.fail(f"no Kafka connector jars in {SPARK_HOME}/jars: run scripts/spark.sh fetch",
                        pytrace=False)
        env["PYSPARK_SUBMIT_ARGS"] = (f"--master local[2] --driver-memory 1g --jars {','.join(jars)} "
                                      "pyspark-shell")
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    env["PYSPARK_PYTHON"] = sys.executable
    env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    if shutil.which("java") is None:
        pytest.fail("java is not installed: Spark needs a JVM (scripts/spark.sh fetch installs one)",
                    pytrace=False)
    try:
        import pyspark  # noqa: F401
    except ImportError:
        pytest.fail("pyspark is not installed in this Python: run scripts/spark.sh fetch", pytrace=False)
    return env


def _with_db(url, db):
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + db, parts.query, parts.fragment))


@pytest.fixture
def database(pg_url):
    """A fresh database with votestream's schema applied by psql, dropped after."""
    name = f"spark_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_db(pg_url, name)
    psql = shutil.which("psql") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))), None)
    if psql is None:
        pytest.fail("psql is not installed", pytrace=False)
    subprocess.run([psql, url, "-q", "-v", "ON_ERROR_STOP=1", "-f", SCHEMA], check=True,
                   stdout=subprocess.DEVNULL)
    yield url
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def topics(bootstrap):
    """A topic prefix of its own, as the Rust tests use (kafka://…?prefix=P):
    P + votes_topic (4 partitions, created here) and P + the two aggregate
    topics (the job creates those), all deleted after."""
    prefix = f"spark-{uuid.uuid4().hex[:10]}."
    names = {"prefix": prefix, "votes": f"{prefix}votes_topic",
             "candidate": f"{prefix}aggregated_votes_per_candidate",
             "turnout": f"{prefix}aggregated_turnout_by_location"}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(names["votes"], num_partitions=4, replication_factor=-1)],
                                   operation_timeout=30).values():
        fut.result()
    yield names
    topics = [names[k] for k in ("votes", "candidate", "turnout")]
    for fut in admin.delete_topics(topics, operation_timeout=30).values():
        try:
            fut.result()
        except Exception:  # noqa: BLE001 - an aggregate topic the job never created
            pass


class SparkJob:
    """The Spark job as a child process in its own process group (the
    Python driver and the JVM it launches), stopped or SIGKILLed by that id."""

    def __init__(self, env, args, log_path):
        self.env, self.args, self.log_path = env, args, log_path
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        log.write(f"\n==== start {time.strftime('%H:%M:%S')} {' '.join(self.args)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen([sys.executable, JOB, *self.args], env=self.env, cwd=ROOT,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL of the whole process group this test started."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self._wait_group_gone()

    def stop(self):
        if not self.alive():
            self._reap_group()
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        self._reap_group()

    def _reap_group(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=30)
        self._wait_group_gone()

    def _wait_group_gone(self):
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)

    def log_tail(self, n=60):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"


@pytest.fixture
def spark_job(spark_env, tmp_path):
    """Factory: spark_job(args) -> SparkJob (started). Every job is stopped after the test."""
    jobs = []

    def make(args):
        job = SparkJob(spark_env, args, str(tmp_path / "spark-job.log"))
        jobs.append(job)
        return job.start()

    yield make
    for job in jobs:
        job.stop()


def read_compacted(bootstrap, topic, timeout=30):
    """{key: latest value} of a topic, read to its end."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        meta = c.list_topics(topic, timeout=timeout).topics[topic]
        ends = {}
        for p in meta.partitions:
            _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            ends[p] = high
        c.assign([TopicPartition(topic, p, 0) for p in ends])
        latest, done = {}, {p for p, h in ends.items() if h == 0}
        deadline = time.time() + timeout
        while len(done) < len(ends) and time.time() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            latest[m.key().decode()] = json.loads(m.value())
            if m.offset() + 1 >= ends[m.partition()]:
                done.add(m.partition())
        return latest
    finally:
        c.close()
