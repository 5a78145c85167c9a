//! The whole HTTP intake in-process: the fuzzer's bytes are one client's
//! side of a connection (any number of pipelined requests, or garbage),
//! served by hyper and the real router, with the processor committing to a
//! real SQLite store in a temporary directory. Every answer must be a
//! well-formed HTTP response with a status the API documents, every answer
//! about a ballot must be true of the store, and the store's counters must
//! match its rows.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::MockConnectInfo;
use axum::http::header;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use votestream::bus::memory;
use votestream::process::{self, Processor, Registry};
use votestream::serve::{self, HttpOptions, Intake, Pipeline, Shared, Tokens};
use votestream::shutdown::Shutdown;
use votestream::stats::Stats;
use votestream::store;

pub const API_TOKEN: &str = "fuzz-api-token";
pub const ADMIN_TOKEN: &str = "fuzz-admin-token";
pub const ELECTION: &str = "general-2026";
/// The whole exchange of one input; beyond it the input is a hang.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(20);

struct World {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    db: rusqlite::Connection,
    _stop: serve::IntakeStop,
    _dir: tempfile::TempDir,
}

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

fn world() -> World {
    // RAM-backed when there is one: the commits' fsyncs are not what is tested.
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = tempfile::Builder::new()
        .prefix("votestream-fuzz-")
        .tempdir_in(base)
        .expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("v.db").display());
    let mut store = store::open(&url).expect("store");
    votestream::pipeline::ensure_registry(&mut *store, ELECTION, 42, 20, false).expect("registry");
    let processor = Arc::new(Processor::new(
        Registry::load(&mut *store).expect("registry"),
    ));
    let (ballot_tx, mut ballot_rx) = memory::ballots();
    let stats = Arc::new(Stats::default());
    let health = Arc::new(serve::Health::default());
    health
        .processor_running
        .store(true, std::sync::atomic::Ordering::Relaxed);
    health
        .aggregator_running
        .store(true, std::sync::atomic::Ordering::Relaxed);
    {
        let (processor, stats) = (processor.clone(), stats.clone());
        std::thread::spawn(move || {
            let r = process::run(
                &processor,
                &mut *store,
                &mut ballot_rx,
                None,
                &stats,
                &Shutdown::default(),
            );
            // It ends cleanly when the process does (the intake closes);
            // failing is a finding.
            if let Err(e) = r {
                eprintln!("the processor failed: {e:#}");
                std::process::abort();
            }
        });
    }
    let (intake, stop) = Intake::start(Box::new(ballot_tx));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let snapshots = {
        let _guard = rt.enter();
        // The harness keeps no checkpoints and no record of what it showed.
        let keepers = serve::snapshot::Keepers {
            checkpoints: None,
            shown: None,
        };
        serve::snapshot::start(
            store::open(&url).expect("store"),
            keepers,
            stats,
            health.clone(),
        )
        .0
    };
    let opts = HttpOptions {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        tokens: Tokens {
            api: API_TOKEN.into(),
            admin: ADMIN_TOKEN.into(),
        },
        rate_limit: 0.0,
        rate_burst: 0.0,
        max_body: 16 * 1024,
        limits: serve::Limits::default(),
    };
    let shared = Shared::new(
        store::open(&url).expect("store"),
        snapshots,
        ELECTION.into(),
        &opts,
        Pipeline {
            intake: Some(intake),
            processor: Some(processor),
            health,
        },
    );
    let app = serve::router(shared)
        .layer(axum::middleware::map_response(end_streams))
        .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))));
    let db = rusqlite::Connection::open_with_flags(
        dir.path().join("v.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("reader");
    db.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    World {
        rt,
        app,
        db,
        _stop: stop,
        _dir: dir,
    }
}

/// An SSE stream never ends: its head is checked, its body cut.
async fn end_streams(resp: Response) -> Response {
    let sse = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !sse {
        return resp;
    }
    let (parts, _) = resp.into_parts();
    Response::from_parts(parts, axum::body::Body::empty())
}

pub fn check(data: &[u8]) {
    WORLD.with(|w| {
        let mut w = w.borrow_mut();
        let w = w.get_or_insert_with(world);
        let out = w.rt.block_on(exchange(w.app.clone(), data.to_vec()));
        let responses = parse_responses(&out);
        for r in &responses {
            check_response(w, r);
        }
        check_counters(&w.db);
    })
}

async fn exchange(app: axum::Router, input: Vec<u8>) -> Vec<u8> {
    let (client, server) = tokio::io::duplex(1 << 16);
    let conn = hyper::server::conn::http1::Builder::new()
        .half_close(true)
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(5))
        .serve_connection(TokioIo::new(server), TowerToHyperService::new(app));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let (mut rd, mut wr) = tokio::io::split(client);
    tokio::spawn(async move {
        let _ = wr.write_all(&input).await;
        let _ = wr.shutdown().await;
    });
    let mut out = Vec::new();
    let done = tokio::time::timeout(EXCHANGE_LIMIT, rd.read_to_end(&mut out)).await;
    assert!(
        done.is_ok(),
        "hang: no end of the exchange within {EXCHANGE_LIMIT:?}; got so far: {}",
        String::from_utf8_lossy(&out)
    );
    out
}

