//! Getting a batch into the store whatever happens: a store that is busy
//! or briefly away is waited for (only errors that can clear are retried),
//! and a batch the store refuses because of what one of its ballots holds
//! is split until the offending ballots are found, each recorded as a
//! rejection that says why; the rest commit.

use crate::edge;
use crate::model::{RejectReason, Rejection, Vote};
use crate::shutdown::Shutdown;
use crate::store::{Backoff, Batch, ErrorClass, Recorded, Store, StoreError};

/// Records a batch: transient errors are retried with backoff; a content
/// error isolates the ballots that cause it (see the module doc). Only a
/// permanent error, or a transient one that outlasts the backoff, comes back.
pub fn record_with_retry(
    store: &mut dyn Store,
    batch: Batch,
    shutdown: &Shutdown,
) -> Result<Recorded, StoreError> {
    match record_transient(store, batch, shutdown) {
        Ok(r) => Ok(r),
        Err((e, batch)) if e.class() == ErrorClass::Content => {
            tracing::warn!(error = %e, items = len(&batch), "the store refused a batch for its content; isolating the ballots that cause it");
            let mut out = Recorded::default();
            isolate(store, batch, e, shutdown, &mut out)?;
            Ok(out)
        }
        Err((e, _)) => Err(e),
    }
}

/// One `record` call, retried while its error is transient.
// The batch comes back with the error, as from `Store::record`: it is moved,
// not copied, so its size on the stack costs nothing per ballot.
#[allow(clippy::result_large_err)]
fn record_transient(
    store: &mut dyn Store,
    mut batch: Batch,
    shutdown: &Shutdown,
) -> Result<Recorded, (StoreError, Batch)> {
    let mut backoff = Backoff::default();
    loop {
        match store.record(batch) {
            Ok(r) => return Ok(r),
            Err((e, back)) => {
                if !backoff.wait(&e, shutdown) {
                    return Err((e, back));
                }
                batch = back;
            }
        }
    }
}

fn len(b: &Batch) -> usize {
    b.votes.len() + b.rejections.len()
}

/// Records a batch the store refused with `error` (a content error): one
/// ballot is recorded as a rejection instead; more are split in halves,
/// each recorded on its own (and split again if refused). A batch with k
/// bad ballots among n costs about 2·k·log2(n) transactions.
fn isolate(
    store: &mut dyn Store,
    mut batch: Batch,
    error: StoreError,
    shutdown: &Shutdown,
    out: &mut Recorded,
) -> Result<(), StoreError> {
    if len(&batch) <= 1 {
        let (refused, was_vote) = match (batch.votes.pop(), batch.rejections.pop()) {
            (Some(v), _) => (refused_vote(v, &error), true),
            (None, Some(r)) => (refused_rejection(r, &error), false),
            (None, None) => return Ok(()),
        };
        tracing::warn!(ballot_id = %refused.ballot_id, %error, "the store refused a ballot; recorded as a rejection");
        let mut one = record_refused(store, refused, shutdown)?;
        if was_vote {
            // The waiter holds the vote's place: its answer is the rejection.
            one.vote_fates = std::mem::take(&mut one.rejection_fates);
        }
        merge(out, one);
        return Ok(());
    }
    for half in halves(batch) {
        match record_transient(store, half, shutdown) {
            Ok(r) => merge(out, r),
            Err((e, half)) if e.class() == ErrorClass::Content => {
                isolate(store, half, e, shutdown, out)?
            }
            Err((e, _)) => return Err(e),
        }
    }
    Ok(())
}

/// Splits a batch in two halves of its items (votes first, in order), each
/// rejection keeping its place among the votes of its half.
fn halves(batch: Batch) -> [Batch; 2] {
    let Batch {
        mut votes,
        mut rejections,
        mut rejections_after,
    } = batch;
    let mid = (votes.len() + rejections.len()) / 2;
    if mid <= votes.len() {
        let rest = votes.split_off(mid);
        let first = Batch {
            votes,
            ..Batch::default()
        };
        let rejections_after = rejections_after
            .iter()
            .map(|n| n.saturating_sub(mid))
            .collect();
        [
            first,
            Batch {
                votes: rest,
                rejections,
                rejections_after,
            },
        ]
    } else {
        let k = mid - votes.len();
        let rest = rejections.split_off(k);
        rejections_after.truncate(k);
        [
            Batch {
                votes,
                rejections,
                rejections_after,
            },
            Batch {
                rejections: rest,
                ..Batch::default()
            },
        ]
    }
}

