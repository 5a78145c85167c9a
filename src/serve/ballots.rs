//! `POST /api/v1/elections/{id}/ballots`: a ballot over HTTP. Whatever the
//! body holds, once the caller is authorised it becomes a ballot (or a
//! rejection) on the same path as the simulator's, and the answer waits for
//! the commit. A rejected ballot answers 4xx with its reason (it was
//! recorded and counted all the same); 202 means accepted and durable.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use siphasher::sip128::{Hasher128, SipHasher13};
use std::hash::Hasher;

use super::error::ApiError;
use super::guard::{check_bearer, client_name};
use super::intake::IntakeError;
use super::metrics::HTTP_BALLOTS;
use super::Shared;
use crate::bus::Inbound;
use crate::edge::{self, Kind, MAX_ID_BYTES};
use crate::model::{now_millis, parse_time, Ballot, Millis, RejectReason, Rejection};
use crate::process::ack::{Decision, Outcome};
use crate::process::parse::json_error_reason;

/// The HTTP body. `ballot_id` is optional: with an `Idempotency-Key` the id
/// is derived from the key (and the body's is ignored); with neither, a
/// fresh one is drawn (and a retry would be a second ballot, refused as
/// `already_voted`).
#[derive(Deserialize)]
struct HttpBallot {
    voter_id: String,
    candidate_id: String,
    #[serde(default)]
    voting_time: Option<String>,
    #[serde(default)]
    ballot_id: Option<String>,
}

pub async fn cast(
    State(st): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(election_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    st.limiter.check(peer.ip())?;
    check_bearer(&headers, &st.tokens.api)?;
    // Named here, from the connection and the token: whatever the body
    // says about its sender is not read.
    let client = client_name(&st.tokens.api, peer.ip());
    let intake = st
        .intake
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("this server takes no ballots".into()))?;
    let key = idempotency_key(&headers)?;
    // One request per key at a time: a retry racing the first is told to
    // wait for the first's answer, never given a second outcome.
    let _held = match key {
        Some(k) => Some(intake.hold(&keyed_id(&election_id, k)).ok_or_else(|| {
            ApiError::Conflict {
                code: "idempotency_key_in_flight",
                message: "a request with this Idempotency-Key is still being processed; \
                          retry once it is answered"
                    .into(),
            }
        })?),
        None => None,
    };
    let now = now_millis();
    let inbound = match Limited::new(body, st.max_body).collect().await {
        Ok(collected) => to_inbound(&election_id, key, &collected.to_bytes(), now, client),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            let id = match key {
                Some(k) => keyed_id(&election_id, k),
                None => random_id(),
            };
            let detail = format!("the body is larger than {} bytes", st.max_body);
            let r = rejection(
                &election_id,
                id,
                None,
                RejectReason::TooLarge,
                detail,
                b"",
                now,
            );
            Inbound::rejected(Rejection {
                client: Some(client),
                ..r
            })
        }
        Err(e) => {
            return Err(ApiError::BadRequest {
                code: "unreadable_body",
                message: format!("could not read the body: {e}"),
            })
        }
    };
    let decision = intake.submit(inbound).await.map_err(|e| match e {
        IntakeError::Closed | IntakeError::NotRecorded => ApiError::Unavailable(e.to_string()),
    })?;
    Ok(answer(decision, key.is_some()))
}

