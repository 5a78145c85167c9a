//! The `votestream` binary: argument parsing and error reporting only; the
//! work is in the library.

use std::io::{BufReader, IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use votestream::aggregate::engine::{Engine, Feed};
use votestream::aggregate::BUILTIN;
use votestream::bus::kafka::{KafkaBus, Topic};
use votestream::bus::{BallotSource, BusKind, LinesSource};
use votestream::pipeline::{self, allowance_ms, RunConfig};
use votestream::process::{self, parse::ballot_json, Processor, Registry};
use votestream::shutdown::Shutdown;
use votestream::simulate::{Rate, SimConfig, Simulation};
use votestream::stats::Stats;
use votestream::{bus::Inbound, generate, store};

#[derive(Parser)]
#[command(name = "votestream", version, about = "A real-time voting data pipeline", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Common {
    /// Where records live: sqlite://PATH or postgres://USER@HOST:PORT/DB
    #[arg(
        long,
        env = "VOTESTREAM_STORE",
        default_value = "sqlite://votestream.db"
    )]
    store: String,
    /// What carries the streams: memory, or kafka://HOST:PORT[?partitions=N&replication=R&prefix=P]
    #[arg(long, env = "VOTESTREAM_BUS", default_value = "memory")]
    bus: String,
    /// The election to work on.
    #[arg(long, env = "VOTESTREAM_ELECTION", default_value = generate::DEFAULT_ELECTION_ID)]
    election: String,
}

#[derive(Args, Clone)]
struct HttpArgs {
    /// With Kafka: this process's name in its processor transactions,
    /// stable across restarts, one per running process (see `process --instance`).
    #[arg(long, env = "VOTESTREAM_INSTANCE", default_value = "run")]
    instance: String,
    /// Address for the dashboard and the API (port 0: any free port).
    #[arg(long, env = "VOTESTREAM_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Bearer token for casting ballots (random and printed when unset).
    #[arg(long, env = "VOTESTREAM_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
    /// Bearer token for admin operations (random and printed when unset).
    #[arg(long, env = "VOTESTREAM_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Requests per second per client IP on writing endpoints (0: no limit).
    #[arg(long, env = "VOTESTREAM_RATE_LIMIT", default_value_t = 1000.0)]
    rate_limit: f64,
    /// Requests a client may make at once before the rate limit applies.
    #[arg(long, env = "VOTESTREAM_RATE_BURST", default_value_t = 2000.0)]
    rate_burst: f64,
    /// Largest ballot body accepted, in bytes.
    #[arg(long, env = "VOTESTREAM_MAX_BODY", default_value_t = 16 * 1024)]
    max_body: usize,
    /// Threads serving HTTP.
    #[arg(long, env = "VOTESTREAM_HTTP_WORKERS", default_value_t = 2)]
    http_workers: usize,
    /// Write the bound address to this file once listening.
    #[arg(long, env = "VOTESTREAM_ADDR_FILE")]
    addr_file: Option<std::path::PathBuf>,
}

impl HttpArgs {
    fn options(&self) -> votestream::serve::HttpOptions {
        let token = |given: &Option<String>, what: &str| match given {
            Some(t) if !t.is_empty() => t.clone(),
            _ => {
                let t = votestream::serve::Tokens::random();
                eprintln!("{what} token (generated): {t}");
                t
            }
        };
        votestream::serve::HttpOptions {
            listen: self.listen,
            tokens: votestream::serve::Tokens {
                api: token(&self.api_token, "API"),
                admin: token(&self.admin_token, "admin"),
            },
            rate_limit: self.rate_limit,
            rate_burst: self.rate_burst,
            max_body: self.max_body,
        }
    }
}

#[derive(Args, Clone)]
struct SimArgs {
    /// Seed for the electorate and the ballots: same seed, same data.
    #[arg(long, env = "VOTESTREAM_SEED", default_value_t = 42)]
    seed: u64,
    /// Ballots per second, or `max`.
    #[arg(long, env = "VOTESTREAM_RATE", default_value = "2000")]
    rate: Rate,
    /// Share of registered voters who vote.
    #[arg(long, env = "VOTESTREAM_TURNOUT", default_value_t = 0.8)]
    turnout: f64,
    /// Second ballots from voters who already voted, as a share of votes.
    #[arg(long, env = "VOTESTREAM_DUPLICATE_SHARE", default_value_t = 0.01)]
    duplicate_share: f64,
    /// Invalid ballots (every rejection reason in turn), as a share of votes.
    #[arg(long, env = "VOTESTREAM_INVALID_SHARE", default_value_t = 0.01)]
    invalid_share: f64,
    /// Ballots cast earlier than the lateness allowance, as a share of votes.
    #[arg(long, env = "VOTESTREAM_LATE_SHARE", default_value_t = 0.01)]
    late_share: f64,
    /// How late (seconds, by cast time) a vote may be and still land in its minute window.
    #[arg(long, env = "VOTESTREAM_ALLOWANCE_SECS", default_value_t = 60)]
    allowance_secs: u64,
}

