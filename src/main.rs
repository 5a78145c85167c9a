//! The `votestream` binary: argument parsing and error reporting only; each
//! subcommand's edge is in [`commands`], the work is in the library.

mod commands;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use votestream::generate;
use votestream::pipeline::allowance_ms;
use votestream::simulate::{Injection, Night, Rate, SimConfig};
use votestream::store::StoreUrl;

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

impl Common {
    /// The store URL, parsed once here at the edge, beside the bus's.
    fn store_url(&self) -> Result<StoreUrl, votestream::store::StoreError> {
        StoreUrl::parse(&self.store)
    }
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
    #[arg(long, env = "VOTESTREAM_RATE_LIMIT", default_value_t = 1000.0, value_parser = commands::range::non_negative, allow_negative_numbers = true)]
    rate_limit: f64,
    /// Requests a client may make at once before the rate limit applies.
    #[arg(long, env = "VOTESTREAM_RATE_BURST", default_value_t = 2000.0, value_parser = commands::range::non_negative, allow_negative_numbers = true)]
    rate_burst: f64,
    /// Largest ballot body accepted, in bytes.
    #[arg(long, env = "VOTESTREAM_MAX_BODY", default_value_t = 16 * 1024, value_parser = commands::range::at_least_one, allow_negative_numbers = true)]
    max_body: usize,
    /// Threads serving HTTP.
    #[arg(long, env = "VOTESTREAM_HTTP_WORKERS", default_value_t = 2, value_parser = commands::range::at_least_one, allow_negative_numbers = true)]
    http_workers: usize,
    /// Write the bound address to this file once listening.
    #[arg(long, env = "VOTESTREAM_ADDR_FILE")]
    addr_file: Option<std::path::PathBuf>,
    /// Seconds a request's headers may take, from their first byte.
    #[arg(long, env = "VOTESTREAM_HEADER_TIMEOUT", default_value_t = 10.0, value_parser = commands::range::positive_secs, allow_negative_numbers = true)]
    header_timeout: f64,
    /// Seconds a request's body may take, from the end of its headers.
    #[arg(long, env = "VOTESTREAM_BODY_TIMEOUT", default_value_t = 30.0, value_parser = commands::range::positive_secs, allow_negative_numbers = true)]
    body_timeout: f64,
    /// Seconds a connection may stay open with no request in progress (new or kept alive).
    #[arg(long, env = "VOTESTREAM_IDLE_TIMEOUT", default_value_t = 60.0, value_parser = commands::range::positive_secs, allow_negative_numbers = true)]
    idle_timeout: f64,
    /// Open connections at most; more are answered 503 and closed (lowered to fit the open-file limit).
    #[arg(long, env = "VOTESTREAM_MAX_CONNECTIONS", default_value_t = 20_000, value_parser = commands::range::at_least_one, allow_negative_numbers = true)]
    max_connections: usize,
    /// Live Server-Sent Events viewers at most; more are answered 503.
    #[arg(long, env = "VOTESTREAM_MAX_SSE_VIEWERS", default_value_t = 10_000, value_parser = commands::range::at_least_one, allow_negative_numbers = true)]
    max_sse_viewers: usize,
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
            limits: votestream::serve::Limits {
                header_timeout: std::time::Duration::from_secs_f64(self.header_timeout),
                body_timeout: std::time::Duration::from_secs_f64(self.body_timeout),
                idle_timeout: std::time::Duration::from_secs_f64(self.idle_timeout),
                max_connections: self.max_connections,
                max_sse_viewers: self.max_sse_viewers,
            },
        }
    }
}

