//! The alerts stage's record, as recorded and read back: each change (an
//! alert opened or resolved) numbered in order, and the alerts it adds up
//! to, for the API and the dashboard.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{Alert, AlertKind, Scope};

/// An alert opened or resolved, as recorded (`alert_events`), published
/// (the `alerts` topic, the webhook) and served.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertChange {
    pub change: Change,
    #[serde(flatten)]
    pub alert: Alert,
    /// The votes ledger's position (seq) when it was decided.
    pub position: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Opened,
    Resolved,
}

/// One alert as the record tells it: opened by change `id`, resolved or not.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertEntry {
    /// The number of the change that opened it.
    pub id: i64,
    #[serde(flatten)]
    pub alert: Alert,
    pub open: bool,
    /// The votes ledger's position when it was opened.
    pub position: i64,
}

/// The alerts of one election, folded from its record in order.
#[derive(Clone, Debug, Default)]
pub struct AlertBook {
    /// Every alert, in the order they were opened.
    pub entries: Vec<AlertEntry>,
    /// Changes folded so far.
    pub changes: i64,
    /// The open alert of each kind and scope: its index in `entries`.
    open: HashMap<(AlertKind, Scope), usize>,
}

impl AlertBook {
    /// Folds the next changes in (numbered from `self.changes` on).
    pub fn add(&mut self, changes: impl IntoIterator<Item = AlertChange>) {
        for c in changes {
            let key = (c.alert.kind, c.alert.scope.clone());
            match c.change {
                Change::Opened => {
                    self.open.insert(key, self.entries.len());
                    self.entries.push(AlertEntry {
                        id: self.changes,
                        alert: c.alert,
                        open: true,
                        position: c.position,
                    });
                }
                Change::Resolved => {
                    if let Some(i) = self.open.remove(&key) {
                        let e = &mut self.entries[i];
                        e.alert.last_seen = c.alert.last_seen;
                        e.alert.resolved = c.alert.resolved;
                        e.open = false;
                    }
                }
            }
            self.changes += 1;
        }
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }
}
