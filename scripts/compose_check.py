"""What scripts/compose.sh test checks inside the stack (run with the Spark
image's Python, which has confluent-kafka and psycopg):

  ledger          every ballot on the `ballots` topic is recorded once: as a
                  vote or as a rejection with its reason
  engines         the Spark engine's results equal the built-in engine's
  cast N OUT      casts N ballots through the load balancer with
                  Idempotency-Keys, retrying each until it gets an answer;
                  writes {ballot_id: answer} to OUT
  answered OUT    every ballot answered in OUT is recorded once

Each prints one line of figures and exits 1 when the check fails.
"""
import json, os, sys, time, uuid, urllib.request, urllib.error

import psycopg
from confluent_kafka import Consumer, TopicPartition

STORE = os.environ["VOTESTREAM_STORE"]
BOOTSTRAP = os.environ["VOTESTREAM_BUS"].split("://", 1)[1].split("?", 1)[0]
ELECTION = "general-2026"


def db():
    return psycopg.connect(STORE, autocommit=True)


def recorded(conn):
    votes = {r[0] for r in conn.execute("SELECT ballot_id FROM votes")}
    rejected = dict(conn.execute("SELECT ballot_id, reason FROM rejected_ballots").fetchall())
    # A message refused before its ballot id could be trusted (too large, not
    # an object…) is recorded under an id derived from its bytes, which it keeps.
    for raw, reason in conn.execute(
            "SELECT raw, reason FROM rejected_ballots WHERE ballot_id LIKE 'raw-%%'"):
        try:
            rejected.setdefault(json.loads(raw)["ballot_id"], reason)
        except (ValueError, KeyError, TypeError):
            i = raw.find('"ballot_id":"')
            if i >= 0:
                rejected.setdefault(raw[i + 13:raw.find('"', i + 13)], reason)
    return votes, rejected


# The raw messages seen without a ballot id, to show when a count is off.
NO_ID = []


def topic_ballot_ids():
    """Ballot ids on the topic up to its current end (None: no id in it)."""
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"check-{uuid.uuid4()}",
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    parts = c.list_topics("ballots", timeout=30).topics["ballots"].partitions
    ends = {p: c.get_watermark_offsets(TopicPartition("ballots", p), timeout=30)[1] for p in parts}
    c.assign([TopicPartition("ballots", p, 0) for p in parts])
    ids, left = [], {p: e for p, e in ends.items() if e > 0}
    while left:
        m = c.poll(5)
        if m is None or m.error():
            continue
        p = m.partition()
        if p in left and m.offset() < left[p]:
            try:
                ids.append(json.loads(m.value()).get("ballot_id"))
            except (ValueError, AttributeError, TypeError):
                ids.append(None)
                NO_ID.append(m.value())
            if m.offset() + 1 >= left[p]:
                del left[p]
    c.close()
    return ids


def wait_recorded(expected, conn, timeout):
    """Waits until every expected id is recorded; returns (votes, rejected)."""
    deadline = time.time() + timeout
    while True:
        votes, rejected = recorded(conn)
        if all(i in votes or i in rejected for i in expected) or time.time() > deadline:
            return votes, rejected
        time.sleep(2)


def account(name, ids, conn, timeout=120, whole=False):
    named = {i for i in ids if i}
    votes, rejected = wait_recorded(named, conn, timeout)
    accepted = sum(1 for i in named if i in votes)
    refused = [rejected[i] for i in named if i in rejected]
    both = sum(1 for i in named if i in votes and i in rejected)
    missing = sorted(i for i in named if i not in votes and i not in rejected)
    reasons = {}
    for r in refused:
        reasons[r] = reasons.get(r, 0) + 1
    # A message without a ballot id is recorded under an id derived from its
    # bytes, which this side cannot wait for by name: wait for the count.
    deadline = time.time() + timeout
    while True:
        rows = conn.execute("SELECT (SELECT COUNT(*) FROM votes) + (SELECT COUNT(*) FROM rejected_ballots)").fetchone()[0]
        if not whole or rows >= len(ids) or time.time() > deadline:
            break
        time.sleep(2)
    print(f"{name}: sent {len(ids)} messages ({len(ids) - len(named)} without a ballot id), "
          f"accepted {accepted}, rejected {len(refused)} {json.dumps(reasons, sort_keys=True)}; "
          f"missing {len(missing)}, both {both}; recorded {rows} (votes + rejections, every message so far)")
    if missing:
        print(f"  missing e.g. {missing[:5]}")
    if whole and rows != len(ids):
        print(f"  records {rows} != messages {len(ids)}; messages without a ballot id, the last 3: {NO_ID[-3:]}")
    return not missing and not both and (not whole or rows == len(ids))


