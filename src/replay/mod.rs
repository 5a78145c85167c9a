//! `votestream replay`: plays a recorded night again, through the
//! processor and the aggregator, into a store of its own (a new SQLite file
//! or PostgreSQL database), so a rehearsal never touches the live election.
//!
//! - The source is opened read-only: nothing of the live election changes.
//! - The target gets the source's registry (elections, candidates, voters),
//!   then every recorded ballot in received order ([`recording`]), at the
//!   chosen speed, through `process::run` and the built-in engine, as in
//!   `votestream run`.
//! - Votes are re-driven as ballots (JSON bytes) and decided again: with
//!   the same registry, in the same order and in batches cut where the
//!   original's were, they are accepted again and numbered in the same
//!   order, so the engine counts the same minute windows and late votes. Rejections are re-driven as the decisions they
//!   were (reason, detail, raw bytes, time received), because several
//!   reasons rest on what a replay cannot bring back: the processor's clock
//!   at the time (`cast_in_future`), a body kept only to its first 4 KiB
//!   (`too_large`), a seal of the race desk (`polls_closed`).
//! - The race desk takes the original desk's recorded looks again
//!   ([`desk`]), so its seals and events are the original's, in order.
//! - Then the alerts stage reads the replayed ledger ([`alerts`]): the same
//!   ledger in the same order, the same alerts.
//! - In the distributed shape the recording can be the `ballots` topic
//!   itself ([`topic`]; each ballot decided again from its bytes), and the
//!   replay can run through a topic prefix of its own ([`onto`]).
//! - Replaying again into the same target is idempotent: every ballot id is
//!   already recorded there with the same content, so the store's ballot-id
//!   rules skip it as a replay and nothing is counted twice, and the desk
//!   takes no look the target has taken.

mod alerts;
mod compare;
mod desk;
mod onto;
mod recording;
mod topic;

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::time::Instant;

use anyhow::Context;

pub use compare::{compare, Comparison};
pub use recording::Speed;

use crate::aggregate::engine::{Engine, Feed};
use crate::bus::kafka::KafkaBus;
use crate::bus::memory;
use crate::model::Millis;
use crate::process::{self, Processor, Registry};
use crate::results::At;
use crate::shutdown::Shutdown;
use crate::stats::Stats;
use crate::store::{Store, StoreKind, StoreUrl};

/// Voters copied to the target per transaction.
const VOTER_CHUNK: usize = 10_000;

/// What a replay reads the night from.
pub enum ReplayFrom {
    /// A store, opened read-only: its votes and rejections.
    Store(StoreUrl),
    /// A Kafka bus's `ballots` topic (`topic`), the ballots as cast.
    Topic(KafkaBus),
}

pub struct ReplayConfig {
    pub from: ReplayFrom,
    /// A topic prefix of the replay's own to play the night through, with
    /// its own consumer groups (the distributed shape); none: in process.
    pub onto: Option<KafkaBus>,
    /// Where the registry is copied from when the night comes from a topic
    /// (opened read-only); none: the target holds it already.
    pub registry: Option<StoreUrl>,
    pub into: StoreUrl,
    pub speed: Speed,
    /// Only ballots received at or after this moment (recording time, ms).
    pub from_time: Option<Millis>,
    /// Only ballots received at or before this moment.
    pub until: Option<Millis>,
    /// The aggregator's lateness allowance: the original run's, for the
    /// same minute windows.
    pub allowance_ms: Millis,
}

/// What a replay did.
#[derive(Debug)]
pub struct Replayed {
    pub ballots: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Ballots the target had already recorded (an earlier replay).
    pub replays: u64,
    /// Events the race desk recorded, looking again where the original's did.
    pub desk_events: u64,
    /// Alert changes the alerts stage recorded over the replayed ledger
    /// (none for a replay from a moment of the night on).
    pub alert_changes: i64,
    pub voters_copied: u64,
    pub seconds: f64,
}