/// A vote the store would not keep, as the rejection recorded instead.
fn refused_vote(v: Vote, error: &StoreError) -> Rejection {
    edge::storable_rejection(Rejection {
        ballot_id: v.ballot_id,
        election_id: Some(v.election_id.to_string()),
        voter_id: Some(v.voter_id),
        reason: RejectReason::InvalidField,
        detail: format!("the store refused this ballot: {error}"),
        raw: String::new(),
        received_at: crate::model::now_millis(),
        source: v.source,
        client: v.client,
    })
}

/// A rejection the store would not keep, with less of what was sent.
fn refused_rejection(r: Rejection, error: &StoreError) -> Rejection {
    edge::storable_rejection(Rejection {
        detail: format!(
            "{} (the store refused the message as sent: {error})",
            r.detail
        ),
        raw: String::new(),
        ..r
    })
}

/// Records one refused ballot's rejection; if even that is refused, the
/// barest rejection there is (an id derived from the first, no text).
fn record_refused(
    store: &mut dyn Store,
    r: Rejection,
    shutdown: &Shutdown,
) -> Result<Recorded, StoreError> {
    let bare = Rejection {
        ballot_id: edge::content_id(r.ballot_id.as_bytes()),
        election_id: None,
        voter_id: None,
        reason: r.reason,
        detail: "the store refused this ballot".to_string(),
        raw: String::new(),
        received_at: r.received_at,
        source: r.source,
        client: None,
    };
    let one = |r| Batch {
        rejections: vec![r],
        ..Batch::default()
    };
    match record_transient(store, one(r), shutdown) {
        Ok(recorded) => Ok(recorded),
        Err((e, _)) if e.class() == ErrorClass::Content => {
            record_transient(store, one(bare), shutdown).map_err(|(e, _)| e)
        }
        Err((e, _)) => Err(e),
    }
}