def engines(timeout):
    q = {"candidate": "SELECT election_id, candidate_id, votes FROM results_candidate WHERE engine = %s",
         "state": "SELECT election_id, state, candidate_id, votes FROM results_state WHERE engine = %s"}
    conn = db()
    began = time.time()
    deadline = began + timeout
    while True:
        diff = {k: set(conn.execute(s, ("builtin",)).fetchall()) ^ set(conn.execute(s, ("spark",)).fetchall())
                for k, s in q.items()}
        total = {e: conn.execute("SELECT COALESCE(SUM(votes), 0) FROM results_candidate WHERE engine = %s",
                                 (e,)).fetchone()[0] for e in ("builtin", "spark")}
        votes = conn.execute("SELECT COUNT(*) FROM votes").fetchone()[0]
        same = not any(diff.values()) and total["builtin"] == votes
        if same or time.time() > deadline:
            break
        time.sleep(3)
    print(f"engines: votes {votes}, built-in total {total['builtin']}, spark total {total['spark']}, "
          f"rows differing: candidate {len(diff['candidate'])}, state {len(diff['state'])} "
          f"(after {time.time() - began:.0f} s)")
    return same


def cast(n, out, lb, token):
    """One ballot per voter who has not voted, through the load balancer."""
    conn = db()
    voters = [r[0] for r in conn.execute(
        "SELECT voter_id FROM voters WHERE voter_id NOT IN (SELECT voter_id FROM votes) "
        "AND voter_id NOT IN (SELECT voter_id FROM rejected_ballots WHERE voter_id IS NOT NULL) "
        "ORDER BY voter_no LIMIT %s", (n,))]
    cands = [r[0] for r in conn.execute(
        "SELECT candidate_id FROM candidates WHERE election_id = %s ORDER BY 1", (ELECTION,))]
    answers, retries = {}, 0
    url = f"{lb}/api/v1/elections/{ELECTION}/ballots"
    for i, voter in enumerate(voters):
        key = str(uuid.uuid4())
        body = json.dumps({"voter_id": voter, "candidate_id": cands[i % len(cands)]}).encode()
        for attempt in range(300):  # up to a minute with no server answering
            req = urllib.request.Request(url, body, {"Authorization": f"Bearer {token}",
                                                     "Idempotency-Key": key,
                                                     "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    answers[json.loads(r.read())["ballot_id"]] = r.status
                break
            except urllib.error.HTTPError as e:
                try:
                    got = json.loads(e.read())
                except ValueError:
                    got = {}  # the load balancer's own page: no server answered
                if e.code in (429, 502, 503, 504) or got.get("error") == "idempotency_key_in_flight":
                    retries += 1; time.sleep(0.2); continue  # same key again
                answers[got.get("ballot_id", f"none-{key}")] = e.code
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                retries += 1; time.sleep(0.2)
        else:
            answers[f"unanswered-{key}"] = 0
    with open(out, "w") as f:
        json.dump(answers, f)
    codes = {}
    for c in answers.values():
        codes[c] = codes.get(c, 0) + 1
    print(f"cast: {len(voters)} ballots, answers by status {json.dumps(codes, sort_keys=True)}, "
          f"{retries} retries")
    return all(c for c in answers.values())


def answered(out):
    answers = json.load(open(out))
    conn = db()
    ok = account("http", list(answers), conn)
    votes, rejected = recorded(conn)
    wrong = [i for i, c in answers.items() if (c == 202) != (i in votes)]
    print(f"http: {len(wrong)} answers disagree with the ledger (202 but not counted, or counted but refused)")
    return ok and not wrong


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "ledger":
        ok = account(sys.argv[2] if len(sys.argv) > 2 else "ledger", topic_ballot_ids(), db(), whole=True)
    elif cmd == "engines":
        ok = engines(float(os.environ.get("CHECK_TIMEOUT", "180")))
    elif cmd == "cast":
        ok = cast(int(sys.argv[2]), sys.argv[3], os.environ.get("LB", "http://lb:8080"),
                  os.environ["VOTESTREAM_API_TOKEN"])
    elif cmd == "answered":
        ok = answered(sys.argv[2])
    sys.exit(0 if ok else 1)
