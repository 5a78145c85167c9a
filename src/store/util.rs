//! Small helpers the store backends share.

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{format_voting_time, PollClose, VOTER_COLUMNS};

/// [`VOTER_COLUMNS`] as an SQL column list, the same in both dialects.
pub fn voter_columns() -> &'static str {
    static LIST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LIST.get_or_init(|| VOTER_COLUMNS.join(", "))
}

/// Turns repeated strings into shared ones while reading many rows.
#[derive(Default)]
pub struct Interner(HashMap<String, Arc<str>>);

impl Interner {
    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(s.to_string(), a.clone());
        a
    }
}

/// Remembers the last formatted second: ballots arrive clustered in time.
#[derive(Default)]
pub struct TimeFormat {
    second: i64,
    text: String,
}

impl TimeFormat {
    pub fn format(&mut self, ms: i64) -> &str {
        let second = ms.div_euclid(1000);
        if self.text.is_empty() || second != self.second {
            self.second = second;
            self.text = format_voting_time(ms);
        }
        &self.text
    }
}

/// The poll schedule from its two nullable columns: both or none.
pub fn poll_close(first_close: Option<i64>, step_ms: Option<i64>) -> Option<PollClose> {
    Some(PollClose {
        first_close: first_close?,
        step_ms: step_ms?,
    })
}
