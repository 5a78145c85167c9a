//! Measures the detectors on seeded streams: every injected anomaly must
//! be detected, by the detector made for it, in its place; a clean stream
//! must raise nothing. Delays are in stream time from the injection.

use std::collections::BTreeMap;
use std::fmt;

use super::night::{self, Injection, NightConfig, Target};
use super::{Alert, AlertConfig, AlertEvent, AlertKind, Millis, Watch};

/// One detector on the nights injected with its anomaly.
#[derive(Clone, Debug, Default)]
pub struct Detection {
    pub nights: usize,
    /// Delay of each detection, in ms of stream time.
    pub delays: Vec<Millis>,
}

impl Detection {
    pub fn missed(&self) -> usize {
        self.nights - self.delays.len()
    }

    /// The q-quantile of the delays (nearest rank), None if none.
    pub fn delay(&self, q: f64) -> Option<Millis> {
        let mut d = self.delays.clone();
        d.sort_unstable();
        let i = ((q * d.len() as f64).ceil() as usize).clamp(1, d.len().max(1)) - 1;
        d.get(i).copied()
    }
}

#[derive(Clone, Debug, Default)]
pub struct AlertReport {
    pub seed: u64,
    pub detections: BTreeMap<&'static str, Detection>,
    pub clean_nights: usize,
    /// Alerts on clean nights, by kind.
    pub false_alarms: BTreeMap<AlertKind, usize>,
    /// Alerts on injected nights that name neither the target's state nor
    /// its source, by kind.
    pub strays: BTreeMap<AlertKind, usize>,
}

impl AlertReport {
    pub fn false_alarm_count(&self) -> usize {
        self.false_alarms.values().sum()
    }

    /// Every anomaly found, no false alarm, p99 delay within `max_delay`.
    pub fn passes(&self, max_delay: Millis) -> bool {
        self.false_alarm_count() == 0
            && self.strays.is_empty()
            && self
                .detections
                .values()
                .all(|d| d.missed() == 0 && d.delay(0.99).is_some_and(|x| x <= max_delay))
    }
}

/// A detector's name, and whether an alert is its detection.
type Detector = (&'static str, fn(&Alert, &Target) -> bool);

/// The detectors each injection is for.
fn detectors(i: Injection) -> Vec<Detector> {
    match i {
        Injection::None => vec![],
        Injection::Burst => vec![
            ("source concentration (burst)", |a, t| {
                a.kind == AlertKind::SourceConcentration && a.scope.source.as_deref() == t.source
            }),
            ("ballot rate (burst)", |a, t| {
                matches!(a.kind, AlertKind::RateSpike | AlertKind::RateShift)
                    && a.scope.metric.as_deref() == Some("ballots")
                    && a.scope.state.as_deref() == Some(t.state)
            }),
        ],
        Injection::Duplicates => vec![("already_voted rate (duplicates)", |a, t| {
            matches!(a.kind, AlertKind::RateSpike | AlertKind::RateShift)
                && a.scope.metric.as_deref() == Some("rejected:already_voted")
                && a.scope.state.as_deref() == Some(t.state)
        })],
        Injection::AfterClose => vec![("outside polling hours", |a, t| {
            a.kind == AlertKind::OutsidePollingHours && a.scope.state.as_deref() == Some(t.state)
        })],
        Injection::TurnoutPush => vec![("turnout over registration", |a, t| {
            a.kind == AlertKind::TurnoutOverRegistration
                && a.scope.state.as_deref() == Some(t.state)
        })],
        Injection::Swing => vec![("share swing", |a, t| {
            a.kind == AlertKind::ShareSwing && a.scope.state.as_deref() == Some(t.state)
        })],
    }
}

/// One night: the alerts it opened.
pub fn one_night(cfg: &NightConfig) -> (Vec<Alert>, Target) {
    let (reg, target) = night::registry(cfg);
    let mut watch = Watch::new(AlertConfig::default(), reg);
    let mut opened = Vec::new();
    let mut keep = |events: Vec<AlertEvent>| {
        opened.extend(events.into_iter().filter_map(|e| match e {
            AlertEvent::Opened(a) => Some(a),
            AlertEvent::Resolved(_) => None,
        }))
    };
    night::play(cfg, &target, &mut |o| keep(watch.observe(o)));
    keep(watch.finish());
    (opened, target)
}

/// `nights` nights of each injection, clean ones included.
pub fn check(nights: usize, seed: u64) -> AlertReport {
    let mut r = AlertReport {
        seed,
        ..AlertReport::default()
    };
    for (ii, &inj) in Injection::ALL.iter().enumerate() {
        for n in 0..nights {
            let s = seed.wrapping_add((n * Injection::ALL.len() + ii) as u64);
            let cfg = NightConfig::new(s.wrapping_mul(0x9e37_79b9_7f4a_7c15), inj);
            let (alerts, target) = one_night(&cfg);
            if inj == Injection::None {
                r.clean_nights += 1;
                for a in &alerts {
                    *r.false_alarms.entry(a.kind).or_default() += 1;
                }
                continue;
            }
            let elsewhere = |a: &&Alert| {
                a.scope.state.as_deref() != Some(target.state)
                    && (target.source.is_none() || a.scope.source.as_deref() != target.source)
            };
            for a in alerts.iter().filter(elsewhere) {
                *r.strays.entry(a.kind).or_default() += 1;
            }
            for (name, is) in detectors(inj) {
                let d = r.detections.entry(name).or_default();
                d.nights += 1;
                if let Some(a) = alerts
                    .iter()
                    .find(|a| is(a, &target) && a.first_seen >= cfg.inject_at)
                {
                    d.delays.push(a.first_seen - cfg.inject_at);
                }
            }
        }
    }
    r
}

impl fmt::Display for AlertReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s =
            |d: Option<Millis>| d.map_or("–".into(), |x| format!("{:.1} s", x as f64 / 1000.0));
        writeln!(
            f,
            "| detector (injection) | nights | detected | delay p50 | delay p99 | max |"
        )?;
        writeln!(f, "|---|---:|---:|---:|---:|---:|")?;
        for (name, d) in &self.detections {
            writeln!(
                f,
                "| {name} | {} | {} | {} | {} | {} |",
                d.nights,
                d.delays.len(),
                s(d.delay(0.5)),
                s(d.delay(0.99)),
                s(d.delay(1.0))
            )?;
        }
        writeln!(
            f,
            "clean nights: {}, false alarms: {} ({:.2} a night){}",
            self.clean_nights,
            self.false_alarm_count(),
            self.false_alarm_count() as f64 / self.clean_nights.max(1) as f64,
            if self.false_alarms.is_empty() {
                String::new()
            } else {
                format!(" {:?}", self.false_alarms)
            }
        )?;
        writeln!(
            f,
            "alerts elsewhere on injected nights: {} {:?}",
            self.strays.values().sum::<usize>(),
            self.strays
        )
    }
}
