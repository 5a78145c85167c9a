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

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

/// One bucket's bounded summary.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct SpaceSaving {
    capacity: usize,
    /// source → (count, error)
    slots: HashMap<String, (u64, u64), Hasher>,
    total: u64,
    /// Every slot as (count, source) when last placed here, smallest first.
    /// A count only grows, so an entry that is out of date is too small and
    /// comes out first: checked against its slot when it does, and put back
    /// with the count of now. So the victim is found in O(log capacity)
    /// instead of a scan of every slot per newcomer. Rebuilt after a resume.
    #[serde(skip)]
    order: BinaryHeap<Reverse<(u64, String)>>,
}

/// Sources are chosen by clients: a keyed hash, seeded per process.
type Hasher = foldhash::quality::RandomState;

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
            self.order.push(Reverse((n, source.to_string())));
            return;
        }
        // Evict the smallest (ties by name, so the same input gives the
        // same summary); the newcomer inherits its count as error.
        let min = self.pop_smallest();
        self.slots.insert(source.to_string(), (min + n, min));
        self.order.push(Reverse((min + n, source.to_string())));
    }

    /// Removes the slot with the smallest count (the first name among
    /// equals) and returns its count.
    fn pop_smallest(&mut self) -> u64 {
        if self.order.len() != self.slots.len() {
            self.order = self
                .slots
                .iter()
                .map(|(k, v)| Reverse((v.0, k.clone())))
                .collect();
        }
        loop {
            let Reverse((was, source)) = self.order.pop().expect("a full summary has a slot");
            let now = self.slots.get(&source).expect("each entry has its slot").0;
            if now == was {
                self.slots.remove(&source);
                return now;
            }
            self.order.push(Reverse((now, source)));
        }
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

    /// The summary as first written: a scan of every slot per newcomer.
    fn by_scan(capacity: usize, stream: &[String]) -> Vec<(String, (u64, u64))> {
        let mut slots: HashMap<String, (u64, u64)> = HashMap::new();
        for k in stream {
            if let Some(slot) = slots.get_mut(k) {
                slot.0 += 1;
            } else if slots.len() < capacity {
                slots.insert(k.clone(), (1, 0));
            } else {
                let (victim, min) = slots
                    .iter()
                    .map(|(k, v)| (k.clone(), v.0))
                    .min_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)))
                    .unwrap();
                slots.remove(&victim);
                slots.insert(k.clone(), (min + 1, min));
            }
        }
        let mut out: Vec<_> = slots.into_iter().collect();
        out.sort();
        out
    }

    #[test]
    fn evicts_as_a_scan_of_every_slot_would_across_a_resume() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for capacity in [1, 4, 64] {
            let stream: Vec<String> = (0..20_000)
                .map(|_| match rng.random_range(0..10) {
                    0..=2 => "heavy".to_string(),
                    _ => format!("kiosk-{:03}", rng.random_range(0..1_200)),
                })
                .collect();
            let mut s = SpaceSaving::new(capacity);
            for (i, k) in stream.iter().enumerate() {
                if i == 7_777 {
                    // Saved and taken back, as the stage does: the order
                    // of eviction is rebuilt from the slots.
                    s = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
                }
                s.add(k, 1);
            }
            let mut got: Vec<_> = s.slots().map(|(k, v)| (k.clone(), *v)).collect();
            got.sort();
            assert_eq!(got, by_scan(capacity, &stream), "capacity {capacity}");
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
