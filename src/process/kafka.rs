//! The processor on the Kafka bus: read a batch of ballots, validate it,
//! record it in the store, publish the outcome in one Kafka transaction with
//! the consumer offsets (see `bus::kafka::ballots` for why that order is
//! exactly-once). One batch at a time: a rebalance happens only inside a
//! poll, so it never finds a batch half done.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::{record_with_retry, Processor, MAX_BATCH};
use crate::bus::kafka::ballots::{KafkaBallots, PublishError, VotePublisher};
use crate::shutdown::Shutdown;
use crate::stats::Stats;
use crate::store::Store;

/// How long transactions may keep failing (a broker restart, an election
/// of new partition leaders) before the processor gives up and exits, to be
/// restarted: by then something is wrong that retrying will not fix.
const GIVE_UP_AFTER: Duration = Duration::from_secs(180);

/// Runs until shutdown is asked, or with `until_idle` once no ballot came
/// for that long.
pub fn run(
    processor: &Processor,
    store: &mut dyn Store,
    ballots: &KafkaBallots,
    publisher: &mut VotePublisher,
    stats: &Stats,
    shutdown: &Shutdown,
    until_idle: Option<Duration>,
) -> anyhow::Result<()> {
    let mut aborts = 0u32;
    let mut failing_since = None;
    let mut batches = 0u64;
    let crash_after = crash_after_record();
    let mut last_ballot = Instant::now();
    while !shutdown.is_requested() {
        let polling = Instant::now();
        let mut polled = ballots.poll_batch(MAX_BATCH, Duration::from_millis(100))?;
        let poll_time = polling.elapsed();
        if polled.is_empty() {
            if until_idle.is_some_and(|idle| last_ballot.elapsed() >= idle) {
                break;
            }
            continue;
        }
        last_ballot = Instant::now();
        let n = polled.inbound.len() as u64;
        let started = Instant::now();
        let inbound = std::mem::take(&mut polled.inbound);
        let (batch, _) = processor.validate_intake(inbound, crate::model::now_millis());
        let validated = started.elapsed();
        let recorded = record_with_retry(store, batch, shutdown)?;
        let stored = started.elapsed();
        batches += 1;
        if crash_after == Some(batches) {
            crash_now();
        }
        match publisher.publish(store, &recorded, &polled) {
            Ok(()) => {
                tracing::debug!(n, ?poll_time, ?validated, ?stored, total = ?started.elapsed(), "batch");
                aborts = 0;
                failing_since = None;
                metrics::histogram!(crate::serve::metrics::BATCH_COMMIT_SECONDS)
                    .record(started.elapsed().as_secs_f64());
                crate::serve::metrics::count_batch(&recorded);
                stats.record_batch(n, &recorded);
                stats
                    .republished
                    .fetch_add(recorded.republish_votes.len() as u64, Relaxed);
            }
            Err(PublishError::Fatal(e)) => return Err(PublishError::Fatal(e).into()),
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
                ballots.rewind(&polled);
            }
        }
    }
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
