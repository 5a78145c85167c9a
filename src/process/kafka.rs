//! The processor on the Kafka bus. Two threads, so the store's work for one
//! batch overlaps Kafka's for the previous one:
//!
//! - the reader polls a batch of ballots, validates it, records it in the
//!   store (while a second connection fetches the voters' profiles) and
//!   renders the outcome as messages;
//! - the publisher sends each batch's messages and consumer offsets in one
//!   Kafka transaction, in order.
//!
//! See `bus::kafka::ballots` for why "store first, then Kafka" is
//! exactly-once. When a transaction fails, every batch after it is dropped
//! too and the reader goes back to the last committed offsets: a later
//! batch must never commit offsets past an unpublished one. Batches carry an
//! epoch for that; the reader's rewind and the epoch change under one lock,
//! so no batch read before the rewind is published after it.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{record_with_retry, retry, Processor, MAX_BATCH};
use crate::bus::kafka::ballots::{KafkaBallots, Prepared, PublishError, Renderer, VotePublisher};
use crate::model::Voter;
use crate::shutdown::Shutdown;
use crate::stats::Stats;
use crate::store::{Recorded, Store};

/// How long transactions may keep failing (a broker restart, an election
/// of new partition leaders) before the processor gives up and exits, to be
/// restarted: by then something is wrong that retrying will not fix.
const GIVE_UP_AFTER: Duration = Duration::from_secs(180);
/// How long reading, recording and rendering a batch should take. A vote
/// is seen only once its whole batch is committed to Kafka and counted, so
/// at full speed a batch's time is its votes' wait: 65,536 ballots took
/// 1–2 s. A Kafka transaction and the store's round trips cost each batch
/// tens of ms, so much smaller batches would slow the rate that sizes them.
const BATCH_TIME: Duration = Duration::from_millis(400);

/// The publisher's epoch, and whether the reader owes a rewind.
#[derive(Default)]
struct Epoch {
    number: u64,
    rewind: bool,
}

struct Ready {
    epoch: u64,
    consumed: u64,
    recorded: Recorded,
    messages: Prepared,
    started: Instant,
}

/// Runs until shutdown is asked, or with `until_idle` once no ballot came
/// for that long. `profiles` is a second connection to the same store.
#[allow(clippy::too_many_arguments)]
pub fn run(
    processor: &Processor,
    store: &mut dyn Store,
    profiles: &mut dyn Store,
    ballots: &KafkaBallots,
    publisher: &mut VotePublisher,
    stats: &Stats,
    shutdown: &Shutdown,
    until_idle: Option<Duration>,
) -> anyhow::Result<()> {
    let epoch = Mutex::new(Epoch::default());
    let (tx, rx) = crossbeam_channel::bounded::<Ready>(1);
    std::thread::scope(|s| {
        let publishing = s.spawn(|| publish_all(rx, publisher, &epoch, stats));
        let read = read_all(
            processor, store, profiles, ballots, &tx, &epoch, shutdown, until_idle,
        );
        drop(tx);
        let published = publishing
            .join()
            .map_err(|_| anyhow::anyhow!("the Kafka publisher thread panicked"))?;
        read.and(published)
    })
}

#[allow(clippy::too_many_arguments)]
fn read_all(
    processor: &Processor,
    store: &mut dyn Store,
    profiles: &mut dyn Store,
    ballots: &KafkaBallots,
    tx: &crossbeam_channel::Sender<Ready>,
    epoch: &Mutex<Epoch>,
    shutdown: &Shutdown,
    until_idle: Option<Duration>,
) -> anyhow::Result<()> {
    let mut renderer = Renderer::default();
    let mut last_ballot = Instant::now();
    let mut batches = 0u64;
    let crash_after = crash_after_record();
    let mut limit = MAX_BATCH;
    while !shutdown.is_requested() {
        let current = {
            let mut e = epoch
                .lock()
                .map_err(|_| anyhow::anyhow!("epoch lock poisoned"))?;
            if e.rewind {
                rewind(ballots, shutdown)?;
                e.rewind = false;
            }
            e.number
        };
        let mut polled = ballots.poll_batch(limit, Duration::from_millis(100))?;
        if polled.is_empty() {
            if until_idle.is_some_and(|idle| last_ballot.elapsed() >= idle) {
                break;
            }
            continue;
        }
        last_ballot = Instant::now();
        let started = Instant::now();
        let consumed = polled.inbound.len() as u64;
        let inbound = std::mem::take(&mut polled.inbound);
        let (batch, _) = processor.validate_intake(inbound, crate::model::now_millis());
        // Every validated vote's voter: a superset of what gets published.
        let nos: Vec<i64> = batch.votes.iter().map(|v| v.voter_no).collect();
        let (recorded, voters) = std::thread::scope(|s| {
            let fetch = s.spawn(|| -> anyhow::Result<HashMap<i64, Voter>> {
                if nos.is_empty() {
                    return Ok(HashMap::new());
                }
                Ok(retry(shutdown, || profiles.profiles(&nos))?
                    .into_iter()
                    .collect())
            });
            let recorded = record_with_retry(store, batch, shutdown);
            let voters = fetch
                .join()
                .map_err(|_| anyhow::anyhow!("the profile fetch panicked"))?;
            anyhow::Ok((recorded?, voters?))
        })?;
        batches += 1;
        if crash_after == Some(batches) {
            crash_now();
        }
        let stored = started.elapsed();
        let messages = renderer.render(profiles, &recorded, &voters, polled)?;
        limit = super::batch_for(consumed as usize, started.elapsed(), BATCH_TIME);
        tracing::debug!(consumed, ?stored, took = ?started.elapsed(), "batch recorded and rendered");
        let ready = Ready {
            epoch: current,
            consumed,
            recorded,
            messages,
            started,
        };
        if tx.send(ready).is_err() {
            break; // the publisher failed; its error is reported
        }
    }
    Ok(())
}

