//! The detectors together. Observations arrive in stream order; stream
//! time is the latest `at` seen, and each time it passes a bucket's end the
//! bucket is closed and the rate, source and swing detectors look at it.
//! Invariants are checked on each observation as it comes. An alert is
//! opened once per (kind, scope), kept open while its detector keeps
//! firing, and resolved after `resolve_after` quiet buckets (invariants
//! stay open: a breach does not heal).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::heavy::SourceWindow;
use super::rate::{RateAlarm, RateConfig, RateWatch};
use super::swing::{swing, SwingConfig};
use super::{Alert, AlertKind, Evidence, Millis, Scope};

#[derive(Clone, Debug, PartialEq)]
pub struct AlertConfig {
    /// Width of a bucket of stream time.
    pub bucket_ms: Millis,
    pub rate: RateConfig,
    pub swing: SwingConfig,
    /// Sources tracked per bucket, and buckets in the source window.
    pub source_capacity: usize,
    pub source_window: usize,
    /// One source's certain share of the window's ballots that alarms,
    /// once the window holds at least `source_min` ballots.
    pub source_share: f64,
    pub source_min: u64,
    /// Quiet buckets before a statistical alert is resolved.
    pub resolve_after: u32,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            bucket_ms: 5_000,
            rate: RateConfig::default(),
            swing: SwingConfig::default(),
            source_capacity: 64,
            source_window: 2,
            source_share: 0.2,
            source_min: 200,
            resolve_after: 6,
        }
    }
}

/// What the watch knows of the election.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Registry {
    pub registered: HashMap<String, u64>,
    pub candidates: HashSet<String>,
    pub opens: Millis,
    /// Each state's close (cast deadline); a state not here has none.
    pub closes: HashMap<String, Millis>,
}

/// One thing that happened, at stream time `at`.
#[derive(Clone, Copy, Debug)]
pub enum Observation<'a> {
    /// A ballot reached the intake from a client source.
    Received {
        at: Millis,
        state: Option<&'a str>,
        source: &'a str,
    },
    Accepted {
        at: Millis,
        state: &'a str,
        candidate: &'a str,
        cast_at: Millis,
    },
    Rejected {
        at: Millis,
        state: Option<&'a str>,
        reason: &'a str,
    },
    /// A persisted tally as read back (results per state and candidate).
    Tally {
        at: Millis,
        state: &'a str,
        candidate: &'a str,
        count: u64,
    },
}

