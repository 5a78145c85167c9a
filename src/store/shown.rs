//! The record of shown results (`crate::shown`) as both backends keep it:
//! the figures as JSON, keyed by a digest of them, so that several servers
//! publishing the same results keep one row.

use super::{ids, StoreError};
use crate::model::Millis;
use crate::shown::{Figures, Shown};

/// The figures' JSON and its digest (the row's key with the election).
pub(crate) fn encode(shown: &Shown) -> Result<(String, i64), StoreError> {
    let body =
        serde_json::to_string(&shown.figures).map_err(|e| StoreError::BadShown(e.to_string()))?;
    let digest = ids::digest(&[shown.election_id.as_bytes(), body.as_bytes()]);
    Ok((body, digest))
}

pub(crate) fn decode(
    election_id: String,
    shown_at: Millis,
    seq: Option<i64>,
    body: &str,
) -> Result<Shown, StoreError> {
    let figures: Figures =
        serde_json::from_str(body).map_err(|e| StoreError::BadShown(e.to_string()))?;
    Ok(Shown {
        election_id,
        shown_at,
        seq,
        figures,
    })
}