/// Adds what a part of a batch recorded (parts commit in order, so seqs
/// stay in order).
fn merge(into: &mut Recorded, from: Recorded) {
    into.votes.extend(from.votes);
    into.rejections.extend(from.rejections);
    into.replays += from.replays;
    into.republish_votes.extend(from.republish_votes);
    into.republish_rejections.extend(from.republish_rejections);
    // Halves keep the batch's order, so the fates stay in the places the
    // waiters hold.
    into.vote_fates.extend(from.vote_fates);
    into.rejection_fates.extend(from.rejection_fates);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Inbound;
    use crate::model::{Ballot, Candidate, Election};
    use crate::process::{Processor, Registry};

    const OPENS: i64 = 1_780_000_000_000;

    fn setup() -> (Box<dyn Store>, Processor, Vec<String>) {
        let mut store = crate::store::open("sqlite::memory:").unwrap();
        let election = Election {
            election_id: "e".into(),
            name: "E".into(),
            opens_at: OPENS,
            polls: None,
        };
        let candidate = Candidate {
            candidate_id: "c".into(),
            election_id: "e".into(),
            candidate_name: "C".into(),
            party_affiliation: "P".into(),
            biography: String::new(),
            campaign_platform: String::new(),
            photo_url: String::new(),
        };
        store.put_election(&election, &[candidate]).unwrap();
        let voters: Vec<_> = crate::generate::voters(3, 10).collect();
        store.put_voters(&voters).unwrap();
        let processor = Processor::new(Registry::load(&mut *store).unwrap());
        (
            store,
            processor,
            voters.into_iter().map(|v| v.voter_id).collect(),
        )
    }

    /// One valid ballot from each voter, validated into a batch.
    fn one_vote_each(processor: &Processor, voters: &[String]) -> Batch {
        let inbound = voters
            .iter()
            .enumerate()
            .map(|(i, v)| {
                Inbound::ballot(Ballot {
                    ballot_id: format!("b{i}"),
                    election_id: "e".into(),
                    voter_id: v.clone(),
                    candidate_id: "c".into(),
                    cast_at: OPENS + 1,
                    client: None,
                })
            })
            .collect();
        processor.validate_batch(inbound, OPENS + 10)
    }

    #[test]
    fn a_batch_the_store_refuses_for_its_content_loses_only_the_bad_ballots() {
        let (mut store, processor, voters) = setup();
        let mut batch = one_vote_each(&processor, &voters);
        assert_eq!(batch.votes.len(), 10);
        // As if a new path into the processor forgot the edge: text no
        // store keeps, in two votes and in a rejection.
        batch.votes[3].ballot_id = "b3\0".into();
        batch.votes[7].ballot_id = "b7\0".into();
        batch.rejections.push(Rejection {
            ballot_id: "r\0".into(),
            election_id: Some("e".into()),
            voter_id: None,
            reason: RejectReason::MalformedJson,
            detail: "bad\0".into(),
            raw: "{\0".into(),
            received_at: OPENS,
            source: None,
            client: None,
        });
        let recorded = record_with_retry(&mut *store, batch, &Shutdown::default())
            .expect("the rest of the batch commits");
        assert_eq!(recorded.votes.len(), 8);
        assert!(recorded.votes.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(recorded.rejections.len(), 3, "{:?}", recorded.rejections);
        for r in &recorded.rejections {
            assert!(!r.ballot_id.contains('\0') && !r.detail.contains('\0'));
            assert!(r.detail.contains("the store refused"), "{}", r.detail);
        }
        let reasons: Vec<_> = recorded.rejections.iter().map(|r| r.reason).collect();
        assert_eq!(
            reasons
                .iter()
                .filter(|r| **r == RejectReason::InvalidField)
                .count(),
            2
        );
        let results = store.results("e", crate::tally::BUILTIN).unwrap();
        assert_eq!((results.accepted, results.rejected), (8, 3));
    }

    /// A store whose `record` fails with a transient error a few times
    /// first (the lock busy), handing the batch back as a real store does.
    struct Flaky {
        inner: Box<dyn Store>,
        failures: usize,
        sizes: Vec<usize>,
    }

    impl Store for Flaky {
        fn put_election(&mut self, e: &Election, c: &[Candidate]) -> Result<(), StoreError> {
            self.inner.put_election(e, c)
        }
        fn put_voters(&mut self, v: &[crate::model::Voter]) -> Result<u64, StoreError> {
            self.inner.put_voters(v)
        }
        fn elections(&mut self) -> Result<Vec<crate::store::ElectionEntry>, StoreError> {
            self.inner.elections()
        }
        fn scan_voters(
            &mut self,
            f: &mut dyn FnMut(crate::store::VoterKey<'_>),
        ) -> Result<(), StoreError> {
            self.inner.scan_voters(f)
        }
        fn voter(&mut self, id: &str) -> Result<Option<crate::model::Voter>, StoreError> {
            self.inner.voter(id)
        }
        fn record(&mut self, batch: Batch) -> Result<Recorded, (StoreError, Batch)> {
            self.sizes.push(len(&batch));
            if self.failures > 0 {
                self.failures -= 1;
                return Err((busy(), batch));
            }
            self.inner.record(batch)
        }
        fn votes_after(&mut self, after: i64, limit: usize) -> Result<Vec<Vote>, StoreError> {
            self.inner.votes_after(after, limit)
        }
        fn load_tallies(
            &mut self,
            engine: &str,
        ) -> Result<(crate::tally::Tallies, i64), StoreError> {
            self.inner.load_tallies(engine)
        }
        fn save_tallies(
            &mut self,
            engine: &str,
            changed: &[(crate::tally::TallyKey, i64)],
            from: i64,
            position: i64,
        ) -> Result<(), StoreError> {
            self.inner.save_tallies(engine, changed, from, position)
        }
        fn add_tallies(
            &mut self,
            engine: &str,
            deltas: &[(crate::tally::TallyKey, i64)],
            topic: &str,
            moves: &[crate::store::OffsetMove],
        ) -> Result<(), StoreError> {
            self.inner.add_tallies(engine, deltas, topic, moves)
        }
        fn load_offsets(
            &mut self,
            engine: &str,
            topic: &str,
        ) -> Result<std::collections::HashMap<i32, i64>, StoreError> {
            self.inner.load_offsets(engine, topic)
        }
        fn profiles(&mut self, nos: &[i64]) -> Result<Vec<(i64, crate::model::Voter)>, StoreError> {
            self.inner.profiles(nos)
        }
        fn results(
            &mut self,
            election_id: &str,
            engine: &str,
        ) -> Result<crate::results::Results, StoreError> {
            self.inner.results(election_id, engine)
        }
        fn ledger_after(
            &mut self,
            after: i64,
            limit: usize,
        ) -> Result<Vec<crate::store::LedgerEntry>, StoreError> {
            self.inner.ledger_after(after, limit)
        }
        fn rejections_after(
            &mut self,
            after: i64,
            limit: usize,
        ) -> Result<Vec<(i64, crate::model::Rejection)>, StoreError> {
            self.inner.rejections_after(after, limit)
        }
        fn results_at(
            &mut self,
            election_id: &str,
            at: crate::results::At,
        ) -> Result<crate::results::Results, StoreError> {
            self.inner.results_at(election_id, at)
        }
        fn recount(&mut self, election_id: &str) -> Result<crate::tally::Tallies, StoreError> {
            self.inner.recount(election_id)
        }
        fn seal_state(
            &mut self,
            election_id: &str,
            state: &str,
            at: crate::model::Millis,
        ) -> Result<crate::store::Seal, StoreError> {
            self.inner.seal_state(election_id, state, at)
        }
        fn desk_log(&mut self, election_id: &str) -> Result<crate::store::DeskLog, StoreError> {
            self.inner.desk_log(election_id)
        }
        fn append_desk(
            &mut self,
            election_id: &str,
            next: i64,
            events: &[String],
        ) -> Result<(), StoreError> {
            self.inner.append_desk(election_id, next, events)
        }
        fn alert_events(
            &mut self,
            election_id: &str,
            from: i64,
        ) -> Result<Vec<String>, StoreError> {
            self.inner.alert_events(election_id, from)
        }
        fn alert_resume(
            &mut self,
            election_id: &str,
        ) -> Result<Option<crate::store::AlertResume>, StoreError> {
            self.inner.alert_resume(election_id)
        }
        fn append_alerts(
            &mut self,
            election_id: &str,
            next: i64,
            events: &[String],
            from: crate::store::LedgerPosition,
            to: &crate::store::AlertResume,
        ) -> Result<(), StoreError> {
            self.inner
                .append_alerts(election_id, next, events, from, to)
        }
        fn record_look(
            &mut self,
            election_id: &str,
            look: &crate::store::DeskLook,
            events: &[String],
        ) -> Result<(), StoreError> {
            self.inner.record_look(election_id, look, events)
        }
        fn desk_looks(
            &mut self,
            election_id: &str,
        ) -> Result<Vec<crate::store::DeskLook>, StoreError> {
            self.inner.desk_looks(election_id)
        }
        fn record_shown(&mut self, s: &crate::shown::Shown) -> Result<bool, StoreError> {
            self.inner.record_shown(s)
        }
        fn shown_results(
            &mut self,
            election_id: &str,
            until: crate::model::Millis,
            limit: usize,
        ) -> Result<Vec<crate::shown::Shown>, StoreError> {
            self.inner.shown_results(election_id, until, limit)
        }
    }

    fn busy() -> StoreError {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error {
                code: rusqlite::ErrorCode::DatabaseBusy,
                extended_code: 5,
            },
            None,
        ))
    }

    #[test]
    fn a_transient_failure_is_retried_with_the_batch_whole() {
        let (store, processor, voters) = setup();
        let batch = one_vote_each(&processor, &voters);
        let mut flaky = Flaky {
            inner: store,
            failures: 2,
            sizes: Vec::new(),
        };
        let recorded = record_with_retry(&mut flaky, batch, &Shutdown::default())
            .expect("the write succeeds once the store is free");
        assert_eq!(
            flaky.sizes,
            vec![10, 10, 10],
            "every attempt had the whole batch"
        );
        assert_eq!(recorded.votes.len(), 10);
        let results = flaky.inner.results("e", crate::tally::BUILTIN).unwrap();
        assert_eq!((results.accepted, results.rejected), (10, 0));
    }

    #[test]
    fn only_a_transient_error_is_waited_for() {
        let shutdown = Shutdown::default();
        let content = StoreError::NulInText { what: "x".into() };
        assert!(!Backoff::default().wait(&content, &shutdown));
        let permanent = StoreError::UnsupportedUrl("x".into());
        assert!(!Backoff::default().wait(&permanent, &shutdown));
        assert!(Backoff::default().wait(&busy(), &shutdown));
    }
}
