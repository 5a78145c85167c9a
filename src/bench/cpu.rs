//! Where a phase's CPU went, machine-wide, read from `/proc` before and
//! after it: this process (every stage, the simulator and the freshness
//! probe), the PostgreSQL server, the JVMs running (Kafka's broker), the
//! programs this process ran and waited for (ProducerPerformance), the
//! rest, and what stayed idle. On 2 cores shared by everything, a rate is
//! set by the CPU each vote costs all of them together; this shows whose.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::Row;
use crate::stats::Stats;

/// Counters at one moment, in seconds of CPU.
#[derive(Clone, Copy)]
pub(crate) struct Snapshot {
    at: Instant,
    own: f64,
    children: f64,
    postgres: f64,
    java: f64,
    busy: f64,
    total: f64,
}

/// CPU seconds spent between two snapshots, by whom.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Spent {
    pub wall: f64,
    pub own: f64,
    pub children: f64,
    pub postgres: f64,
    pub java: f64,
    pub rest: f64,
    pub idle: f64,
}

impl Snapshot {
    pub(crate) fn take() -> Snapshot {
        let tick = ticks_per_second();
        let (postgres, java) = servers(tick);
        let (busy, total) = machine(tick);
        Snapshot {
            at: Instant::now(),
            own: crate::stats::process_cpu().as_secs_f64(),
            children: children_cpu(),
            postgres,
            java,
            busy,
            total,
        }
    }

    /// What was spent from `self` until `later`.
    pub(crate) fn until(&self, later: &Snapshot) -> Spent {
        let d = |a: f64, b: f64| (b - a).max(0.0);
        let own = d(self.own, later.own);
        let children = d(self.children, later.children);
        let postgres = d(self.postgres, later.postgres);
        let java = d(self.java, later.java);
        let busy = d(self.busy, later.busy);
        Spent {
            wall: later.at.saturating_duration_since(self.at).as_secs_f64(),
            own,
            children,
            postgres,
            java,
            rest: (busy - own - children - postgres - java).max(0.0),
            idle: (d(self.total, later.total) - busy).max(0.0),
        }
    }
}

impl Spent {
    /// "votestream 26.1 µs, PostgreSQL 16.0 µs, …" for each of `n` units;
    /// a party that spent nothing is left out.
    pub(crate) fn per(&self, n: f64, children: &str) -> String {
        let us = |s: f64| 1e6 * s / n.max(1.0);
        let mut parts = vec![format!("votestream {:.1} µs", us(self.own))];
        for (name, s) in [
            ("PostgreSQL", self.postgres),
            ("JVM (broker)", self.java),
            (children, self.children),
            ("rest of the machine", self.rest),
        ] {
            if s > 0.005 {
                parts.push(format!("{name} {:.1} µs", us(s)));
            }
        }
        parts.push(format!("idle {:.1} µs", us(self.idle)));
        parts.join(", ")
    }

    /// Every CPU second the machine spent (not idle).
    pub(crate) fn busy(&self) -> f64 {
        self.own + self.children + self.postgres + self.java + self.rest
    }

    /// What the machine spent on each of `n` units, in µs.
    pub(crate) fn busy_us(&self, n: f64) -> f64 {
        1e6 * self.busy() / n.max(1.0)
    }

    /// The "CPU a vote, end to end" row: the whole machine's µs a vote,
    /// then by party, and `more` after them.
    pub(crate) fn vote_row(&self, votes: f64, more: &str) -> Row {
        Row {
            what: "CPU a vote, end to end (whole machine)".into(),
            figure: format!("{:.1} µs", self.busy_us(votes)),
            note: format!(
                "{} (over {:.1} s){more}",
                self.per(votes, "programs run"),
                self.wall
            ),
        }
    }
}