impl SimArgs {
    fn config(&self) -> SimConfig {
        SimConfig {
            seed: self.seed,
            turnout: self.turnout,
            duplicate_share: self.duplicate_share,
            invalid_share: self.invalid_share,
            late_share: self.late_share,
            allowance_ms: allowance_ms(self.allowance_secs),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run everything: generate if needed, simulate, process, aggregate, serve.
    #[command(
        after_help = "Examples:\n  votestream run\n  votestream run --voters 1000000 --rate max --until-done\n  votestream run --store sqlite://night.db --listen 0.0.0.0:8080"
    )]
    Run {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        sim: SimArgs,
        /// Registry size (voters generated if the store has fewer).
        #[arg(long, env = "VOTESTREAM_VOTERS", default_value_t = 100_000)]
        voters: u64,
        /// Exit once every simulated ballot is processed and counted.
        #[arg(long, env = "VOTESTREAM_UNTIL_DONE")]
        until_done: bool,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// Create the default election and generate (or import) the registry.
    #[command(
        after_help = "Examples:\n  votestream generate --voters 1000000\n  votestream generate --from-csv voters.csv\n  votestream generate --from-randomuser results.json\n  votestream generate --voters 1000 --export-csv voters.csv"
    )]
    Generate {
        #[command(flatten)]
        common: Common,
        #[arg(long, env = "VOTESTREAM_VOTERS", default_value_t = 100_000)]
        voters: u64,
        #[arg(long, env = "VOTESTREAM_SEED", default_value_t = 42)]
        seed: u64,
        /// Import voters from a CSV file with the voters table's columns.
        #[arg(long, env = "VOTESTREAM_FROM_CSV", conflicts_with = "from_randomuser")]
        from_csv: Option<std::path::PathBuf>,
        /// Import voters from a randomuser.me API response (JSON).
        #[arg(long, env = "VOTESTREAM_FROM_RANDOMUSER")]
        from_randomuser: Option<std::path::PathBuf>,
        /// Also write the generated voters to this CSV file.
        #[arg(long, env = "VOTESTREAM_EXPORT_CSV")]
        export_csv: Option<std::path::PathBuf>,
    },
    /// Write simulated ballots as JSON lines (to stdout, or --out).
    #[command(
        after_help = "Examples:\n  votestream simulate --rate max > ballots.jsonl\n  votestream simulate --rate 500 | votestream process --input -"
    )]
    Simulate {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        sim: SimArgs,
        #[arg(long, env = "VOTESTREAM_OUT")]
        out: Option<std::path::PathBuf>,
    },
    /// Validate and record ballots: JSON lines (a file, or - for stdin), or the Kafka `ballots` topic.
    #[command(
        after_help = "Examples:\n  votestream process --input ballots.jsonl\n  votestream simulate | votestream process --input -\n  votestream process --bus kafka://127.0.0.1:9092 --store postgres://postgres@127.0.0.1/votestream --instance 1"
    )]
    Process {
        #[command(flatten)]
        common: Common,
        #[arg(long, env = "VOTESTREAM_INPUT", default_value = "-")]
        input: String,
        /// With Kafka: this instance's name, stable across its restarts (it
        /// names its Kafka transactions; every running instance needs its own).
        #[arg(long, env = "VOTESTREAM_INSTANCE", default_value = "0")]
        instance: String,
        /// With Kafka: stop once no ballot came for this many seconds (default: run until Ctrl-C).
        #[arg(long, env = "VOTESTREAM_UNTIL_IDLE")]
        until_idle: Option<f64>,
    },
    /// Bring the built-in engine's results up to date with the votes table (or Kafka's votes_topic).
    #[command(
        after_help = "Examples:\n  votestream aggregate\n  votestream aggregate --follow\n  votestream aggregate --follow --bus kafka://127.0.0.1:9092 --store postgres://postgres@127.0.0.1/votestream\n  votestream aggregate --engine spark --bus kafka://127.0.0.1:9092 --store postgres://postgres@127.0.0.1/votestream\n\nWith --engine spark it runs `bash scripts/spark.sh run` (relative to the current directory,\nor the script VOTESTREAM_SPARK_SCRIPT names) until Ctrl-C/SIGTERM, which it passes on."
    )]
    Aggregate {
        #[command(flatten)]
        common: Common,
        /// Keep following new votes until Ctrl-C.
        #[arg(long, env = "VOTESTREAM_FOLLOW")]
        follow: bool,
        /// With Kafka and without --follow: stop once no vote came for this many seconds.
        #[arg(long, env = "VOTESTREAM_UNTIL_IDLE", default_value_t = 3.0)]
        until_idle: f64,
        #[arg(long, env = "VOTESTREAM_ALLOWANCE_SECS", default_value_t = 60)]
        allowance_secs: u64,
        /// `builtin`, or `spark`: run the Apache Spark engine (scripts/spark.sh run, see spark/README.md)
        /// in the foreground against the same --bus (Kafka) and --store (PostgreSQL).
        #[arg(long, env = "VOTESTREAM_ENGINE", default_value = "builtin", value_parser = ["builtin", "spark"])]
        engine: String,
        /// With --engine spark: the Spark checkpoint directory (keep it to resume; default
        /// target/spark/checkpoint beside the script).
        #[arg(long, env = "VOTESTREAM_SPARK_CHECKPOINT")]
        checkpoint: Option<std::path::PathBuf>,
    },
    /// Serve the dashboard and the API; process and count ballots cast over HTTP.
    #[command(
        after_help = "Examples:\n  votestream serve --listen 127.0.0.1:8080\n  VOTESTREAM_API_TOKEN=s3cret votestream serve\n  curl -H 'Authorization: Bearer s3cret' -H 'Idempotency-Key: k1' \\\n    -d '{\"voter_id\":\"…\",\"candidate_id\":\"…\"}' http://127.0.0.1:8080/api/v1/elections/general-2026/ballots"
    )]
    Serve {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        http: HttpArgs,
        #[arg(long, env = "VOTESTREAM_ALLOWANCE_SECS", default_value_t = 60)]
        allowance_secs: u64,
    },
    /// Print the current results.
    #[command(after_help = "Examples:\n  votestream results\n  votestream results --json")]
    Results {
        #[command(flatten)]
        common: Common,
        #[arg(long, env = "VOTESTREAM_JSON")]
        json: bool,
    },
    /// Recompute every tally from the votes table; exit 1 on any difference.
    #[command(after_help = "Examples:\n  votestream audit --store sqlite://votestream.db")]
    Audit {
        #[command(flatten)]
        common: Common,
    },
    /// Measure every stage and the whole pipeline; print one table.
    #[command(
        after_help = "Examples:\n  votestream bench\n  votestream bench --voters 200000\n  votestream bench --store postgres://postgres@127.0.0.1:55432/votestream"
    )]
    Bench {
        #[arg(long, env = "VOTESTREAM_BENCH_VOTERS", default_value_t = 1_000_000)]
        voters: u64,
        /// A kafka:// URL (with a postgres:// --store) benchmarks the
        /// distributed shape: exactly-once end to end beside Kafka's
        /// ProducerPerformance and PostgreSQL's COPY (scratch topics and databases).
        #[arg(long, env = "VOTESTREAM_BUS", default_value = "memory")]
        bus: String,
        /// A postgres:// URL benchmarks a PostgreSQL store (scratch databases on
        /// that server, dropped afterwards); otherwise the embedded SQLite shape.
        #[arg(long, env = "VOTESTREAM_STORE")]
        store: Option<String>,
        /// Where to put the scratch databases (removed afterwards).
        #[arg(long, env = "VOTESTREAM_BENCH_DIR", default_value = "target/bench")]
        dir: std::path::PathBuf,
        /// Measure the HTTP side instead: ballot intake and SSE fan-out.
        #[arg(long, env = "VOTESTREAM_BENCH_HTTP")]
        http: bool,
        /// With --http: concurrent keep-alive connections casting ballots.
        #[arg(long, env = "VOTESTREAM_BENCH_CONNECTIONS", default_value_t = 256)]
        connections: usize,
        /// With --http: concurrent SSE viewers.
        #[arg(long, env = "VOTESTREAM_BENCH_VIEWERS", default_value_t = 5000)]
        viewers: usize,
        /// With --http: seconds per measurement.
        #[arg(long, env = "VOTESTREAM_BENCH_SECONDS", default_value_t = 10)]
        seconds: u64,
    },
}