impl Observation<'_> {
    fn at(&self) -> Millis {
        match *self {
            Observation::Received { at, .. }
            | Observation::Accepted { at, .. }
            | Observation::Rejected { at, .. }
            | Observation::Tally { at, .. } => at,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum AlertEvent {
    Opened(Alert),
    Resolved(Alert),
}

type RateKey = (String, String);
/// Keyed by state, candidate or metric names the registry and the ledger
/// give (never a client's own string): a fast hash, as each observation
/// bumps two or three of these.
type Fast = foldhash::fast::RandomState;
type Counts = HashMap<String, HashMap<String, u64, Fast>, Fast>;
type Votes = Counts;

/// Everything but the configuration is state: saved with the stage's
/// position (`stage.rs`) and taken back after a restart.
#[derive(Serialize, Deserialize)]
pub struct Watch {
    #[serde(skip)]
    cfg: AlertConfig,
    reg: Registry,
    bucket_start: Option<Millis>,
    now: Millis,
    /// When what is being judged was complete: the observation's time for
    /// an invariant, the bucket's end for the detectors that close it.
    seen_at: Millis,
    /// This bucket's counts, by metric then state (looked up by `&str`: no
    /// allocation per observation once a key is known).
    counts: Counts,
    #[serde(with = "pairs")]
    rates: BTreeMap<RateKey, RateWatch>,
    sources: SourceWindow,
    votes: Votes,
    /// The last `swing.window` buckets' votes, oldest first.
    recent: VecDeque<Votes>,
    counted: HashMap<String, u64, Fast>,
    #[serde(with = "pairs")]
    tallies: HashMap<(String, String), u64>,
    /// Open alerts, and the buckets since each last fired.
    #[serde(with = "pairs")]
    open: BTreeMap<(AlertKind, Scope), (Alert, u32)>,
    fired: HashSet<(AlertKind, Scope)>,
}

impl Watch {
    pub fn new(cfg: AlertConfig, reg: Registry) -> Watch {
        Watch {
            sources: SourceWindow::new(cfg.source_capacity, cfg.source_window),
            cfg,
            reg,
            bucket_start: None,
            now: Millis::MIN,
            seen_at: Millis::MIN,
            counts: Counts::default(),
            rates: BTreeMap::new(),
            votes: Votes::default(),
            recent: VecDeque::new(),
            counted: HashMap::default(),
            tallies: HashMap::new(),
            open: BTreeMap::new(),
            fired: HashSet::new(),
        }
    }

    /// Takes a watch back from its saved state, with today's configuration.
    pub fn resume(cfg: AlertConfig, state: &str) -> serde_json::Result<Watch> {
        let mut w: Watch = serde_json::from_str(state)?;
        w.cfg = cfg;
        Ok(w)
    }

    /// The state to save ([`Watch::resume`] takes it back).
    pub fn save(&self) -> String {
        serde_json::to_string(self).expect("the watch's state serializes")
    }

    /// Stream time: the latest moment observed.
    pub fn now(&self) -> Millis {
        self.now
    }

    /// Moves stream time on to `at` with nothing observed, closing the
    /// buckets it passes (a stream gone quiet).
    pub fn tick(&mut self, at: Millis) -> Vec<AlertEvent> {
        self.advance(at)
    }

    /// Takes one observation; returns the alerts it opened or resolved.
    pub fn observe(&mut self, o: &Observation<'_>) -> Vec<AlertEvent> {
        let mut out = self.advance(o.at());
        self.seen_at = self.now;
        match *o {
            Observation::Received { state, source, .. } => {
                self.count("ballots", state.unwrap_or(""));
                // A ballot whose client is not known is no client's share.
                if !source.is_empty() {
                    self.sources.add(source);
                }
            }
            Observation::Accepted {
                state,
                candidate,
                cast_at,
                ..
            } => {
                self.count("accepted", state);
                bump(&mut self.votes, state, candidate);
                self.check_vote(state, candidate, cast_at, &mut out);
            }
            Observation::Rejected { state, reason, .. } => {
                self.count(&format!("rejected:{reason}"), state.unwrap_or(""));
            }
            Observation::Tally {
                state,
                candidate,
                count,
                ..
            } => {
                let key = (state.to_string(), candidate.to_string());
                let before = self.tallies.insert(key, count).unwrap_or(0);
                if count < before {
                    let scope = Scope {
                        state: Some(state.into()),
                        candidate: Some(candidate.into()),
                        ..Scope::default()
                    };
                    let ev = evidence(count as f64, before as f64, count as f64, before as f64);
                    self.raise(AlertKind::CountWentBackwards, scope, ev, &mut out);
                }
            }
        }
        out
    }

    /// Closes the bucket under way (the end of a night).
    pub fn finish(&mut self) -> Vec<AlertEvent> {
        let mut out = Vec::new();
        if let Some(start) = self.bucket_start {
            self.seen_at = start + self.cfg.bucket_ms.max(1);
            self.close_bucket(&mut out);
        }
        out
    }

    /// The alerts open now, by kind and scope.
    pub fn open_alerts(&self) -> Vec<Alert> {
        self.open.values().map(|(a, _)| a.clone()).collect()
    }

    fn count(&mut self, metric: &str, state: &str) {
        bump(&mut self.counts, metric, state);
    }

    /// Moves stream time on, closing every bucket it passes.
    fn advance(&mut self, at: Millis) -> Vec<AlertEvent> {
        let mut out = Vec::new();
        self.now = self.now.max(at);
        let width = self.cfg.bucket_ms.max(1);
        // Buckets are aligned to multiples of their width, as a clock's are.
        let start = *self
            .bucket_start
            .get_or_insert(at.div_euclid(width) * width);
        let mut start = start;
        while self.now >= start + width {
            self.seen_at = start + width;
            self.close_bucket(&mut out);
            start += width;
        }
        self.bucket_start = Some(start);
        out
    }

    fn check_vote(
        &mut self,
        state: &str,
        candidate: &str,
        cast_at: Millis,
        out: &mut Vec<AlertEvent>,
    ) {
        let at_state = |c: Option<&str>| Scope {
            state: Some(state.into()),
            candidate: c.map(Into::into),
            ..Scope::default()
        };
        if !self.reg.candidates.contains(candidate) {
            let ev = evidence(1.0, 0.0, 1.0, 0.0);
            self.raise(
                AlertKind::UnknownCandidate,
                at_state(Some(candidate)),
                ev,
                out,
            );
        }
        let n = match self.counted.get_mut(state) {
            Some(n) => n,
            None => self.counted.entry(state.to_string()).or_default(),
        };
        *n += 1;
        let (n, r) = (*n, self.reg.registered.get(state).copied().unwrap_or(0));
        if n > r {
            let ev = evidence(n as f64, r as f64, n as f64, r as f64);
            self.raise(AlertKind::TurnoutOverRegistration, at_state(None), ev, out);
        }
        let close = self.reg.closes.get(state).copied();
        if cast_at < self.reg.opens || close.is_some_and(|c| cast_at > c) {
            let bound = if cast_at < self.reg.opens {
                self.reg.opens
            } else {
                close.unwrap_or(cast_at)
            };
            let ev = evidence(cast_at as f64, bound as f64, cast_at as f64, bound as f64);
            self.raise(AlertKind::OutsidePollingHours, at_state(None), ev, out);
        }
    }

    fn close_bucket(&mut self, out: &mut Vec<AlertEvent>) {
        let counts: HashMap<RateKey, u64> = std::mem::take(&mut self.counts)
            .into_iter()
            .flat_map(|(metric, by_state)| {
                by_state
                    .into_iter()
                    .map(move |(state, n)| ((metric.clone(), state), n))
            })
            .collect();
        for key in counts.keys() {
            self.rates.entry(key.clone()).or_default();
        }
        let keys: Vec<RateKey> = self.rates.keys().cloned().collect();
        for key in keys {
            let x = counts.get(&key).copied().unwrap_or(0) as f64;
            let alarm = self
                .rates
                .get_mut(&key)
                .and_then(|w| w.bucket(&self.cfg.rate, x));
            let scope = Scope {
                state: (!key.1.is_empty()).then(|| key.1.clone()),
                metric: Some(key.0.clone()),
                ..Scope::default()
            };
            match alarm {
                Some(RateAlarm::Spike {
                    observed,
                    expected,
                    z,
                }) => {
                    let ev = evidence(observed, expected, z, self.cfg.rate.z);
                    self.raise(AlertKind::RateSpike, scope, ev, out);
                }
                Some(RateAlarm::Shift {
                    observed,
                    expected,
                    cusum,
                }) => {
                    let ev = evidence(observed, expected, cusum, self.cfg.rate.h);
                    self.raise(AlertKind::RateShift, scope, ev, out);
                }
                None => {}
            }
        }
        if let Some(h) = self.sources.heaviest() {
            let share = h.low as f64 / h.total.max(1) as f64;
            if h.total >= self.cfg.source_min && share > self.cfg.source_share {
                let scope = Scope {
                    source: Some(h.source.clone()),
                    ..Scope::default()
                };
                let ev = evidence(h.low as f64, h.total as f64, share, self.cfg.source_share);
                self.raise(AlertKind::SourceConcentration, scope, ev, out);
            }
        }
        self.sources.next_bucket();
        self.close_swings(out);
        self.resolve_quiet(out);
    }

    fn close_swings(&mut self, out: &mut Vec<AlertEvent>) {
        let votes = std::mem::take(&mut self.votes);
        self.recent.push_back(votes);
        // The newest bucket against the `window` before it, and the newest
        // two against the window before them: a swing in a state with few
        // votes a bucket shows in the second.
        let n = self.recent.len();
        let sum = |buckets: &[&Votes], state: &str| {
            let mut t: HashMap<String, u64> = HashMap::new();
            for (c, v) in buckets.iter().filter_map(|b| b.get(state)).flatten() {
                *t.entry(c.clone()).or_default() += v;
            }
            t
        };
        let all: Vec<&Votes> = self.recent.iter().collect();
        let mut found = BTreeMap::new();
        for state in self.recent[n - 1].keys() {
            for newest in [1, 2].into_iter().filter(|&k| k < n) {
                let (before, now) = all.split_at(n - newest);
                let (before, now) = (sum(before, state), sum(now, state));
                let (n1, n2) = (before.values().sum(), now.values().sum());
                let names: BTreeSet<&String> = before.keys().chain(now.keys()).collect();
                for c in names {
                    let x1 = before.get(c).copied().unwrap_or(0);
                    let x2 = now.get(c).copied().unwrap_or(0);
                    if let Some(s) = swing(&self.cfg.swing, (x1, n1), (x2, n2)) {
                        found.entry((state.clone(), c.clone())).or_insert(s);
                    }
                }
            }
        }
        for ((state, candidate), s) in found {
            let scope = Scope {
                state: Some(state),
                candidate: Some(candidate),
                ..Scope::default()
            };
            let ev = evidence(s.after, s.before, s.z, self.cfg.swing.z);
            self.raise(AlertKind::ShareSwing, scope, ev, out);
        }
        while self.recent.len() > self.cfg.swing.window + 1 {
            self.recent.pop_front();
        }
    }

    fn resolve_quiet(&mut self, out: &mut Vec<AlertEvent>) {
        let fired = std::mem::take(&mut self.fired);
        let mut done = Vec::new();
        for (key, (alert, quiet)) in self.open.iter_mut() {
            if fired.contains(key) || alert.kind.is_invariant() {
                continue;
            }
            *quiet += 1;
            if *quiet >= self.cfg.resolve_after {
                done.push(key.clone());
            }
        }
        for key in done {
            if let Some((mut alert, _)) = self.open.remove(&key) {
                alert.resolved = Some(self.seen_at);
                out.push(AlertEvent::Resolved(alert));
            }
        }
    }

    /// Opens an alert, or keeps the open one of that kind and scope going.
    fn raise(&mut self, kind: AlertKind, scope: Scope, ev: Evidence, out: &mut Vec<AlertEvent>) {
        let at = self.seen_at;
        let key = (kind, scope);
        self.fired.insert(key.clone());
        if let Some((alert, quiet)) = self.open.get_mut(&key) {
            alert.last_seen = at;
            *quiet = 0;
            return;
        }
        let alert = Alert {
            kind,
            severity: kind.severity(),
            scope: key.1.clone(),
            evidence: ev,
            first_seen: at,
            last_seen: at,
            resolved: None,
        };
        self.open.insert(key, (alert.clone(), 0));
        out.push(AlertEvent::Opened(alert));
    }
}

/// Adds one to `map[a][b]`, allocating the keys only the first time.
fn bump(map: &mut Counts, a: &str, b: &str) {
    let inner = match map.get_mut(a) {
        Some(m) => m,
        None => map.entry(a.to_string()).or_default(),
    };
    match inner.get_mut(b) {
        Some(n) => *n += 1,
        None => {
            inner.insert(b.to_string(), 1);
        }
    }
}

fn evidence(observed: f64, expected: f64, statistic: f64, threshold: f64) -> Evidence {
    Evidence {
        observed,
        expected,
        statistic,
        threshold,
    }
}

/// Maps whose keys are not strings, saved as lists of pairs (JSON objects
/// take string keys only).
mod pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<'a, M, K, V, S>(map: &'a M, s: S) -> Result<S::Ok, S::Error>
    where
        &'a M: IntoIterator<Item = (&'a K, &'a V)>,
        K: Serialize + 'a,
        V: Serialize + 'a,
        S: Serializer,
    {
        s.collect_seq(map)
    }

    pub fn deserialize<'de, M, K, V, D>(d: D) -> Result<M, D::Error>
    where
        M: FromIterator<(K, V)>,
        K: Deserialize<'de>,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}
