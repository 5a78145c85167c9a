//! Source concentration: which client sources (an IP, an API token) send
//! the most ballots in a sliding window, in bounded memory.
//!
//! Each bucket of stream time keeps a space-saving summary (Metwally,
//! Agrawal and El Abbadi, 2005) of at most `capacity` sources: a source
//! not in a full summary replaces the one with the smallest count and
//! inherits that count as its error. A tracked source's true count c then
//! satisfies `count − error ≤ c ≤ count`, and any source with more than
//! total/capacity is tracked. The window sums the last `window` buckets;
//! the alarm uses the lower bound, so it never fires on an estimate.

use std::collections::{HashMap, VecDeque};

/// One bucket's bounded summary.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct SpaceSaving {
    capacity: usize,
    /// source → (count, error)
    slots: HashMap<String, (u64, u64)>,
    total: u64,
}

impl SpaceSaving {
    pub fn new(capacity: usize) -> SpaceSaving {
        SpaceSaving {
            capacity: capacity.max(1),
            ..SpaceSaving::default()
        }
    }

    pub fn add(&mut self, source: &str, n: u64) {
        self.total += n;
        if let Some(slot) = self.slots.get_mut(source) {
            slot.0 += n;
            return;
        }
        if self.slots.len() < self.capacity {
            self.slots.insert(source.to_string(), (n, 0));
            return;
        }
        // Evict the smallest (ties by name, so the same input gives the
        // same summary); the newcomer inherits its count as error.
        let (victim, min) = self
            .slots
            .iter()
            .map(|(k, v)| (k, v.0))
            .min_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(b.0)))
            .map(|(k, c)| (k.clone(), c))
            .expect("a full summary has a slot");
        self.slots.remove(&victim);
        self.slots.insert(source.to_string(), (min + n, min));
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// (count, error) of a tracked source.
    pub fn get(&self, source: &str) -> Option<(u64, u64)> {
        self.slots.get(source).copied()
    }

    fn slots(&self) -> impl Iterator<Item = (&String, &(u64, u64))> {
        self.slots.iter()
    }
}

/// The heaviest source of a window, with bounds on its count.
#[derive(Clone, Debug, PartialEq)]
pub struct Heavy {
    pub source: String,
    /// Certain lower and upper bounds of its ballots in the window.
    pub low: u64,
    pub high: u64,
    pub total: u64,
}

/// The last `window` buckets' summaries.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SourceWindow {
    capacity: usize,
    window: usize,
    buckets: VecDeque<SpaceSaving>,
}

impl SourceWindow {
    pub fn new(capacity: usize, window: usize) -> SourceWindow {
        let mut buckets = VecDeque::new();
        buckets.push_back(SpaceSaving::new(capacity));
        SourceWindow {
            capacity,
            window: window.max(1),
            buckets,
        }
    }

    pub fn add(&mut self, source: &str) {
        self.buckets
            .back_mut()
            .expect("a window has a bucket")
            .add(source, 1);
    }

    /// Closes the current bucket; the oldest leaves the window.
    pub fn next_bucket(&mut self) {
        self.buckets.push_back(SpaceSaving::new(self.capacity));
        while self.buckets.len() > self.window {
            self.buckets.pop_front();
        }
    }

    /// The source with the largest certain count in the window.
    pub fn heaviest(&self) -> Option<Heavy> {
        let total: u64 = self.buckets.iter().map(SpaceSaving::total).sum();
        let mut sums: HashMap<&str, (u64, u64)> = HashMap::new();
        for b in &self.buckets {
            for (k, &(c, e)) in b.slots() {
                let s = sums.entry(k.as_str()).or_default();
                s.0 += c;
                s.1 += e;
            }
        }
        // A bucket that did not track the source may still have held up
        // to its smallest tracked count of it (or all of it, if not full).
        sums.into_iter()
            .map(|(k, (c, e))| {
                let unseen: u64 = self
                    .buckets
                    .iter()
                    .filter(|b| b.get(k).is_none())
                    .map(|b| {
                        if b.slots.len() < b.capacity {
                            0
                        } else {
                            b.slots().map(|(_, v)| v.0).min().unwrap_or(0)
                        }
                    })
                    .sum();
                Heavy {
                    source: k.to_string(),
                    low: c - e,
                    high: c + unseen,
                    total,
                }
            })
            .max_by(|a, b| a.low.cmp(&b.low).then_with(|| b.source.cmp(&a.source)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn bounds_hold_for_every_tracked_source() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut s = SpaceSaving::new(16);
        let mut truth: HashMap<String, u64> = HashMap::new();
        for _ in 0..20_000 {
            // One heavy source among a long tail.
            let k = if rng.random_bool(0.2) {
                "heavy".to_string()
            } else {
                format!("ip-{}", rng.random_range(0..2_000))
            };
            *truth.entry(k.clone()).or_default() += 1;
            s.add(&k, 1);
        }
        assert_eq!(s.total(), 20_000);
        let (c, e) = s
            .get("heavy")
            .expect("a source over total/capacity is tracked");
        let t = truth["heavy"];
        assert!(c - e <= t && t <= c, "{} ≤ {t} ≤ {c}", c - e);
        for (k, &(c, e)) in s.slots() {
            let t = truth[k];
            assert!(c - e <= t && t <= c, "{k}");
        }
    }

    #[test]
    fn the_window_forgets_old_buckets_and_bounds_the_heaviest() {
        let mut w = SourceWindow::new(8, 3);
        for _ in 0..500 {
            w.add("burst");
        }
        for i in 0..100 {
            w.add(&format!("ip-{i}"));
        }
        let h = w.heaviest().unwrap();
        assert_eq!((h.source.as_str(), h.total), ("burst", 600));
        assert!(h.low <= 500 && 500 <= h.high && h.low >= 400, "{h:?}");
        for _ in 0..3 {
            w.next_bucket();
            w.add("calm");
        }
        let h = w.heaviest().unwrap();
        assert_eq!((h.source.as_str(), h.total), ("calm", 3));
    }
}
