//! How the plan's ballots are sent: at a rate, or in a night at their
//! planned times.

use std::time::{Duration, Instant};

use super::{NightClock, Registration, Simulation};
use crate::bus::Inbound;
use crate::model::now_millis;
use crate::shutdown::Shutdown;

/// Sends at most this many ballots in one batch.
const CHUNK: usize = 2048;

/// How fast ballots are sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    PerSecond(u64),
    Max,
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Rate, String> {
        if s == "max" {
            return Ok(Rate::Max);
        }
        match s.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Rate::PerSecond(n)),
            _ => Err(format!(
                "rate must be a positive number of ballots per second or `max`, got {s:?}"
            )),
        }
    }
}

impl Simulation {
    /// Sends the plan's ballots at `rate` until it ends or shutdown; the
    /// first `unpaced` go at full speed (after a restart they are replays the
    /// store recognises). `send` returns false when nobody listens any more.
    /// Returns how many were sent. With a night `rate` is ignored: each
    /// ballot goes at its planned time.
    pub fn run(
        &self,
        unpaced: usize,
        rate: Rate,
        shutdown: &Shutdown,
        send: impl FnMut(Vec<Inbound>) -> bool,
    ) -> usize {
        self.run_registering(unpaced, rate, shutdown, send, |_| {})
    }

    /// [`run`](Self::run), calling `register` with each group of voters an
    /// injection registers mid-night (see [`Simulation::registrations`])
    /// before the first ballot that needs them is sent.
    pub fn run_registering(
        &self,
        unpaced: usize,
        rate: Rate,
        shutdown: &Shutdown,
        mut send: impl FnMut(Vec<Inbound>) -> bool,
        mut register: impl FnMut(&Registration),
    ) -> usize {
        if let Some(clock) = self.night {
            return self.run_night(clock, unpaced, shutdown, send, &mut register);
        }
        let chunk = match rate {
            Rate::Max => CHUNK,
            Rate::PerSecond(r) => (r / 50).clamp(1, CHUNK as u64) as usize,
        };
        let mut began = Instant::now();
        let mut i = 0;
        while i < self.plan.len() && !shutdown.is_requested() {
            let paced = i.saturating_sub(unpaced);
            if paced == 0 {
                began = Instant::now();
            }
            if let Rate::PerSecond(r) = rate {
                // Pace by the plan, not by the last sleep, so the rate does not drift.
                let due = Duration::from_secs_f64(paced as f64 / r as f64);
                if let Some(wait) = due.checked_sub(began.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            let step = if i < unpaced { CHUNK } else { chunk };
            let end = (i + step).min(self.plan.len());
            let now = now_millis();
            let batch: Vec<Inbound> = (i..end).map(|k| self.ballot(k, now)).collect();
            if !send(batch) {
                break;
            }
            i = end;
        }
        i
    }

    /// The night's pacing: each ballot is sent at its planned time after the
    /// night's start by the wall clock, so the sender and the processor's
    /// schedule agree even when the run began after the start.
    pub(super) fn run_night(
        &self,
        clock: NightClock,
        unpaced: usize,
        shutdown: &Shutdown,
        mut send: impl FnMut(Vec<Inbound>) -> bool,
        register: &mut dyn FnMut(&Registration),
    ) -> usize {
        let into = now_millis() - clock.start;
        let mut registrations = self.registrations.iter().peekable();
        let origin = match into >= 0 {
            true => Instant::now().checked_sub(Duration::from_millis(into as u64)),
            false => Instant::now().checked_add(Duration::from_millis(into.unsigned_abs())),
        }
        .unwrap_or_else(Instant::now);
        let due = |k: usize| origin + Duration::from_millis(self.at[k].max(0) as u64);
        let mut i = 0;
        while i < self.plan.len() && !shutdown.is_requested() {
            if i >= unpaced {
                // In slices: a quiet stretch of the night must still hear a shutdown.
                let next = due(i);
                while let Some(wait) = next.checked_duration_since(Instant::now()) {
                    if wait.is_zero() || shutdown.is_requested() {
                        break;
                    }
                    std::thread::sleep(wait.min(Duration::from_millis(100)));
                }
                if shutdown.is_requested() {
                    break;
                }
            }
            while let Some(r) = registrations.next_if(|r| r.before <= i) {
                register(r);
            }
            // A batch ends where the next registration is due.
            let stop = registrations.peek().map_or(self.plan.len(), |r| r.before);
            let now = Instant::now();
            let mut end = i + 1;
            while end < stop && end - i < CHUNK && (end < unpaced || due(end) <= now) {
                end += 1;
            }
            let stamp = now_millis();
            let batch: Vec<Inbound> = (i..end).map(|k| self.ballot(k, stamp)).collect();
            if !send(batch) {
                break;
            }
            i = end;
        }
        i
    }
}