pub struct Parsed {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Splits what the server wrote into responses; anything that is not a
/// well-formed HTTP/1.1 response is a failure.
pub fn parse_responses(mut out: &[u8]) -> Vec<Parsed> {
    let mut all = Vec::new();
    while !out.is_empty() {
        let end = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| {
                panic!(
                    "response without a full head: {:?}",
                    String::from_utf8_lossy(out)
                )
            });
        let head = std::str::from_utf8(&out[..end]).expect("response head is not UTF-8");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        // An HTTP/1.0 request is answered in HTTP/1.0.
        assert!(
            status_line.starts_with("HTTP/1.1 ") || status_line.starts_with("HTTP/1.0 "),
            "bad status line {status_line:?}"
        );
        let status: u16 = status_line[9..]
            .get(..3)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (k, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad header {l:?}"));
                (k.trim().to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let mut rest = &out[end + 4..];
        let body = if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            let mut body = Vec::new();
            loop {
                let line_end = rest
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .expect("chunk size line");
                let size = usize::from_str_radix(
                    std::str::from_utf8(&rest[..line_end])
                        .expect("chunk size")
                        .trim(),
                    16,
                )
                .expect("chunk size");
                rest = &rest[line_end + 2..];
                body.extend_from_slice(&rest[..size]);
                rest = &rest[size + 2..];
                if size == 0 {
                    break;
                }
            }
            body
        } else {
            let len: usize =
                get("content-length").map_or(0, |v| v.parse().expect("content-length"));
            assert!(rest.len() >= len, "response body cut short");
            let body = rest[..len].to_vec();
            rest = &rest[len..];
            body
        };
        all.push(Parsed {
            status,
            headers,
            body,
        });
        out = rest;
    }
    all
}

fn check_response(w: &World, r: &Parsed) {
    let text = String::from_utf8_lossy(&r.body);
    // 500 is a bug; 503 only happens when the store fails, and this one
    // does not unless a bad ballot broke it.
    if matches!(r.status, 500 | 503) {
        panic!("answered {}: {text}", r.status);
    }
    assert!(
        (200..600).contains(&r.status),
        "status {} is not one the API gives",
        r.status
    );
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&r.body) else {
        return;
    };
    let (Some(id), Some(status)) = (json["ballot_id"].as_str(), json["status"].as_str()) else {
        return;
    };
    // Every answer about a ballot is true of the store.
    match status {
        "accepted" => {
            assert_eq!(r.status, 202);
            let n: i64 =
                w.db.query_row(
                    "SELECT COUNT(*) FROM votes WHERE ballot_id = ?1",
                    [id],
                    |row| row.get(0),
                )
                .expect("query");
            assert_eq!(
                n, 1,
                "answered accepted, but {n} votes carry ballot_id {id:?}"
            );
        }
        "rejected" => {
            let reason = json["reason"]
                .as_str()
                .expect("a rejection names its reason");
            let error = json["error"].as_str().expect("a rejection names its code");
            if reason == "ballot_id_reused" {
                // The id names other content: this request is recorded
                // under an id the store derives from it, the id's first
                // outcome stands under the id itself.
                let n: i64 =
                    w.db.query_row(
                        "SELECT COUNT(*) FROM rejected_ballots WHERE reason = 'ballot_id_reused'
                         AND substr(ballot_id, 1, length(?1) + 8) = ?1 || '~reused-'",
                        [id],
                        |row| row.get(0),
                    )
                    .expect("query");
                assert!(
                    n >= 1,
                    "answered ballot_id_reused for {id:?}, none recorded"
                );
                // With an Idempotency-Key it is the key that was reused.
                let (want_error, want_status) = if id.starts_with("http-key-") {
                    ("idempotency_key_reused", 422)
                } else {
                    ("ballot_id_reused", 409)
                };
                assert_eq!((error, r.status), (want_error, want_status), "{text}");
                return;
            }
            assert_eq!(error, reason, "{text}");
            let stored: Option<String> =
                w.db.query_row(
                    "SELECT reason FROM rejected_ballots WHERE ballot_id = ?1",
                    [id],
                    |row| row.get(0),
                )
                .ok();
            assert_eq!(
                stored.as_deref(),
                Some(reason),
                "answered rejected ({reason}) for {id:?}, the store says {stored:?}"
            );
            assert_eq!(
                serve::ballots::status_for(parse_reason(reason)).as_u16(),
                r.status
            );
        }
        other => panic!("unknown ballot status {other:?}: {text}"),
    }
}

fn parse_reason(s: &str) -> votestream::model::RejectReason {
    votestream::model::RejectReason::ALL
        .into_iter()
        .find(|r| r.as_str() == s)
        .unwrap_or_else(|| panic!("unknown reason {s:?}"))
}

/// The counters the results API shows agree with the rows they count.
fn check_counters(db: &rusqlite::Connection) {
    let tx = db.unchecked_transaction().expect("read transaction");
    let rows = |sql: &str| -> BTreeMap<(String, String), i64> {
        let mut st = tx.prepare(sql).expect("prepare");
        let it = st
            .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))
            .expect("query");
        it.map(|r| r.expect("row"))
            .filter(|(_, n)| *n != 0)
            .collect()
    };
    let counters = rows("SELECT election_id, outcome, n FROM ballot_counts");
    let mut counted = rows(
        "SELECT COALESCE(election_id, ''), reason, COUNT(*) FROM rejected_ballots GROUP BY 1, 2",
    );
    counted.extend(rows(
        "SELECT election_id, 'accepted', COUNT(*) FROM votes GROUP BY 1",
    ));
    assert_eq!(
        counters, counted,
        "ballot_counts disagree with the stored rows"
    );
}
