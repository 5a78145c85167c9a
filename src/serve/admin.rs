//! Admin operations, behind the admin token: create an election, generate
//! voters. Both change the registry, so the processor's copy is reloaded.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::guard::check_bearer;
use super::Shared;
use crate::edge::{self, Id, Kind};
use crate::model::{now_millis, parse_time, Candidate};

#[derive(Deserialize)]
pub struct NewElection {
    election_id: String,
    name: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS` (UTC) or RFC 3339; default: now.
    opens_at: Option<String>,
    /// Default: the original's three parties.
    candidates: Option<Vec<NewCandidate>>,
}

#[derive(Deserialize)]
pub struct NewCandidate {
    candidate_id: Option<String>,
    candidate_name: String,
    party_affiliation: String,
    #[serde(default)]
    biography: String,
    #[serde(default)]
    campaign_platform: String,
}

/// An admin body: a JSON object (an array would be read by position).
fn object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| bad(format!("the body is not UTF-8: {e}")))?;
    edge::json_object(text).map_err(|why| bad(why.to_string()))?;
    serde_json::from_str(text).map_err(|e| bad(e.to_string()))
}

fn bad(message: String) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_request",
        message,
    }
}

pub async fn create_election(
    State(st): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    st.limiter.check(peer.ip())?;
    check_bearer(&headers, &st.tokens.admin)?;
    let req: NewElection = object(&body)?;
    // Every text field passes the edge's rules here: a store that could not
    // keep one would otherwise fail the whole request (500).
    let id = Id::parse("election_id", req.election_id.trim())
        .map_err(|e| bad(e.to_string()))?
        .into_string();
    if let Some(name) = &req.name {
        edge::check(Kind::Name, "name", name).map_err(|e| bad(e.to_string()))?;
    }
    let opens_at = match req.opens_at.as_deref() {
        None => now_millis(),
        Some(t) => {
            parse_time(t).ok_or_else(|| bad(format!("opens_at {} is not a time", edge::echo(t))))?
        }
    };
    let (mut election, mut candidates) = crate::generate::default_election(opens_at);
    election.election_id = id.clone();
    election.name = req.name.unwrap_or_else(|| format!("Election {id}"));
    if let Some(list) = req.candidates {
        if list.is_empty() {
            return Err(bad("an election needs at least one candidate".into()));
        }
        for (i, c) in list.iter().enumerate() {
            let field = |name: &str| format!("candidates[{i}].{name}");
            // A derived id must be one a ballot can name, too.
            let cid = c
                .candidate_id
                .clone()
                .unwrap_or_else(|| format!("{id}-c{}", i + 1));
            edge::check(Kind::Id, &field("candidate_id"), &cid).map_err(|e| bad(e.to_string()))?;
            for (name, kind, value) in [
                ("candidate_name", Kind::Name, &c.candidate_name),
                ("party_affiliation", Kind::Name, &c.party_affiliation),
                ("biography", Kind::Text, &c.biography),
                ("campaign_platform", Kind::Text, &c.campaign_platform),
            ] {
                edge::check(kind, &field(name), value).map_err(|e| bad(e.to_string()))?;
            }
        }
        candidates = list
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let cid = c.candidate_id.unwrap_or_else(|| format!("{id}-c{}", i + 1));
                Candidate {
                    photo_url: format!("/avatars/candidate/{cid}.svg"),
                    candidate_id: cid,
                    election_id: id.clone(),
                    candidate_name: c.candidate_name,
                    party_affiliation: c.party_affiliation,
                    biography: c.biography,
                    campaign_platform: c.campaign_platform,
                }
            })
            .collect();
    } else {
        // The original's three parties, as `run` creates them.
        for c in &mut candidates {
            c.election_id = id.clone();
        }
    }
    let (e2, c2) = (election.clone(), candidates.clone());
    st.with_store(move |s| Ok(s.put_election(&e2, &c2)?))
        .await?;
    st.reload_registry().await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"election": election, "candidates": candidates})),
    ))
}

#[derive(Deserialize)]
pub struct Generate {
    count: u64,
    #[serde(default = "default_seed")]
    seed: u64,
}

fn default_seed() -> u64 {
    42
}

/// Most voters one request may add.
const MAX_GENERATE: u64 = 1_000_000;

pub async fn generate_voters(
    State(st): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    st.limiter.check(peer.ip())?;
    check_bearer(&headers, &st.tokens.admin)?;
    let req: Generate = object(&body)?;
    if req.count == 0 || req.count > MAX_GENERATE {
        return Err(bad(format!("count must be 1 to {MAX_GENERATE}")));
    }
    let (added, registered) = st
        .with_store(move |s| {
            let mut have = 0u64;
            s.scan_voters(&mut |_| have += 1)?;
            let added =
                crate::generate::generate_voters(s, req.seed, have, have + req.count, false)
                    .map_err(|e| ApiError::Internal(format!("{e:#}")))?;
            Ok((added, have + added))
        })
        .await?;
    st.reload_registry().await?;
    Ok(Json(
        json!({"added": added, "registered_voters": registered}),
    ))
}
