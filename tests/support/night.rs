//! An election night over HTTP: a registry whose election's polls close in
//! waves a few seconds from now, and ballots cast through the API.

use serde_json::json;
use votestream::model::{now_millis, PollClose};

use super::http::Server;
use super::run::votestream_ok;
use super::{CANDIDATES, ELECTION};

/// Registry, election with a poll schedule starting a few seconds from now.
pub fn night(url: &str, voters: u64, first_close_in_ms: i64, step_ms: i64) -> PollClose {
    votestream_ok(&["generate", "--store", url, "--voters", &voters.to_string()]);
    let mut st = votestream::store::open(url).unwrap();
    let entry = st
        .elections()
        .unwrap()
        .into_iter()
        .find(|e| e.election.election_id == ELECTION)
        .unwrap();
    let polls = PollClose {
        first_close: now_millis() + first_close_in_ms,
        step_ms,
    };
    let mut election = entry.election;
    election.polls = Some(polls);
    st.put_election(&election, &entry.candidates).unwrap();
    polls
}

/// Casts ballots for about 70% of the voters, one candidate favoured per
/// state (the first in two states of three, so that one of them wins the
/// Electoral College); returns how many were accepted.
pub fn cast_night(server: &Server, voters: u64) -> u64 {
    let mut accepted = 0;
    for i in 0..voters {
        if i % 10 >= 7 {
            continue;
        }
        let voter = votestream::generate::voter(42, i);
        let favoured = usize::from(voter.address_state.len() % 3 == 2);
        let candidate = if i % 4 == 0 {
            (favoured + 1) % 3
        } else {
            favoured
        };
        let body = json!({"voter_id": voter.voter_id, "candidate_id": CANDIDATES[candidate]});
        let r = server.cast(body.to_string().as_bytes(), None);
        assert!(
            r.status == 202 || r.status == 422,
            "cast: {} {}",
            r.status,
            r.body_text()
        );
        accepted += (r.status == 202) as u64;
    }
    accepted
}

/// `run` of a night of about 2,400 ballots over 8 s (seed 11, 3,000
/// voters) with the race desk and the given lateness allowance (seconds),
/// served as it goes: 8 s at 1×.
pub fn run_short_night(url: &str, allowance_secs: &str) {
    votestream_ok(&[
        "run",
        "--store",
        url,
        "--voters",
        "3000",
        "--seed",
        "11",
        "--night",
        "8s",
        "--allowance-secs",
        allowance_secs,
        "--until-done",
        "--listen",
        "127.0.0.1:0",
    ]);
}