/// The answer for a decided ballot; a replay gets the first answer again.
/// With an Idempotency-Key (`keyed`), a ballot id reused for other content
/// means the key was reused for another request: 422, as the
/// Idempotency-Key rule has it.
pub fn answer(d: Decision, keyed: bool) -> Response {
    let (status, body, replay) = match d.outcome {
        Outcome::Accepted { replay } => (
            StatusCode::ACCEPTED,
            serde_json::json!({"ballot_id": d.ballot_id, "status": "accepted"}),
            replay,
        ),
        Outcome::Queued => (
            StatusCode::ACCEPTED,
            serde_json::json!({"ballot_id": d.ballot_id, "status": "queued"}),
            false,
        ),
        Outcome::Rejected { reason, detail } => {
            let (status, body) = refusal(&d.ballot_id, reason, detail, keyed);
            (status, body, false)
        }
        Outcome::RejectedBefore { reason, detail } => {
            let (status, body) = refusal(&d.ballot_id, reason, detail, keyed);
            (status, body, true)
        }
    };
    metrics::counter!(HTTP_BALLOTS, "status" => status.as_str().to_string()).increment(1);
    let mut resp = (status, Json(body)).into_response();
    if replay {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

fn refusal(
    ballot_id: &str,
    reason: RejectReason,
    detail: String,
    keyed: bool,
) -> (StatusCode, serde_json::Value) {
    let (status, error, message) = match reason {
        RejectReason::BallotIdReused if keyed => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was already used for a request with another body \
             (election, voter or candidate); a key names one request"
                .to_string(),
        ),
        _ => (status_for(reason), reason.as_str(), detail),
    };
    let body = serde_json::json!({
        "ballot_id": ballot_id,
        "status": "rejected",
        "error": error,
        "reason": reason.as_str(),
        "message": message,
    });
    (status, body)
}

/// One status per class of bad ballot.
pub fn status_for(reason: RejectReason) -> StatusCode {
    match reason {
        RejectReason::MalformedJson | RejectReason::InvalidUtf8 => StatusCode::BAD_REQUEST,
        RejectReason::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        RejectReason::UnknownElection => StatusCode::NOT_FOUND,
        RejectReason::AlreadyVoted | RejectReason::BallotIdReused => StatusCode::CONFLICT,
        RejectReason::WrongType
        | RejectReason::MissingField
        | RejectReason::InvalidField
        | RejectReason::UnknownVoter
        | RejectReason::UnknownCandidate
        | RejectReason::CastInFuture
        | RejectReason::CastBeforeOpen
        | RejectReason::PollsClosed => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= MAX_ID_BYTES => Ok(Some(k)),
        _ => Err(ApiError::BadRequest {
            code: "invalid_idempotency_key",
            message: format!(
                "Idempotency-Key must be 1 to {MAX_ID_BYTES} visible ASCII characters"
            ),
        }),
    }
}

/// Parses the body into a ballot, or into the rejection that says why not;
/// either is recorded as sent by `client`.
fn to_inbound(
    election_id: &str,
    key: Option<&str>,
    raw: &[u8],
    now: Millis,
    client: Arc<str>,
) -> Inbound {
    let reject = |reason, detail: String, voter: Option<&str>| {
        let id = match key {
            Some(k) => keyed_id(election_id, k),
            None => content_id(election_id, raw),
        };
        let voter = voter.map(str::to_string);
        let r = rejection(election_id, id, voter, reason, detail, raw, now);
        Inbound::rejected(Rejection {
            client: Some(client.clone()),
            ..r
        })
    };
    if let Err(e) = edge::check(Kind::Id, "the path's election id", election_id) {
        return reject(RejectReason::InvalidField, e.to_string(), None);
    }
    let text = match std::str::from_utf8(raw) {
        Ok(t) => t,
        Err(e) => {
            let detail = format!(
                "the body is not valid UTF-8 (first bad byte at offset {})",
                e.valid_up_to()
            );
            return reject(RejectReason::InvalidUtf8, detail, None);
        }
    };
    if let Err(why) = edge::json_object(text) {
        return reject(RejectReason::WrongType, why.to_string(), None);
    }
    let b: HttpBallot = match serde_json::from_str(text) {
        Ok(b) => b,
        Err(e) => return reject(json_error_reason(&e), e.to_string(), None),
    };
    let voter = Some(b.voter_id.as_str());
    let body_id = b.ballot_id.as_deref();
    for (name, value) in [
        ("voter_id", Some(b.voter_id.as_str())),
        ("candidate_id", Some(b.candidate_id.as_str())),
        ("ballot_id", body_id),
    ] {
        if let Some(Err(e)) = value.map(|v| edge::check(Kind::Id, name, v)) {
            return reject(RejectReason::InvalidField, e.to_string(), voter);
        }
    }
    let cast_at = match b.voting_time.as_deref() {
        None => now,
        Some(t) => match parse_time(t) {
            Some(ms) => ms,
            None => {
                let detail =
                    "voting_time must be `YYYY-MM-DD HH:MM:SS` (UTC) or RFC 3339".to_string();
                return reject(RejectReason::InvalidField, detail, voter);
            }
        },
    };
    let ballot_id = match (key, body_id) {
        (Some(k), _) => keyed_id(election_id, k),
        (None, Some(id)) => id.to_string(),
        (None, None) => random_id(),
    };
    Inbound::ballot(Ballot {
        ballot_id,
        election_id: election_id.to_string(),
        voter_id: b.voter_id,
        candidate_id: b.candidate_id,
        cast_at,
        client: Some(client),
    })
}

/// A rejection as the edge lets it go to a store: ids that break the rules
/// dropped, what was sent cut to a prefix, NUL replaced.
fn rejection(
    election_id: &str,
    ballot_id: String,
    voter_id: Option<String>,
    reason: RejectReason,
    detail: String,
    raw: &[u8],
    now: Millis,
) -> Rejection {
    edge::storable_rejection(Rejection {
        ballot_id,
        election_id: Some(election_id.to_string()),
        voter_id,
        reason,
        detail,
        raw: edge::storable_raw(raw),
        received_at: now,
        source: None,
        client: None,
    })
}

/// A key names one request (one ballot) in one election: reused with
/// another body, it names a ballot with other content, which the store
/// refuses (`ballot_id_reused`, answered as `idempotency_key_reused`).
fn keyed_id(election_id: &str, key: &str) -> String {
    format!(
        "http-key-{}",
        hash(&[election_id.as_bytes(), key.as_bytes()])
    )
}

fn content_id(election_id: &str, raw: &[u8]) -> String {
    format!("http-raw-{}", hash(&[election_id.as_bytes(), raw]))
}

/// Time first, then 80 random bits: ids the server makes arrive in key
/// order, so the store's id index is appended to rather than rewritten at
/// random places.
fn random_id() -> String {
    use rand::Rng;
    let ms = crate::model::now_millis() as u64 & 0xffff_ffff_ffff;
    let r = rand::rng().random::<u128>() & ((1 << 80) - 1);
    format!("http-{ms:012x}{r:020x}")
}

fn hash(parts: &[&[u8]]) -> String {
    let mut h = SipHasher13::new_with_keys(0x6874_7470, 0x006b_6579);
    for p in parts {
        h.write_usize(p.len());
        h.write(p);
    }
    format!("{:032x}", h.finish128().as_u128())
}