#[derive(Args, Clone)]
struct SimArgs {
    /// Seed for the electorate and the ballots: same seed, same data.
    #[arg(long, env = "VOTESTREAM_SEED", default_value_t = 42)]
    seed: u64,
    /// Ballots per second, or `max` (ignored with --night, which sends each ballot at its planned time).
    #[arg(long, env = "VOTESTREAM_RATE", default_value = "2000")]
    rate: Rate,
    /// Share of registered voters who vote.
    #[arg(long, env = "VOTESTREAM_TURNOUT", default_value_t = 0.8, value_parser = commands::range::share, allow_negative_numbers = true)]
    turnout: f64,
    /// Second ballots from voters who already voted, as a share of votes.
    #[arg(long, env = "VOTESTREAM_DUPLICATE_SHARE", default_value_t = 0.01, value_parser = commands::range::share, allow_negative_numbers = true)]
    duplicate_share: f64,
    /// Invalid ballots (every rejection reason in turn), as a share of votes.
    #[arg(long, env = "VOTESTREAM_INVALID_SHARE", default_value_t = 0.01, value_parser = commands::range::share, allow_negative_numbers = true)]
    invalid_share: f64,
    /// Ballots cast earlier than the lateness allowance, as a share of votes.
    #[arg(long, env = "VOTESTREAM_LATE_SHARE", default_value_t = 0.01, value_parser = commands::range::share, allow_negative_numbers = true)]
    late_share: f64,
    /// How late (seconds, by cast time) a vote may be and still land in its minute window.
    #[arg(long, env = "VOTESTREAM_ALLOWANCE_SECS", default_value_t = 60)]
    allowance_secs: u64,
    /// Play an election night this long (e.g. 90s, 10m, 1h): states close in their real waves, from 40% to 95% of it.
    #[arg(long, env = "VOTESTREAM_NIGHT", value_parser = commands::range::night_duration)]
    night: Option<votestream::model::Millis>,
    /// With --night: how strongly early returns lean to one candidate (0 to 1); the final count does not.
    #[arg(long, env = "VOTESTREAM_NIGHT_SKEW", default_value_t = 0.25, value_parser = commands::range::share, allow_negative_numbers = true)]
    night_skew: f64,
    /// With --night: the candidate the early returns lean to (0: the election's first).
    #[arg(long, env = "VOTESTREAM_NIGHT_SKEW_CANDIDATE", default_value_t = 0)]
    night_skew_candidate: usize,
    /// With --night: each state's turnout varies by up to ± this around --turnout.
    #[arg(long, env = "VOTESTREAM_NIGHT_TURNOUT_SPREAD", default_value_t = 0.15, value_parser = commands::range::share, allow_negative_numbers = true)]
    night_turnout_spread: f64,
    /// With --night: inject an anomaly, KIND@TIME[:TARGET] (repeatable): KIND burst, duplicates, after-close, swing or turnout; TIME into the night (90s, 2m); TARGET a state (TX, Ohio) or for a burst a kiosk (kiosk-TX-07), else drawn from the seed.
    #[arg(long = "inject", env = "VOTESTREAM_INJECT", value_delimiter = ',')]
    injections: Vec<Injection>,
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
            night: self.night.map(|duration_ms| Night {
                duration_ms,
                skew: self.night_skew,
                skew_candidate: self.night_skew_candidate,
                turnout_spread: self.night_turnout_spread,
            }),
            injections: self.injections.clone(),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run everything: generate if needed, simulate, process, aggregate, serve.
    #[command(
        after_help = "Examples:\n  votestream run\n  votestream run --voters 1000000 --rate max --until-done\n  votestream run --store sqlite://night.db --listen 0.0.0.0:8080\n  votestream run --night 2m\n  votestream run --night 10m --inject burst@3m --inject swing@4m:OH"
    )]
    Run(commands::run::RunArgs),
    /// Create the default election and generate (or import) the registry.
    #[command(
        after_help = "Examples:\n  votestream generate --voters 1000000\n  votestream generate --from-csv voters.csv\n  votestream generate --from-randomuser results.json\n  votestream generate --voters 1000 --export-csv voters.csv"
    )]
    Generate(commands::generate::GenerateArgs),
    /// Write simulated ballots as JSON lines (to stdout, or --out).
    #[command(
        after_help = "Examples:\n  votestream simulate --rate max > ballots.jsonl\n  votestream simulate --rate 500 | votestream process --input -\n  votestream simulate --night 90s --out night.jsonl\n  votestream simulate --night 5m --inject duplicates@2m:TX --inject after-close@4m --out night.jsonl"
    )]
    Simulate(commands::generate::SimulateArgs),
    /// Validate and record ballots: JSON lines (a file, or - for stdin), or the Kafka `ballots` topic.
    #[command(
        after_help = "Examples:\n  votestream process --input ballots.jsonl\n  votestream simulate | votestream process --input -\n  votestream process --bus kafka://127.0.0.1:9092 --store postgres://postgres@127.0.0.1/votestream --instance 1"
    )]
    Process(commands::process::ProcessArgs),
    /// Bring the built-in engine's results up to date with the votes table (or Kafka's votes_topic).
    #[command(
        after_help = "Examples:\n  votestream aggregate\n  votestream aggregate --follow\n  votestream aggregate --follow --bus kafka://127.0.0.1:9092 --store postgres://postgres@127.0.0.1/votestream\n  votestream aggregate --engine spark --bus kafka://127.0.0.1:9092 --store postgres://postgres@127.0.0.1/votestream\n\nWith --engine spark it runs `bash scripts/spark.sh run` (relative to the current directory,\nor the script VOTESTREAM_SPARK_SCRIPT names) until Ctrl-C/SIGTERM, which it passes on."
    )]
    Aggregate(commands::aggregate::AggregateArgs),
    /// Serve the dashboard and the API; process and count ballots cast over HTTP.
    #[command(
        after_help = "Examples:\n  votestream serve --listen 127.0.0.1:8080\n  VOTESTREAM_API_TOKEN=s3cret votestream serve\n  curl -H 'Authorization: Bearer s3cret' -H 'Idempotency-Key: k1' \\\n    -d '{\"voter_id\":\"…\",\"candidate_id\":\"…\"}' http://127.0.0.1:8080/api/v1/elections/general-2026/ballots"
    )]
    Serve(commands::run::ServeArgs),
    /// Print the current results, the results as of a moment of the night, or what the dashboard showed at a time.
    #[command(
        after_help = "Examples:\n  votestream results\n  votestream results --json\n  votestream results --at 2026-11-03T21:00:00Z\n  votestream results --at-seq 50000 --json\n  votestream results --shown-at 2026-11-03T21:14:00Z"
    )]
    Results(commands::report::ResultsArgs),
    /// Recompute every tally from the votes table; exit 1 on any difference.
    #[command(after_help = "Examples:\n  votestream audit --store sqlite://votestream.db")]
    Audit(commands::report::AuditArgs),
    /// Play a recorded night again into a store of its own, at a speed.
    #[command(
        after_help = "Examples:\n  votestream replay --from sqlite://votestream.db --into sqlite://rehearsal.db\n  votestream replay --from sqlite://votestream.db --into sqlite://rehearsal.db --speed 50x\n  votestream replay --from postgres://postgres@127.0.0.1:15432/votestream \\\n    --into postgres://postgres@127.0.0.1:15432/rehearsal --speed 1x --until 2026-11-03T22:00:00Z\n  votestream replay --from kafka://127.0.0.1:19092 --registry postgres://postgres@127.0.0.1:15432/votestream \\\n    --into postgres://postgres@127.0.0.1:15432/rehearsal --bus 'kafka://127.0.0.1:19092?prefix=rehearsal.'"
    )]
    Replay(commands::replay::ReplayArgs),
    /// Compare two stores' nights (a replay and its original): results, seals, desk events, alert
    /// changes, and each result the dashboard showed, as of its ledger position; exit 1 on the
    /// first difference.
    #[command(
        after_help = "Examples:\n  votestream compare sqlite://votestream.db sqlite://rehearsal.db"
    )]
    Compare(commands::replay::CompareArgs),
    /// Measure every stage and the whole pipeline; print one table and its goals.
    #[command(
        after_help = "Examples:\n  votestream bench\n  votestream bench --voters 200000\n  votestream bench --repeat 5   # each goal over 5 runs back to back\n  votestream bench --store postgres://postgres@127.0.0.1:15432/votestream"
    )]
    Bench(commands::report::BenchArgs),
    /// The race desk alone: seals states whose polls closed, records calls and projections.
    #[command(
        after_help = "Examples:\n  votestream desk\n  votestream desk --store postgres://postgres@127.0.0.1:15432/votestream --bus kafka://127.0.0.1:19092\n  votestream desk --engine spark"
    )]
    Desk(commands::run::DeskArgs),
    /// Grade the race desk on seeded synthetic nights; exit 1 on any wrong or missed call.
    #[command(
        after_help = "Examples:\n  votestream desk-check\n  votestream desk-check --nights 200 --seed 7 --voters 200000"
    )]
    DeskCheck(commands::desk::DeskCheckArgs),
    /// The alerts stage alone: watches the votes ledger, records alerts once.
    #[command(
        after_help = "Examples:\n  votestream alerts\n  votestream alerts --store postgres://postgres@127.0.0.1:15432/votestream --bus kafka://127.0.0.1:19092\n  votestream alerts --alert-webhook http://127.0.0.1:9000/hooks/votestream"
    )]
    Alerts(commands::run::AlertsArgs),
    /// Measure the alert detectors on seeded streams, clean and with anomalies injected.
    #[command(
        after_help = "Examples:\n  votestream alert-check\n  votestream alert-check --nights 100 --seed 7"
    )]
    AlertCheck(commands::desk::AlertCheckArgs),
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

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    let progress = std::io::stderr().is_terminal();
    match cli.command {
        Command::Run(a) => commands::run::run(a, progress),
        Command::Generate(a) => commands::generate::generate(a, progress),
        Command::Simulate(a) => commands::generate::simulate(a),
        Command::Process(a) => commands::process::process(a),
        Command::Aggregate(a) => commands::aggregate::aggregate(a),
        Command::Serve(a) => commands::run::serve(a, progress),
        Command::Results(a) => commands::report::results(a),
        Command::Audit(a) => commands::report::audit(a),
        Command::Replay(a) => commands::replay::replay(a),
        Command::Compare(a) => commands::replay::compare(a),
        Command::Bench(a) => commands::report::bench(a, progress),
        Command::Desk(a) => commands::run::desk(a),
        Command::DeskCheck(a) => commands::desk::desk_check(a),
        Command::AlertCheck(a) => commands::desk::alert_check(a),
        Command::Alerts(a) => commands::run::alerts(a),
    }
}
