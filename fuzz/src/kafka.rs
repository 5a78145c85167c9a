//! Kafka message decoding: a `ballots` message (any bytes) through the
//! processor's validation into a real SQLite store, and a `votes_topic`
//! message through the aggregator's decoder.

use std::cell::RefCell;

use votestream::bus::Inbound;
use votestream::model::Source;
use votestream::process::{Processor, Registry};
use votestream::store::{self, Store};

struct World {
    processor: Processor,
    store: Box<dyn Store>,
    offset: i64,
    interner: votestream::store::util::Interner,
}

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

fn world() -> World {
    let mut store = store::open("sqlite::memory:").expect("in-memory store");
    votestream::pipeline::ensure_registry(&mut *store, "general-2026", 42, 20, false)
        .expect("registry");
    let registry = Registry::load(&mut *store).expect("registry loads");
    World {
        processor: Processor::new(registry),
        store,
        offset: 0,
        interner: Default::default(),
    }
}

pub fn check(data: &[u8]) {
    WORLD.with(|w| {
        let mut w = w.borrow_mut();
        let w = w.get_or_insert_with(world);
        check_ballot_message(w, data);
        check_vote_message(w, data);
    })
}

fn check_ballot_message(w: &mut World, data: &[u8]) {
    w.offset += 1;
    let source = Source {
        partition: 0,
        offset: w.offset,
    };
    let inbound = Inbound::raw(data.to_vec()).read_at(source);
    let batch = w
        .processor
        .validate_batch(vec![inbound], votestream::model::now_millis());
    assert_eq!(
        batch.votes.len() + batch.rejections.len(),
        1,
        "one message, one outcome"
    );
    for r in &batch.rejections {
        crate::check_rejection(r);
        assert_eq!(r.source, Some(source), "a rejection keeps its offset");
    }
    for v in &batch.votes {
        assert_eq!(v.source, Some(source), "a vote keeps its offset");
        assert!(!v.voter_id.contains('\0') && !v.ballot_id.contains('\0'));
    }
    // Whatever the processor hands over, the store takes: one bad message
    // must never block the batch it is in.
    votestream::store::check_batch(&batch).expect("the processor made a batch the store refuses");
    let recorded = w
        .store
        .record(batch)
        .map_err(|(e, _)| e)
        .expect("the store refused a batch from one Kafka message");
    let _ = recorded;
}

fn check_vote_message(w: &mut World, data: &[u8]) {
    if let Ok(v) = votestream::bus::kafka::messages::parse_vote(data, &mut w.interner) {
        // Fields it does not read are skipped, not validated (serde_json
        // lets a lone surrogate escape through there): only what it read is
        // compared.
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
            return;
        };
        assert_eq!(json["seq"].as_i64(), Some(v.seq));
        assert_eq!(json["ballot_id"].as_str(), Some(v.ballot_id.as_str()));
        assert_eq!(json["address"]["state"].as_str(), Some(&*v.state));
    }
}
