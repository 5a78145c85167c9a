-- votestream's PostgreSQL schema: the original's tables and column names
-- (candidates, voters, votes) plus what it lacked, mirroring
-- sqlite_schema.sql. Idempotent: run at every open, under an advisory lock so
-- two processes opening a fresh database at once do not race.
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS elections (
    election_no BIGSERIAL PRIMARY KEY,
    election_id TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    opens_at    BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS candidates (
    candidate_id      TEXT NOT NULL,
    election_id       TEXT NOT NULL REFERENCES elections(election_id),
    candidate_name    TEXT NOT NULL,
    party_affiliation TEXT NOT NULL,
    biography         TEXT NOT NULL,
    campaign_platform TEXT NOT NULL,
    photo_url         TEXT NOT NULL,
    PRIMARY KEY (election_id, candidate_id)
);

-- Voters are shared by every election; voter_no is registration order.
CREATE TABLE IF NOT EXISTS voters (
    voter_no            BIGSERIAL PRIMARY KEY,
    voter_id            TEXT NOT NULL UNIQUE,
    voter_name          TEXT NOT NULL,
    date_of_birth       TEXT NOT NULL,
    gender              TEXT NOT NULL,
    nationality         TEXT NOT NULL,
    registration_number TEXT NOT NULL,
    address_street      TEXT NOT NULL,
    address_city        TEXT NOT NULL,
    address_state       TEXT NOT NULL,
    address_country     TEXT NOT NULL,
    address_postcode    TEXT NOT NULL,
    email               TEXT NOT NULL,
    phone_number        TEXT NOT NULL,
    cell_number         TEXT NOT NULL,
    picture             TEXT NOT NULL,
    registered_age      INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS registry_stats (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    voters BIGINT NOT NULL
);
INSERT INTO registry_stats (id, voters) VALUES (1, 0) ON CONFLICT DO NOTHING;

-- The ground truth. seq is the votes log position aggregators resume from.
-- No sequence: record() assigns max(seq) + 1.. while holding an advisory
-- lock, so seq grows in commit order and without gaps (see postgres.rs).
CREATE TABLE IF NOT EXISTS votes (
    seq          BIGINT PRIMARY KEY,
    election_id  TEXT NOT NULL,
    voter_id     TEXT NOT NULL,
    candidate_id TEXT NOT NULL,
    voting_time  TEXT NOT NULL,
    vote         INTEGER NOT NULL DEFAULT 1,
    ballot_id    TEXT NOT NULL,
    cast_at      BIGINT NOT NULL,
    election_no  BIGINT NOT NULL,
    voter_no     BIGINT NOT NULL,
    UNIQUE (election_no, voter_no)
);

CREATE TABLE IF NOT EXISTS rejected_ballots (
    id          BIGSERIAL PRIMARY KEY,
    ballot_id   TEXT NOT NULL UNIQUE,
    election_id TEXT,
    voter_id    TEXT,
    reason      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    raw         TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
-- Who sent each ballot (model.rs `Vote::client`); NULL when unknown and
-- for what was recorded before clients were kept.
ALTER TABLE votes ADD COLUMN IF NOT EXISTS client TEXT;
ALTER TABLE rejected_ballots ADD COLUMN IF NOT EXISTS client TEXT;

-- received = accepted + rejected, per election, kept in the processor's transaction.
CREATE TABLE IF NOT EXISTS ballot_counts (
    election_id TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    n           BIGINT NOT NULL,
    PRIMARY KEY (election_id, outcome)
);

CREATE TABLE IF NOT EXISTS results_candidate (
    engine TEXT NOT NULL, election_id TEXT NOT NULL, candidate_id TEXT NOT NULL,
    votes BIGINT NOT NULL,
    PRIMARY KEY (engine, election_id, candidate_id)
);
CREATE TABLE IF NOT EXISTS results_state (
    engine TEXT NOT NULL, election_id TEXT NOT NULL, state TEXT NOT NULL, candidate_id TEXT NOT NULL,
    votes BIGINT NOT NULL,
    PRIMARY KEY (engine, election_id, state, candidate_id)
);
CREATE TABLE IF NOT EXISTS results_demographic (
    engine TEXT NOT NULL, election_id TEXT NOT NULL, age_band TEXT NOT NULL, gender TEXT NOT NULL,
    candidate_id TEXT NOT NULL, votes BIGINT NOT NULL,
    PRIMARY KEY (engine, election_id, age_band, gender, candidate_id)
);
CREATE TABLE IF NOT EXISTS results_minute (
    engine TEXT NOT NULL, election_id TEXT NOT NULL, minute BIGINT NOT NULL, candidate_id TEXT NOT NULL,
    votes BIGINT NOT NULL,
    PRIMARY KEY (engine, election_id, minute, candidate_id)
);
CREATE TABLE IF NOT EXISTS results_election (
    engine TEXT NOT NULL, election_id TEXT NOT NULL,
    late_votes BIGINT NOT NULL DEFAULT 0, max_cast_at BIGINT,
    PRIMARY KEY (engine, election_id)
);
-- The seq each engine's results are exact up to, written with the results.
CREATE TABLE IF NOT EXISTS agg_progress (
    engine   TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);

-- Version 2: the bus message each vote and rejection came from (Kafka
-- partition and offset of `ballots`), so a replay of the very same message
-- is told from a duplicate ballot; and the offsets of engines fed by Kafka,
-- written with their results.
ALTER TABLE votes ADD COLUMN IF NOT EXISTS src_partition INTEGER;
ALTER TABLE votes ADD COLUMN IF NOT EXISTS src_offset BIGINT;
ALTER TABLE rejected_ballots ADD COLUMN IF NOT EXISTS src_partition INTEGER;
ALTER TABLE rejected_ballots ADD COLUMN IF NOT EXISTS src_offset BIGINT;
CREATE TABLE IF NOT EXISTS agg_offsets (
    engine      TEXT NOT NULL,
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (engine, topic, partition)
);

INSERT INTO schema_version (version) VALUES (1) ON CONFLICT DO NOTHING;
INSERT INTO schema_version (version) VALUES (2) ON CONFLICT DO NOTHING;

-- Version 3: one ballot id, one ballot. Every id recorded (as a vote or a
-- rejection) with a fingerprint of the content it named (store/ids.rs);
-- NULL for a rejection recorded before fingerprints were kept whose content
-- is unknown. Filled from what is already recorded when version 3 is
-- applied (store/postgres/ids.rs), which also inserts the version row.
CREATE TABLE IF NOT EXISTS ballot_ids (
    ballot_id   TEXT PRIMARY KEY,
    fingerprint BIGINT
);

-- Version 4: the race desk. A state's count is sealed once its polls closed
-- and the lateness allowance passed: from then on the store refuses any new
-- vote there (`polls_closed`), so `final_votes`, counted in the sealing
-- transaction, is the number of votes that will ever count in that state.
ALTER TABLE elections ADD COLUMN IF NOT EXISTS polls_first_close BIGINT;
ALTER TABLE elections ADD COLUMN IF NOT EXISTS polls_step_ms BIGINT;
CREATE TABLE IF NOT EXISTS poll_seals (
    election_no BIGINT NOT NULL,
    state       TEXT NOT NULL,
    sealed_at   BIGINT NOT NULL,
    final_votes BIGINT NOT NULL,
    PRIMARY KEY (election_no, state)
);
-- The desk's calls and projections, each recorded once, numbered densely
-- per election (the body is the event's JSON, with the position it was made at).
CREATE TABLE IF NOT EXISTS desk_events (
    election_id TEXT NOT NULL,
    event_no    BIGINT NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (election_id, event_no)
);
-- The alerts stage (alerts/stage.rs): each alert opened or resolved, numbered
-- densely per election, and where the stage stands in the ledger with its
-- detectors' state, written in the same transaction as the events.
CREATE TABLE IF NOT EXISTS alert_events (
    election_id TEXT NOT NULL,
    event_no    BIGINT NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (election_id, event_no)
);
CREATE TABLE IF NOT EXISTS alert_state (
    election_id      TEXT PRIMARY KEY,
    votes_after      BIGINT NOT NULL,
    rejections_after BIGINT NOT NULL,
    state            TEXT NOT NULL
);
INSERT INTO schema_version (version) VALUES (4) ON CONFLICT DO NOTHING;
-- Results as of a moment of the night (store/checkpoint.rs): one election's
-- counters exact to a votes ledger position, a multiple of 5,000, with the
-- latest cast time counted by then. Made lazily by the queries that walk the
-- ledger; never stale, since the ledger only grows in seq order.
CREATE TABLE IF NOT EXISTS tally_checkpoints (
    election_id TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    max_cast_at BIGINT,
    body        TEXT NOT NULL,
    PRIMARY KEY (election_id, seq)
);
-- Rejections as of a time, counted by reason from the index alone.
CREATE INDEX IF NOT EXISTS rejected_ballots_by_time ON rejected_ballots (election_id, received_at, reason);
INSERT INTO schema_version (version) VALUES (5) ON CONFLICT DO NOTHING;
-- What the race desk was shown: each look that sealed a state or made
-- events, with its clock, the votes counted in the results it read and the
-- election's votes recorded by then, so a replay can show its own desk the
-- same moments of the night (replay/desk.rs).
CREATE TABLE IF NOT EXISTS desk_looks (
    election_id TEXT NOT NULL,
    look_no     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    counted     BIGINT NOT NULL,
    accepted    BIGINT NOT NULL,
    seals       BIGINT NOT NULL,
    first_event BIGINT NOT NULL,
    events      BIGINT NOT NULL,
    PRIMARY KEY (election_id, look_no)
);
-- What the dashboard and the read API published (crate::shown): an
-- election's figures as shown, when, and the votes ledger position they are
-- exact to when known. Keyed by a digest of the figures: several servers
-- publishing the same results keep one row.
CREATE TABLE IF NOT EXISTS shown_results (
    election_id TEXT NOT NULL,
    digest      BIGINT NOT NULL,
    shown_at    BIGINT NOT NULL,
    seq         BIGINT,
    counted     BIGINT NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (election_id, digest)
);
CREATE INDEX IF NOT EXISTS shown_results_by_time ON shown_results (election_id, shown_at);
