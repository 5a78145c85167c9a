"""The lateness rule at its exact boundary, from the cases the built-in
engine's test reads too (tests/data/lateness_boundaries.json): the Spark
job's fold and the Python reference of the built-in engine must agree with
it to the millisecond. Pure Python: no Spark, Kafka or PostgreSQL."""

import json
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import votegen  # noqa: E402
import votestream_spark  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
with open(os.path.join(ROOT, "tests", "data", "lateness_boundaries.json")) as f:
    CASES = json.load(f)
ALLOWANCE = CASES["allowance_ms"]
WINDOW = CASES["window"]
MINUTE = votegen.MINUTE_MS


def test_the_cases_sit_on_the_boundary():
    closes = WINDOW + MINUTE + ALLOWANCE
    assert [c["watermark"] for c in CASES["cases"]] == [closes - 1, closes, closes + 1]
    assert [c["in_window"] for c in CASES["cases"]] == [True, False, False]


def test_fold_judges_the_boundary_as_the_built_in_engine():
    row = dict(partition=0, min_offset=0, max_offset=0, election_id="e", candidate_id="c", state="S",
               age_band="18-24", gender="male", candidate_name="C", party_affiliation="P", photo_url="u",
               minute=WINDOW, n=1, max_cast=WINDOW + MINUTE - 1)
    for case in CASES["cases"]:
        d = votestream_spark.fold([row], {"e": case["watermark"]}, ALLOWANCE)
        assert d.candidate == {("e", "c"): 1}, case["what"]
        if case["in_window"]:
            assert d.minute == {("e", WINDOW, "c"): 1} and not d.late, case["what"]
        else:
            assert d.late == {"e": 1} and not d.minute, case["what"]


def test_reference_judges_the_boundary_as_the_built_in_engine():
    rng = votegen.rng_for(17)
    for case in CASES["cases"]:
        ref = votegen.Reference(ALLOWANCE)
        # As tests/boundaries.rs: a vote of the window, one that moves the
        # watermark, another vote of the window.
        for seq, cast_at in enumerate([WINDOW, case["watermark"], WINDOW + MINUTE - 1]):
            v = votegen.vote(rng, seq, "e", cast_at)
            v["candidate_id"] = "c"
            ref.apply(v)
        in_window = ref.minute.get(("e", WINDOW, "c"), 0)
        assert ref.candidate[("e", "c")] == 3, case["what"]
        if case["in_window"]:
            assert (in_window, ref.late.get("e", 0)) == (2, 0), case["what"]
        else:
            assert (in_window, ref.late.get("e", 0)) == (1, 1), case["what"]
