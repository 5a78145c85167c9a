"""Synthetic votes_topic messages (the shape votestream's processor
publishes) and a reference of the built-in engine's tallies, for the Spark
engine's tests and freshness measurement. Deterministic for a seed."""

import random
from collections import defaultdict

MINUTE_MS = 60_000
# 2026-01-01T00:00:00Z, on a minute boundary.
T0 = 1_767_225_600_000
STATES = ["California", "Texas", "Florida", "New York", "Pennsylvania", "Illinois", "Ohio",
          "Georgia", "North Carolina", "Michigan", "Wyoming", "Vermont"]
AGE_BANDS = ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
GENDERS = ["female", "male", "other"]
PARTIES = ["Management Party", "Savior Party", "Tech Republic Party"]


def candidate(election, i):
    # The same candidate ids in every election: the tallies must keep them apart.
    return {"candidate_id": f"cand-{i}", "candidate_name": f"Candidate {i} of {election}",
            "party_affiliation": PARTIES[i % 3], "biography": "A biography.",
            "campaign_platform": "A platform.", "photo_url": f"/avatar/cand-{i}.svg"}


def voting_time(ms):
    import datetime

    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def vote(rng, seq, election, cast_at, n_candidates=3):
    voter = f"voter-{election}-{seq:08d}"
    c = candidate(election, rng.randrange(n_candidates))
    state = rng.choice(STATES)
    age = rng.randrange(18, 90)
    band = next(b for b, lo in zip(AGE_BANDS[::-1], [65, 55, 45, 35, 25, 18]) if age >= lo)
    return {
        "voter_id": voter, "voter_name": f"Voter {seq}", "date_of_birth": f"{2025 - age}-06-15",
        "gender": rng.choice(GENDERS), "nationality": "US", "registration_number": f"R{seq:09d}",
        "address": {"street": f"{seq} Main St", "city": "Springfield", "state": state,
                    "country": "United States", "postcode": f"{10000 + seq % 89999}"},
        "email": f"{voter}@example.org", "phone_number": "555-0100", "cell_number": "555-0101",
        "picture": f"/avatar/{voter}.svg", "registered_age": age,
        **c,
        "voting_time": voting_time(cast_at), "vote": 1,
        "election_id": election, "ballot_id": f"ballot-{election}-{seq:08d}", "seq": seq,
        "cast_at": cast_at, "age_band": band,
    }


def phase(rng, k, on_time, late, elections=("e1", "e2"), start_seq=0, allowance=MINUTE_MS):
    """Phase k of a stream whose lateness does not depend on how it is cut
    into micro-batches, provided phase k is produced only after phase k-1 is
    counted: on-time votes are cast in minute T0 + k min (never late against
    any max cast time of phases <= k), late ones at least a minute past the
    allowance before T0 + (k-1) min (late against the max of phase k-1)."""
    out, seq = [], start_seq
    lo = T0 + k * MINUTE_MS
    for _ in range(on_time):
        e = elections[seq % len(elections)]
        out.append(vote(rng, seq, e, lo + rng.randrange(MINUTE_MS)))
        seq += 1
    if k > 0:
        late_minute = T0 + (k - 1) * MINUTE_MS - allowance - MINUTE_MS
        for _ in range(late):
            e = elections[seq % len(elections)]
            back = rng.randrange(3) * MINUTE_MS
            out.append(vote(rng, seq, e, late_minute - back + rng.randrange(MINUTE_MS)))
            seq += 1
    rng.shuffle(out)
    return out


class Reference:
    """The built-in engine's semantics (src/aggregate/mod.rs Tallies::apply), vote by vote."""

    def __init__(self, allowance=MINUTE_MS):
        self.allowance = allowance
        self.candidate = defaultdict(int)
        self.state = defaultdict(int)
        self.demographic = defaultdict(int)
        self.minute = defaultdict(int)
        self.late = defaultdict(int)
        self.max_cast = {}

    def apply(self, v):
        e, c = v["election_id"], v["candidate_id"]
        self.candidate[(e, c)] += 1
        self.state[(e, v["address"]["state"], c)] += 1
        self.demographic[(e, v["age_band"], v["gender"], c)] += 1
        minute = v["cast_at"] // MINUTE_MS * MINUTE_MS
        m = self.max_cast.get(e)
        if m is None or minute + MINUTE_MS > m - self.allowance:
            self.minute[(e, minute, c)] += 1
        else:
            self.late[e] += 1
        if m is None or v["cast_at"] > m:
            self.max_cast[e] = v["cast_at"]

    def tables(self):
        """The results tables' rows as the engine should have them."""
        elections = set(self.max_cast)
        return {
            "results_candidate": {k: n for k, n in self.candidate.items()},
            "results_state": dict(self.state),
            "results_demographic": dict(self.demographic),
            "results_minute": dict(self.minute),
            "results_election": {(e,): (self.late.get(e, 0), self.max_cast[e]) for e in elections},
        }


def rng_for(seed):
    return random.Random(seed)