pub fn run(cfg: &ReplayConfig, shutdown: &Shutdown) -> anyhow::Result<Replayed> {
    if let Some(onto) = &cfg.onto {
        // The live night's topics have no prefix, or the source's.
        let live = match &cfg.from {
            ReplayFrom::Topic(bus) => bus.prefix.as_str(),
            ReplayFrom::Store(_) => "",
        };
        if onto.prefix.is_empty() || onto.prefix == live {
            anyhow::bail!(
                "--bus {}: a replay's topics need a prefix of their own (`?prefix=…`), \
                 not the live night's",
                onto.bootstrap
            );
        }
    }
    let source_url = match &cfg.from {
        ReplayFrom::Store(url) => Some(url),
        ReplayFrom::Topic(_) => cfg.registry.as_ref(),
    };
    if let Some(url) = source_url.filter(|u| same_store(u, &cfg.into)) {
        anyhow::bail!(
            "--into names the store replayed from ({}): a replay goes into a store of its own",
            url.as_str()
        );
    }
    let mut source = source_url
        .map(|u| {
            u.open_read_only()
                .with_context(|| format!("opening {} read-only", u.as_str()))
        })
        .transpose()?;
    if *cfg.into.kind() == StoreKind::Postgres {
        create_database(cfg.into.as_str())?;
    }
    let mut target = cfg
        .into
        .open()
        .with_context(|| format!("opening {}", cfg.into.as_str()))?;
    let voters_copied = match &mut source {
        Some(source) => copy_registry(&mut **source, &mut *target)?,
        None => 0,
    };
    // The desk's looks are in a store, and from the night's start only: a
    // desk shown part of the night would decide other things.
    let looks = match (&mut source, &cfg.from, cfg.from_time) {
        (Some(source), ReplayFrom::Store(_), None) => {
            desk::looks(&mut **source, &mut *target, cfg.until)?
        }
        _ => Vec::new(),
    };
    let tape: Box<dyn recording::Tape> = match (&cfg.from, source) {
        (ReplayFrom::Store(_), Some(source)) => Box::new(recording::Recording::new(source)),
        (ReplayFrom::Topic(bus), _) => Box::new(topic::TopicTape::open(bus, cfg.from_time)?),
        (ReplayFrom::Store(_), None) => unreachable!("a store source is opened above"),
    };
    let processor = Processor::new(Registry::load(&mut *target)?);
    let mut ballots = recording::Paced::new(tape, cfg.speed, cfg.from_time, cfg.until);
    let stats = Stats::default();
    let started = Instant::now();
    let recorded = AtomicBool::new(false);
    let desk_events = std::thread::scope(|s| -> anyhow::Result<u64> {
        let desking =
            s.spawn(|| desk::run(looks, &cfg.into, cfg.allowance_ms, &recorded, shutdown));
        let played = match &cfg.onto {
            None => in_process(
                cfg,
                &processor,
                &mut *target,
                &mut ballots,
                &stats,
                shutdown,
            ),
            Some(bus) => onto::run(
                bus,
                &mut ballots,
                &processor,
                &mut *target,
                &cfg.into,
                cfg.allowance_ms,
                &stats,
                shutdown,
            ),
        };
        recorded.store(true, Release);
        let desked = desking
            .join()
            .map_err(|_| anyhow::anyhow!("the race desk panicked"))?;
        played?;
        desked
    })?;
    // From the night's start only, as the desk: a stage shown part of the
    // night would decide other things.
    let alert_changes = if cfg.from_time.is_some() || shutdown.is_requested() {
        0
    } else {
        let original = match (&cfg.from, cfg.until) {
            (ReplayFrom::Store(url), None) => Some(url.open_read_only()?),
            _ => None,
        };
        alerts::run(original, &cfg.into)?
    };
    // `compare` asks the target for its results as of the position of each
    // result the original showed, on a store it opens read-only (so keeps
    // no checkpoints): one walk of the ledger now leaves a checkpoint every
    // few thousand positions, and each of those queries a short walk.
    if !shutdown.is_requested() {
        for e in target.elections()? {
            target.results_at(&e.election.election_id, At::Seq(i64::MAX))?;
        }
    }
    Ok(Replayed {
        ballots: stats.consumed.load(Relaxed),
        accepted: stats.accepted.load(Relaxed),
        rejected: stats.rejected.load(Relaxed),
        replays: stats.replays.load(Relaxed),
        desk_events,
        alert_changes,
        voters_copied,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The processor and the built-in engine in this process, over the
/// in-process bus, as `votestream run` has them.
fn in_process(
    cfg: &ReplayConfig,
    processor: &Processor,
    target: &mut dyn Store,
    ballots: &mut recording::Paced,
    stats: &Stats,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let mut engine = Engine::open(cfg.into.open()?, cfg.allowance_ms)?;
    let (vote_tx, vote_rx) = memory::votes();
    std::thread::scope(|s| {
        let counting = s.spawn(|| engine.run(Feed::Bus(Box::new(vote_rx)), stats, shutdown));
        let processed = process::run(processor, target, ballots, Some(&vote_tx), stats, shutdown);
        drop(vote_tx); // ends the engine's feed
        let counted = counting
            .join()
            .map_err(|_| anyhow::anyhow!("the aggregator panicked"))?;
        processed?;
        Ok(counted?)
    })
}

/// Whether two URLs name one store (the same file, or the same database
/// on the same server).
fn same_store(a: &StoreUrl, b: &StoreUrl) -> bool {
    match (a.kind(), b.kind()) {
        (StoreKind::SqliteFile(x), StoreKind::SqliteFile(y)) => {
            let canon = |p: &str| std::fs::canonicalize(p).ok();
            x == y || canon(x).is_some_and(|c| Some(c) == canon(y))
        }
        (StoreKind::Postgres, StoreKind::Postgres) => {
            let key = |u: &StoreUrl| {
                let c: postgres::Config = u.as_str().parse().ok()?;
                Some((
                    format!("{:?}", c.get_hosts()),
                    c.get_ports().to_vec(),
                    c.get_dbname().map(str::to_string),
                ))
            };
            a.as_str() == b.as_str() || key(a).is_some_and(|k| Some(k) == key(b))
        }
        _ => false,
    }
}

/// Creates the PostgreSQL database a URL names if the server has none of
/// that name (a replay's target is usually new), from the `postgres`
/// database of the same server.
fn create_database(url: &str) -> anyhow::Result<()> {
    let config: postgres::Config = url.parse().context("--into")?;
    let Some(name) = config.get_dbname().map(str::to_string) else {
        return Ok(());
    };
    let mut admin = config.clone();
    admin.dbname("postgres");
    let mut c = admin
        .connect(postgres::NoTls)
        .with_context(|| format!("connecting to the server of {url} to create database {name}"))?;
    let exists = c.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])?;
    if exists.is_none() {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        c.batch_execute(&format!("CREATE DATABASE {quoted}"))
            .with_context(|| format!("creating database {name}"))?;
        tracing::info!(database = %name, "created the replay's database");
    }
    Ok(())
}

/// Puts the source's elections and voters into the target (those already
/// there are left as they are); returns how many voters were new.
fn copy_registry(source: &mut dyn Store, target: &mut dyn Store) -> anyhow::Result<u64> {
    for e in source.elections()? {
        target.put_election(&e.election, &e.candidates)?;
    }
    let mut nos = Vec::new();
    source.scan_voters(&mut |k| nos.push(k.voter_no))?;
    let mut copied = 0;
    for chunk in nos.chunks(VOTER_CHUNK) {
        let voters: Vec<_> = source
            .profiles(chunk)?
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        copied += target.put_voters(&voters)?;
    }
    Ok(copied)
}
