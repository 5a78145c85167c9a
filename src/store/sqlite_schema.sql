-- votestream's SQLite schema. The original's tables and column names
-- (candidates, voters, votes) plus what it lacked. Idempotent: run at every open.
-- The *_no integer keys keep the votes uniqueness index small: it takes
-- random inserts, and every page a batch touches is written to the WAL.
CREATE TABLE IF NOT EXISTS elections (
    election_no INTEGER PRIMARY KEY,
    election_id TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    opens_at    INTEGER NOT NULL,
    -- The poll-closing schedule (model.rs `PollClose`), if the election has one.
    polls_first_close INTEGER,
    polls_step_ms     INTEGER
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

-- Voters are shared by every election. Generated ids sort in registration
-- order, so bulk loads append to both B-trees.
CREATE TABLE IF NOT EXISTS voters (
    voter_no            INTEGER PRIMARY KEY,
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
    voters INTEGER NOT NULL
);
INSERT OR IGNORE INTO registry_stats (id, voters) VALUES (1, 0);

-- The ground truth. seq is the votes log position aggregators resume from:
-- SQLite has one writer at a time, so seq grows in commit order.
CREATE TABLE IF NOT EXISTS votes (
    seq          INTEGER PRIMARY KEY,
    election_id  TEXT NOT NULL,
    voter_id     TEXT NOT NULL,
    candidate_id TEXT NOT NULL,
    voting_time  TEXT NOT NULL,
    vote         INTEGER NOT NULL DEFAULT 1,
    ballot_id    TEXT NOT NULL,
    cast_at      INTEGER NOT NULL,
    election_no  INTEGER NOT NULL,
    voter_no     INTEGER NOT NULL,
    -- The bus message it came from (Kafka partition and offset of `ballots`).
    src_partition INTEGER,
    src_offset    INTEGER,
    -- Who sent the ballot (model.rs `Vote::client`); NULL when unknown.
    client        TEXT,
    UNIQUE (election_no, voter_no)
);

CREATE TABLE IF NOT EXISTS rejected_ballots (
    id          INTEGER PRIMARY KEY,
    ballot_id   TEXT NOT NULL UNIQUE,
    election_id TEXT,
    voter_id    TEXT,
    reason      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    raw         TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    src_partition INTEGER,
    src_offset    INTEGER,
    client        TEXT
);

-- received = accepted + rejected, per election, kept in the processor's transaction.
CREATE TABLE IF NOT EXISTS ballot_counts (
    election_id TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (election_id, outcome)
);

CREATE TABLE IF NOT EXISTS results_candidate (
    engine TEXT NOT NULL, election_id TEXT NOT NULL, candidate_id TEXT NOT NULL,
    votes INTEGER NOT NULL,
    PRIMARY KEY (engine, election_id, candidate_id)
);
CREATE TABLE IF NOT EXISTS results_state (
    engine TEXT NOT NULL, election_id TEXT NOT NULL, state TEXT NOT NULL, candidate_id TEXT NOT NULL,
    votes INTEGER NOT NULL,
    PRIMARY KEY (engine, election_id, state, candidate_id)
);
CREATE TABLE IF NOT EXISTS results_demographic (
    engine TEXT NOT NULL, election_id TEXT NOT NULL, age_band TEXT NOT NULL, gender TEXT NOT NULL,
    candidate_id TEXT NOT NULL, votes INTEGER NOT NULL,
    PRIMARY KEY (engine, election_id, age_band, gender, candidate_id)
);
CREATE TABLE IF NOT EXISTS results_minute (
    engine TEXT NOT NULL, election_id TEXT NOT NULL, minute INTEGER NOT NULL, candidate_id TEXT NOT NULL,
    votes INTEGER NOT NULL,
    PRIMARY KEY (engine, election_id, minute, candidate_id)
);
CREATE TABLE IF NOT EXISTS results_election (
    engine TEXT NOT NULL, election_id TEXT NOT NULL,
    late_votes INTEGER NOT NULL DEFAULT 0, max_cast_at INTEGER,
    PRIMARY KEY (engine, election_id)
);
-- The seq each engine's results are exact up to, written with the results.
CREATE TABLE IF NOT EXISTS agg_progress (
    engine   TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
-- The offsets of engines fed by Kafka, written with their results.
CREATE TABLE IF NOT EXISTS agg_offsets (
    engine      TEXT NOT NULL,
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (engine, topic, partition)
);
-- One ballot id, one ballot: every id recorded (as a vote or a rejection)
-- with a fingerprint of the content it named (store/ids.rs); NULL for a
-- rejection recorded before fingerprints were kept whose content is unknown.
-- Filled from the votes and rejections already there by the migration to
-- version 3 (PRAGMA user_version).
CREATE TABLE IF NOT EXISTS ballot_ids (
    ballot_id   TEXT PRIMARY KEY,
    fingerprint INTEGER
) WITHOUT ROWID;
-- The race desk. A state's count is sealed once its polls closed and the
-- lateness allowance passed: from then on the store refuses any new vote
-- there (`polls_closed`), so `final_votes`, counted in the sealing
-- transaction, is the number of votes that will ever count in that state.
CREATE TABLE IF NOT EXISTS poll_seals (
    election_no INTEGER NOT NULL,
    state       TEXT NOT NULL,
    sealed_at   INTEGER NOT NULL,
    final_votes INTEGER NOT NULL,
    PRIMARY KEY (election_no, state)
);
-- The desk's calls and projections, each recorded once, numbered densely
-- per election (the body is the event's JSON, with the position it was made at).
CREATE TABLE IF NOT EXISTS desk_events (
    election_id TEXT NOT NULL,
    event_no    INTEGER NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (election_id, event_no)
);
-- Results as of a moment of the night (store/checkpoint.rs): one election's
-- counters exact to a votes ledger position, a multiple of 5,000, with the
-- latest cast time counted by then. Made lazily by the queries that walk the
-- ledger; never stale, since the ledger only grows in seq order.
CREATE TABLE IF NOT EXISTS tally_checkpoints (
    election_id TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    max_cast_at INTEGER,
    body        TEXT NOT NULL,
    PRIMARY KEY (election_id, seq)
);
-- Rejections as of a time, counted by reason from the index alone.
CREATE INDEX IF NOT EXISTS rejected_ballots_by_time ON rejected_ballots (election_id, received_at, reason);
-- The alerts stage (alerts/stage.rs): each alert opened or resolved, numbered
-- densely per election (the body is the change's JSON), and where the stage
-- stands in the ledger with its detectors' state, written in the same
-- transaction as the events, so a restart resumes without repeating one.
CREATE TABLE IF NOT EXISTS alert_events (
    election_id TEXT NOT NULL,
    event_no    INTEGER NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (election_id, event_no)
);
CREATE TABLE IF NOT EXISTS alert_state (
    election_id      TEXT PRIMARY KEY,
    votes_after      INTEGER NOT NULL,
    rejections_after INTEGER NOT NULL,
    state            TEXT NOT NULL
);
-- What the race desk was shown: each look that sealed a state or made
-- events, with its clock, the votes counted in the results it read and the
-- election's votes recorded by then, so a replay can show its own desk the
-- same moments of the night (replay/desk.rs).
CREATE TABLE IF NOT EXISTS desk_looks (
    election_id TEXT NOT NULL,
    look_no     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    counted     INTEGER NOT NULL,
    accepted    INTEGER NOT NULL,
    seals       INTEGER NOT NULL,
    first_event INTEGER NOT NULL,
    events      INTEGER NOT NULL,
    PRIMARY KEY (election_id, look_no)
);
-- What the dashboard and the read API published (crate::shown): an
-- election's figures as shown, when, and the votes ledger position they are
-- exact to when known. Keyed by a digest of the figures: several servers
-- publishing the same results keep one row.
CREATE TABLE IF NOT EXISTS shown_results (
    election_id TEXT NOT NULL,
    digest      INTEGER NOT NULL,
    shown_at    INTEGER NOT NULL,
    seq         INTEGER,
    counted     INTEGER NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (election_id, digest)
);
CREATE INDEX IF NOT EXISTS shown_results_by_time ON shown_results (election_id, shown_at);
