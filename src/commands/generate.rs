//! `generate`: the default election and the registry (generated or
//! imported; on Kafka also published to candidates_topic and voters_topic).
//! `simulate`: ballots as JSON lines, or onto Kafka's `ballots` topic.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use votestream::bus::kafka::{KafkaBus, Topic};
use votestream::bus::{BusKind, Payload};
use votestream::pipeline;
use votestream::process::parse::ballot_json;
use votestream::shutdown::Shutdown;
use votestream::simulate::Simulation;
use votestream::stats::Stats;
use votestream::{generate, store};

use super::{open_file, signals};
use crate::{Common, SimArgs};

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, env = "VOTESTREAM_VOTERS", default_value_t = 100_000)]
    voters: u64,
    #[arg(long, env = "VOTESTREAM_SEED", default_value_t = 42)]
    seed: u64,
    /// Import voters from a CSV file with the voters table's columns.
    #[arg(long, env = "VOTESTREAM_FROM_CSV", conflicts_with = "from_randomuser")]
    from_csv: Option<PathBuf>,
    /// Import voters from a randomuser.me API response (JSON).
    #[arg(long, env = "VOTESTREAM_FROM_RANDOMUSER")]
    from_randomuser: Option<PathBuf>,
    /// Also write the generated voters to this CSV file.
    #[arg(long, env = "VOTESTREAM_EXPORT_CSV")]
    export_csv: Option<PathBuf>,
}

#[derive(Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    sim: SimArgs,
    #[arg(long, env = "VOTESTREAM_OUT")]
    out: Option<PathBuf>,
}

pub fn generate(a: GenerateArgs, progress: bool) -> anyhow::Result<ExitCode> {
    let bus = BusKind::parse(&a.common.bus)?;
    let mut st = a.common.store_url()?.open()?;
    let started = std::time::Instant::now();
    pipeline::ensure_registry(&mut *st, &a.common.election, a.seed, 0, progress)?;
    let imported = match (&a.from_csv, &a.from_randomuser) {
        (Some(path), _) => Some(generate::import::from_csv(open_file(path)?)?),
        (_, Some(path)) => Some(generate::import::from_randomuser_json(open_file(path)?)?),
        _ => None,
    };
    let (added, new_voters) = match imported {
        Some(list) => (st.put_voters(&list)?, list),
        None => {
            let mut have = 0u64;
            st.scan_voters(&mut |_| have += 1)?;
            let from = have.min(a.voters);
            let added = pipeline::generate_voters(&mut *st, a.seed, from, a.voters, progress)?;
            let list = match bus {
                BusKind::Kafka(_) => (from..a.voters)
                    .map(|i| generate::voter(a.seed, i))
                    .collect(),
                BusKind::Memory => Vec::new(),
            };
            (added, list)
        }
    };
    if let BusKind::Kafka(bus) = &bus {
        publish_registry(bus, &mut *st, &new_voters)?;
    }
    if let Some(path) = a.export_csv {
        let list: Vec<_> = (0..a.voters).map(|i| generate::voter(a.seed, i)).collect();
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        generate::import::write_csv(&list, std::io::BufWriter::new(file))?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "added {added} voters in {secs:.2} s ({:.0} voters/s)",
        added as f64 / secs.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

/// Publishes the registry to `candidates_topic` and `voters_topic`.
fn publish_registry(
    bus: &KafkaBus,
    st: &mut dyn store::Store,
    voters: &[votestream::model::Voter],
) -> anyhow::Result<()> {
    use votestream::bus::kafka::messages::{candidate_json, voter_json};
    bus.ensure_topics()?;
    let publisher = bus.publisher()?;
    let candidates = bus.topic(Topic::Candidates);
    for e in st.elections()? {
        for c in &e.candidates {
            let key = format!("{}:{}", c.election_id, c.candidate_id);
            publisher.send(&candidates, Some(key.as_bytes()), &candidate_json(c))?;
        }
    }
    let topic = bus.topic(Topic::Voters);
    for v in voters {
        publisher.send(&topic, Some(v.voter_id.as_bytes()), &voter_json(v))?;
    }
    publisher.flush(std::time::Duration::from_secs(120))?;
    Ok(())
}

pub fn simulate(a: SimulateArgs) -> anyhow::Result<ExitCode> {
    let bus = BusKind::parse(&a.common.bus)?;
    let mut st = a.common.store_url()?.open()?;
    let cfg = a.sim.config();
    if let Some(night) = &cfg.night {
        super::announce_night(&mut *st, &a.common.election, night)?;
    }
    let simulation = Simulation::load(&mut *st, &a.common.election, &cfg)?;
    anyhow::ensure!(
        simulation.registrations().is_empty(),
        "{}",
        votestream::pipeline::MIDNIGHT_REGISTRATION
    );
    if let BusKind::Kafka(bus) = bus {
        let (_rt, shutdown) = signals()?;
        bus.ensure_topics()?;
        let stats = Stats::default();
        pipeline::simulate_to_kafka(&bus, &simulation, 0, a.sim.rate, &stats, &shutdown)?;
        let sent = stats.sent.load(std::sync::atomic::Ordering::Relaxed);
        println!("sent {sent} ballots to {}", bus.topic(Topic::Ballots));
        return Ok(ExitCode::SUCCESS);
    }
    let mut w: Box<dyn Write> = match a.out {
        Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut failed = None;
    simulation.run(0, a.sim.rate, &Shutdown::default(), |batch| {
        for b in batch {
            let r = match b.body {
                Payload::Ballot(b) => writeln!(w, "{}", ballot_json(&b)),
                Payload::Raw(bytes) => w.write_all(&bytes).and_then(|_| w.write_all(b"\n")),
                // The simulator only makes typed and raw ballots.
                Payload::Rejected(_) => Ok(()),
            };
            if let Err(e) = r {
                failed = Some(e);
                return false;
            }
        }
        true
    });
    w.flush()?;
    if let Some(e) = failed {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    Ok(ExitCode::SUCCESS)
}
