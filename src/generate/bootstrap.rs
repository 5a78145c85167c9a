//! Putting a registry into a store: the election if it is missing, and
//! generated voters up to a count. `run`, `generate`, `bench` and the admin
//! API all start from it, so it sits with the generator, below them all.

use crate::model::{now_millis, Voter};
use crate::stats::progress_bar;
use crate::store::Store;

/// Makes sure the election (created with the original's three parties if
/// missing) and a registry of at least `voters` exist.
pub fn ensure_registry(
    store: &mut dyn Store,
    election_id: &str,
    seed: u64,
    voters: u64,
    progress: bool,
) -> anyhow::Result<()> {
    let elections = store.elections()?;
    if !elections
        .iter()
        .any(|e| e.election.election_id == election_id)
    {
        // Open a day ago, so the simulator's late ballots are after the opening.
        let (mut election, mut candidates) = super::default_election(now_millis() - 86_400_000);
        if election_id != super::DEFAULT_ELECTION_ID {
            // Another election with the original's three parties.
            election.name = format!("Election {election_id}");
            election.election_id = election_id.to_string();
            for c in &mut candidates {
                c.election_id = election_id.to_string();
            }
        }
        store.put_election(&election, &candidates)?;
    }
    let mut registered = 0u64;
    store.scan_voters(&mut |_| registered += 1)?;
    if registered < voters {
        generate_voters(store, seed, registered, voters, progress)?;
    }
    Ok(())
}

/// Generates voters `from..to` of the electorate for `seed` into the store.
/// One thread generates while this one writes.
pub fn generate_voters(
    store: &mut dyn Store,
    seed: u64,
    from: u64,
    to: u64,
    progress: bool,
) -> anyhow::Result<u64> {
    const CHUNK: u64 = 50_000;
    let bar = progress_bar(progress, to - from, "generating voters");
    let (tx, rx) = crossbeam_channel::bounded::<Vec<Voter>>(4);
    let producer = std::thread::spawn(move || {
        let mut start = from;
        while start < to {
            let end = (start + CHUNK).min(to);
            let chunk: Vec<_> = (start..end).map(|i| super::voter(seed, i)).collect();
            if tx.send(chunk).is_err() {
                break;
            }
            start = end;
        }
    });
    let mut added = 0;
    for chunk in rx {
        added += store.put_voters(&chunk)?;
        bar.inc(chunk.len() as u64);
    }
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("voter generator thread panicked"))?;
    bar.finish_and_clear();
    Ok(added)
}