// The stages allocate and free many short strings across threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VOTESTREAM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match real_main(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn check_bus(common: &Common) -> anyhow::Result<()> {
    BusKind::parse(&common.bus)?;
    Ok(())
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    let progress = std::io::stderr().is_terminal();
    match cli.command {
        Command::Run {
            common,
            sim,
            voters,
            until_done,
            http,
        } => {
            let summary = pipeline::run(RunConfig {
                bus: BusKind::parse(&common.bus)?,
                instance: http.instance.clone(),
                store_url: common.store,
                election_id: common.election,
                voters,
                sim: sim.config(),
                rate: sim.rate,
                until_done,
                simulate: true,
                http: http.options(),
                http_workers: http.http_workers,
                addr_file: http.addr_file.clone(),
                progress,
            })?;
            print!("{}", summary.render());
        }
        Command::Generate {
            common,
            voters,
            seed,
            from_csv,
            from_randomuser,
            export_csv,
        } => {
            let bus = BusKind::parse(&common.bus)?;
            let mut st = store::open(&common.store)?;
            let started = std::time::Instant::now();
            pipeline::ensure_registry(&mut *st, &common.election, seed, 0, progress)?;
            let imported = match (from_csv, from_randomuser) {
                (Some(path), _) => Some(generate::import::from_csv(open_file(&path)?)?),
                (_, Some(path)) => Some(generate::import::from_randomuser_json(open_file(&path)?)?),
                _ => None,
            };
            let (added, new_voters) = match imported {
                Some(list) => (st.put_voters(&list)?, list),
                None => {
                    let mut have = 0u64;
                    st.scan_voters(&mut |_| have += 1)?;
                    let from = have.min(voters);
                    let added = pipeline::generate_voters(&mut *st, seed, from, voters, progress)?;
                    let list = match bus {
                        BusKind::Kafka(_) => {
                            (from..voters).map(|i| generate::voter(seed, i)).collect()
                        }
                        BusKind::Memory => Vec::new(),
                    };
                    (added, list)
                }
            };
            if let BusKind::Kafka(bus) = &bus {
                publish_registry(bus, &mut *st, &new_voters)?;
            }
            if let Some(path) = export_csv {
                let list: Vec<_> = (0..voters).map(|i| generate::voter(seed, i)).collect();
                let file = std::fs::File::create(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                generate::import::write_csv(&list, std::io::BufWriter::new(file))?;
            }
            let secs = started.elapsed().as_secs_f64();
            println!(
                "added {added} voters in {secs:.2} s ({:.0} voters/s)",
                added as f64 / secs.max(1e-9)
            );
        }
        Command::Simulate { common, sim, out } => {
            let bus = BusKind::parse(&common.bus)?;
            let mut st = store::open(&common.store)?;
            let simulation = Simulation::load(&mut *st, &common.election, &sim.config())?;
            if let BusKind::Kafka(bus) = bus {
                let (_rt, shutdown) = signals()?;
                bus.ensure_topics()?;
                let stats = Stats::default();
                pipeline::simulate_to_kafka(&bus, &simulation, 0, sim.rate, &stats, &shutdown)?;
                use std::sync::atomic::Ordering::Relaxed;
                let sent = stats.sent.load(Relaxed);
                println!("sent {sent} ballots to {}", bus.topic(Topic::Ballots));
                return Ok(ExitCode::SUCCESS);
            }
            let mut w: Box<dyn Write> = match out {
                Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p)?)),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let mut failed = None;
            simulation.run(0, sim.rate, &Shutdown::default(), |batch| {
                for b in batch {
                    let r = match b {
                        Inbound::Ballot(b) => writeln!(w, "{}", ballot_json(&b)),
                        Inbound::Raw(bytes) => w.write_all(&bytes).and_then(|_| w.write_all(b"\n")),
                        // The simulator only makes typed and raw ballots.
                        Inbound::Rejected(_) | Inbound::Acked(..) | Inbound::Sourced(..) => Ok(()),
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
        }
        Command::Process {
            common,
            input: _,
            instance,
            until_idle,
        } if matches!(BusKind::parse(&common.bus)?, BusKind::Kafka(_)) => {
            let BusKind::Kafka(bus) = BusKind::parse(&common.bus)? else {
                unreachable!()
            };
            let (_rt, shutdown) = signals()?;
            let mut st = store::open(&common.store)?;
            let processor = Processor::new(Registry::load(&mut *st)?);
            bus.ensure_topics()?;
            let ballots = votestream::bus::kafka::ballots::KafkaBallots::open(&bus)?;
            let mut publisher =
                votestream::bus::kafka::ballots::VotePublisher::open(&bus, &instance)?;
            let mut profiles = store::open(&common.store)?;
            let stats = Stats::default();
            process::kafka::run(
                &processor,
                &mut *st,
                &mut *profiles,
                &ballots,
                &mut publisher,
                &stats,
                &shutdown,
                until_idle.map(std::time::Duration::from_secs_f64),
            )?;
            print_processed(&stats, true);
        }
        Command::Process {
            common,
            input,
            instance: _,
            until_idle: _,
        } => {
            check_bus(&common)?;
            let mut st = store::open(&common.store)?;
            let processor = Processor::new(Registry::load(&mut *st)?);
            let mut source: Box<dyn BallotSource> = if input == "-" {
                Box::new(LinesSource::new(BufReader::new(std::io::stdin())))
            } else {
                Box::new(LinesSource::new(BufReader::new(open_file(
                    std::path::Path::new(&input),
                )?)))
            };
            let stats = Stats::default();
            process::run(
                &processor,
                &mut *st,
                &mut *source,
                None,
                &stats,
                &Shutdown::default(),
            )?;
            print_processed(&stats, false);
        }
        Command::Aggregate {
            common,
            allowance_secs,
            engine,
            checkpoint,
            ..
        } if engine == "spark" => return spark_engine(&common, allowance_secs, checkpoint),
        Command::Aggregate {
            common,
            follow,
            until_idle,
            allowance_secs,
            ..
        } if matches!(BusKind::parse(&common.bus)?, BusKind::Kafka(_)) => {
            let BusKind::Kafka(bus) = BusKind::parse(&common.bus)? else {
                unreachable!()
            };
            let (_rt, shutdown) = signals()?;
            bus.ensure_topics()?;
            let mut engine = votestream::aggregate::stream::StreamEngine::open(
                &bus,
                store::open(&common.store)?,
                allowance_ms(allowance_secs),
            )?;
            let stats = Stats::default();
            let idle = (!follow).then(|| std::time::Duration::from_secs_f64(until_idle));
            engine.run(&stats, &shutdown, idle)?;
            use std::sync::atomic::Ordering::Relaxed;
            println!(
                "aggregated votes_topic up to seq {} ({} unreadable messages skipped)",
                stats.aggregated_seq.load(Relaxed),
                engine.bad_messages
            );
        }
        Command::Aggregate {
            common,
            follow,
            allowance_secs,
            ..
        } => {
            check_bus(&common)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let shutdown = Shutdown::default();
            let _guard = rt.enter();
            shutdown.listen(rt.handle());
            let mut engine =
                Engine::open(store::open(&common.store)?, allowance_ms(allowance_secs))?;
            let before = engine.position();
            let stats = Stats::default();
            std::thread::scope(|s| {
                s.spawn(|| engine.run(Feed::Store { follow }, &stats, &shutdown))
                    .join()
            })
            .map_err(|_| anyhow::anyhow!("aggregator panicked"))??;
            println!("aggregated votes {}..={}", before + 1, engine.position());
        }
        Command::Serve {
            common,
            http,
            allowance_secs,
        } => {
            let sim = SimConfig {
                allowance_ms: allowance_ms(allowance_secs),
                ..SimConfig::default()
            };
            let summary = pipeline::run(RunConfig {
                bus: BusKind::parse(&common.bus)?,
                instance: http.instance.clone(),
                store_url: common.store,
                election_id: common.election,
                voters: 0,
                sim,
                rate: Rate::Max,
                until_done: false,
                simulate: false,
                http: http.options(),
                http_workers: http.http_workers,
                addr_file: http.addr_file.clone(),
                progress,
            })?;
            print!("{}", summary.results.render_text());
        }
        Command::Results { common, json } => {
            let mut st = store::open(&common.store)?;
            let r = st.results(&common.election, BUILTIN)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", r.render_text());
            }
        }
        Command::Audit { common } => {
            let mut st = store::open(&common.store)?;
            let report = votestream::audit::audit(&mut *st, &common.election, BUILTIN)?;
            if report.is_clean() {
                println!(
                    "audit passed: {} votes in election {}; every tally matches a recount of the votes table",
                    report.votes, report.election_id
                );
            } else {
                println!("audit FAILED for election {}:", report.election_id);
                for d in &report.differences {
                    println!("  {d}");
                }
                return Ok(ExitCode::from(1));
            }
        }
        Command::Bench {
            voters,
            bus,
            store,
            dir,
            http,
            connections,
            viewers,
            seconds,
        } => {
            let pg =
                store.filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"));
            let report = if let BusKind::Kafka(_) = BusKind::parse(&bus)? {
                let pg = pg.context("--bus kafka://… needs --store postgres://…")?;
                votestream::bench::kafka::run(&bus, &pg, voters, progress)?
            } else if let Some(url) = pg {
                votestream::bench::postgres::run(&url, voters, progress)?
            } else if http {
                let cfg = votestream::bench_http::HttpBench {
                    voters,
                    connections,
                    viewers,
                    seconds,
                };
                votestream::bench_http::run(&cfg, &dir)?
            } else {
                votestream::bench::run(voters, &dir, progress)?
            };
            print!("{report}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `aggregate --engine spark`: runs the Spark engine's launcher,
/// `bash scripts/spark.sh run --bus … --store … --allowance-ms … [--checkpoint …]`,
/// as a child in the foreground and returns its exit status. The script is
/// found relative to the current directory (the repository's root, as in the
/// Docker image and CI), or wherever VOTESTREAM_SPARK_SCRIPT says. SIGTERM
/// and Ctrl-C are passed on to the job, which stops its query and exits.
fn spark_engine(
    common: &Common,
    allowance_secs: u64,
    checkpoint: Option<std::path::PathBuf>,
) -> anyhow::Result<ExitCode> {
    if !matches!(BusKind::parse(&common.bus)?, BusKind::Kafka(_)) {
        anyhow::bail!("--engine spark reads Kafka's votes_topic: give --bus kafka://HOST:PORT");
    }
    if !common.store.starts_with("postgres://") && !common.store.starts_with("postgresql://") {
        anyhow::bail!("--engine spark writes PostgreSQL: give --store postgres://…");
    }
    let script = std::env::var_os("VOTESTREAM_SPARK_SCRIPT")
        .filter(|s| !s.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("scripts/spark.sh"));
    if !script.is_file() {
        anyhow::bail!(
            "--engine spark needs {} (run from the repository's root, or set VOTESTREAM_SPARK_SCRIPT)",
            script.display()
        );
    }
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(&script)
        .args(["run", "--bus", &common.bus, "--store", &common.store])
        .args(["--allowance-ms", &(allowance_secs * 1000).to_string()]);
    if let Some(dir) = checkpoint {
        cmd.arg("--checkpoint").arg(dir);
    }
    let (_rt, shutdown) = signals()?;
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting bash {}", script.display()))?;
    let mut passed_on = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if shutdown.is_requested() && !passed_on {
            // SAFETY: signals our own child, by its pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            passed_on = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(code.clamp(1, 255) as u8),
        None => {
            eprintln!("error: the Spark engine ended by {status}");
            ExitCode::from(1)
        }
    })
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

/// The processor's summary; on Kafka also how many recorded outcomes were
/// published again (after a crash between the store's and Kafka's commits).
fn print_processed(stats: &Stats, kafka: bool) {
    use std::sync::atomic::Ordering::Relaxed;
    let again = if kafka {
        format!(
            ", {} outcomes published again",
            stats.republished.load(Relaxed)
        )
    } else {
        String::new()
    };
    println!(
        "processed {} ballots: {} accepted, {} rejected, {} replays skipped{again}",
        stats.consumed.load(Relaxed),
        stats.accepted.load(Relaxed),
        stats.rejected.load(Relaxed),
        stats.replays.load(Relaxed),
    );
}

/// A runtime that turns Ctrl-C and SIGTERM into a shutdown request.
fn signals() -> anyhow::Result<(tokio::runtime::Runtime, Shutdown)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let shutdown = Shutdown::default();
    shutdown.listen(rt.handle());
    Ok((rt, shutdown))
}

fn open_file(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))
}