fn ticks_per_second() -> f64 {
    // SAFETY: a plain query of a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Programs this process ran and has waited for.
fn children_cpu() -> f64 {
    // SAFETY: getrusage writes into the struct given.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut r) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(r.ru_utime) + tv(r.ru_stime)
}

/// Busy and total CPU seconds of the whole machine, from `/proc/stat`.
fn machine(tick: f64) -> (f64, f64) {
    let Ok(text) = std::fs::read_to_string("/proc/stat") else {
        return (0.0, 0.0);
    };
    let fields: Vec<f64> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: f64 = fields.iter().sum();
    // idle and iowait are the 4th and 5th.
    let idle = fields.get(3).copied().unwrap_or(0.0) + fields.get(4).copied().unwrap_or(0.0);
    ((total - idle) / tick, total / tick)
}

/// One process's line of `/proc/PID/stat`.
#[derive(Debug, PartialEq)]
struct Proc {
    comm: String,
    ppid: u32,
    /// utime + stime, in ticks.
    own: f64,
    /// cutime + cstime: children it has waited for, in ticks.
    reaped: f64,
}

fn parse_stat(line: &str) -> Option<Proc> {
    // The name is in parentheses and may hold spaces or parentheses itself.
    let (head, tail) = line.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_string();
    let f: Vec<&str> = tail.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    Some(Proc {
        comm,
        ppid: f.get(1)?.parse().ok()?,
        own: num(11)? + num(12)?,
        reaped: num(13)? + num(14)?,
    })
}

/// CPU seconds of the PostgreSQL server (every process named `postgres`,
/// plus the backends its postmaster has reaped) and of running JVMs.
fn servers(tick: f64) -> (f64, f64) {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (0.0, 0.0);
    };
    let procs: Vec<(u32, Proc)> = dir
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let line = std::fs::read_to_string(e.path().join("stat")).ok()?;
            Some((pid, parse_stat(&line)?))
        })
        .collect();
    let is_postgres = |pid: u32| procs.iter().any(|(p, s)| *p == pid && s.comm == "postgres");
    let mut postgres = 0.0;
    let mut java = 0.0;
    for (_, p) in &procs {
        match p.comm.as_str() {
            "postgres" => {
                postgres += p.own;
                if !is_postgres(p.ppid) {
                    postgres += p.reaped; // the postmaster: its ended backends
                }
            }
            "java" => java += p.own,
            _ => {}
        }
    }
    (postgres / tick, java / tick)
}

/// Runs `f` (a pipeline fed by a simulator), and what the machine spent
/// from the first ballot sent until `f` returned: the registry's load
/// before is left out, as it is of the pipeline's rate.
pub(crate) fn from_first_ballot<T>(stats: &Stats, f: impl FnOnce() -> T) -> (T, Option<Spent>) {
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let first = s.spawn(|| {
            while stats.sent.load(Relaxed) == 0 {
                if done.load(Relaxed) {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Some(Snapshot::take())
        });
        let out = f();
        let after = Snapshot::take();
        done.store(true, Relaxed);
        let before = first.join().ok().flatten();
        (out, before.map(|b| b.until(&after)))
    })
}

/// The CPU each vote may cost the whole machine for `rate` votes/s on
/// `cores` cores, in µs.
pub(crate) fn budget_us(cores: usize, rate: f64) -> f64 {
    1e6 * cores as f64 / rate.max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_spaces_and_parentheses_in_the_name_parses() {
        let line =
            "4242 (rdk:broker (1)) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 9 0";
        let p = parse_stat(line).expect("parsed");
        assert_eq!(p.comm, "rdk:broker (1)");
        assert_eq!(p.ppid, 17);
        assert_eq!(p.own, 300.0);
        assert_eq!(p.reaped, 10.0);
    }

    #[test]
    fn spent_splits_the_busy_time_and_never_goes_negative() {
        let t = Instant::now();
        let a = Snapshot {
            at: t,
            own: 1.0,
            children: 0.0,
            postgres: 5.0,
            java: 2.0,
            busy: 10.0,
            total: 20.0,
        };
        let b = Snapshot {
            at: t + Duration::from_secs(2),
            own: 2.5,
            children: 0.5,
            postgres: 6.0,
            java: 2.5,
            busy: 14.0,
            total: 24.0,
        };
        let s = a.until(&b);
        assert_eq!(s.wall, 2.0);
        assert_eq!(
            (s.own, s.children, s.postgres, s.java),
            (1.5, 0.5, 1.0, 0.5)
        );
        assert_eq!(s.rest, 0.5);
        assert_eq!(s.idle, 0.0);
        assert_eq!(s.busy(), 4.0);
        // Counters that went backwards (a process gone) count as nothing.
        assert_eq!(b.until(&a).own, 0.0);
        let text = s.per(1e6, "ProducerPerformance");
        assert!(
            text.starts_with("votestream 1.5 µs, PostgreSQL 1.0 µs"),
            "{text}"
        );
        assert!(text.contains("ProducerPerformance 0.5 µs"), "{text}");
    }

    #[test]
    fn this_process_is_seen_spending_cpu() {
        let a = Snapshot::take();
        let mut x = 0u64;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let s = a.until(&Snapshot::take());
        assert!(s.own > 0.0, "{s:?}");
        assert!(s.busy() >= s.own, "{s:?}");
    }

    #[test]
    fn the_budget_is_the_cores_over_the_rate() {
        assert_eq!(budget_us(2, 50_000.0), 40.0);
    }
}