/// Goes back to the committed offsets, waiting while the group
/// coordinator is away (a broker restart): only a transient error is
/// tried again, for as long as failing transactions are tolerated.
fn rewind(ballots: &KafkaBallots, shutdown: &Shutdown) -> anyhow::Result<()> {
    let since = Instant::now();
    loop {
        match ballots.rewind() {
            Ok(()) => return Ok(()),
            Err(e)
                if e.is_transient() && since.elapsed() < GIVE_UP_AFTER && !shutdown.is_forced() =>
            {
                tracing::warn!(error = %e, "reading the committed offsets; trying again");
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context("going back to the committed offsets"))
            }
        }
    }
}

fn publish_all(
    rx: crossbeam_channel::Receiver<Ready>,
    publisher: &mut VotePublisher,
    epoch: &Mutex<Epoch>,
    stats: &Stats,
) -> anyhow::Result<()> {
    let mut failing_since: Option<Instant> = None;
    let mut aborts = 0u32;
    let mut last_reopen = None;
    for ready in rx {
        let current = epoch
            .lock()
            .map_err(|_| anyhow::anyhow!("epoch lock poisoned"))?
            .number;
        if ready.epoch != current {
            continue; // read before a rewind: it will be read again
        }
        let publishing = Instant::now();
        match publisher.publish(ready.messages) {
            Ok(()) => {
                tracing::debug!(took = ?publishing.elapsed(), "batch published");
                aborts = 0;
                failing_since = None;
                let r = &ready.recorded;
                metrics::histogram!(crate::metric_names::BATCH_COMMIT_SECONDS)
                    .record(ready.started.elapsed().as_secs_f64());
                super::count_batch(r);
                stats.record_batch(ready.consumed, &r.votes, &r.rejections, r.replays);
                stats
                    .republished
                    .fetch_add(r.republish_votes.len() as u64, Relaxed);
            }
            Err(e @ PublishError::Wedged(_)) => {
                // librdkafka is stuck in the commit (see PublishError::Wedged);
                // a new producer fences the stuck one and aborts its
                // transaction, and the batches are read again.
                tracing::error!(error = %e, "replacing the stuck Kafka producer; reading again");
                reopen(publisher)?;
                read_again(epoch)?;
            }
            Err(PublishError::Fatal(e)) => {
                // Fenced: after a long outage the broker aborted our
                // transaction and bumped the epoch. Once, start over; twice
                // in a minute, another process surely runs as this instance.
                if last_reopen.is_some_and(|at: Instant| at.elapsed() < Duration::from_secs(60)) {
                    return Err(anyhow::Error::new(PublishError::Fatal(e)).context(
                        "fenced twice in a minute: is another processor running with this --instance?",
                    ));
                }
                tracing::warn!(error = %e, "producer fenced; starting a new one and reading again");
                last_reopen = Some(Instant::now());
                reopen(publisher)?;
                read_again(epoch)?;
            }
            Err(e) => {
                aborts += 1;
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() > GIVE_UP_AFTER {
                    return Err(anyhow::Error::new(e).context(format!(
                        "{aborts} Kafka transactions aborted in a row over {:?}",
                        since.elapsed()
                    )));
                }
                tracing::warn!(error = %e, aborts, "batch not published; reading it again");
                std::thread::sleep(Duration::from_millis(100 * u64::from(aborts.min(10))));
                read_again(epoch)?;
            }
        }
    }
    Ok(())
}

/// A new producer of the same transactional id. Its start needs the
/// transaction coordinator, which may still be moving after a restart: try
/// for as long as failing transactions are tolerated.
fn reopen(publisher: &mut VotePublisher) -> anyhow::Result<()> {
    let since = Instant::now();
    loop {
        match publisher.reopen() {
            Ok(()) => return Ok(()),
            Err(e) if since.elapsed() < GIVE_UP_AFTER => {
                tracing::warn!(error = %e, "starting a new Kafka producer; trying again");
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => return Err(anyhow::Error::new(e).context("starting a new Kafka producer")),
        }
    }
}

/// Drops every batch in flight (a new epoch) and has the reader go back to
/// the committed offsets, in one step under the lock.
fn read_again(epoch: &Mutex<Epoch>) -> anyhow::Result<()> {
    let mut e = epoch
        .lock()
        .map_err(|_| anyhow::anyhow!("epoch lock poisoned"))?;
    e.number += 1;
    e.rewind = true;
    Ok(())
}

/// A test hook: `VOTESTREAM_CRASH_AFTER_RECORD=N` kills the processor
/// (SIGKILL, by itself) right after the store committed its Nth batch and
/// before Kafka heard of it: the one moment the exactly-once design exists
/// for, which a kill from outside hits only by luck.
fn crash_after_record() -> Option<u64> {
    std::env::var("VOTESTREAM_CRASH_AFTER_RECORD")
        .ok()?
        .parse()
        .ok()
}

fn crash_now() -> ! {
    tracing::warn!("VOTESTREAM_CRASH_AFTER_RECORD: killing this processor now");
    // SAFETY: signals this very process.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    std::process::abort()
}
