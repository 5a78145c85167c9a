//! PostgreSQL: a fresh database per test on the server VOTESTREAM_TEST_PG_URL
//! names, and direct SQL on either backend to check what a store actually
//! wrote.

/// The server the PostgreSQL tests use. Never skips: without one the test
/// fails and says how to get one.
pub fn pg_server_url() -> String {
    std::env::var("VOTESTREAM_TEST_PG_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| {
            panic!(
                "no PostgreSQL for the tests: run `bash scripts/pg.sh start` and export \
                 VOTESTREAM_TEST_PG_URL=$(bash scripts/pg.sh url) (or set DATABASE_URL); \
                 `bash scripts/test.sh` does both"
            )
        })
}

/// A database of its own, created fresh and dropped at the end, so tests run
/// in parallel without seeing each other's rows.
pub struct TempDb {
    pub url: String,
    name: String,
    server: String,
}

impl TempDb {
    pub fn new() -> TempDb {
        let server = pg_server_url();
        let name = format!("test_{}", super::unique_name('_'));
        let mut admin = postgres::Client::connect(&server, postgres::NoTls).unwrap_or_else(|e| {
            panic!("cannot reach PostgreSQL at {server}: {e} (run `bash scripts/pg.sh start`)")
        });
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create the test database");
        let url = with_database(&server, &name);
        TempDb { url, name, server }
    }

    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect to the test database")
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&self.server, postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// The server URL with its database replaced.
pub fn with_database(server: &str, db: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{base}/{db}{query}")
}

/// One row of `rejected_ballots`, as stored.
pub type RejectionRow = (
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
);

/// Direct SQL on a store's database, whichever backend it is.
pub enum Raw {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Raw {
    pub fn rejections(&self) -> Vec<RejectionRow> {
        let sql = "SELECT ballot_id, election_id, voter_id, reason, detail, raw FROM rejected_ballots ORDER BY id";
        match self {
            Raw::Sqlite(p) => {
                let c = rusqlite::Connection::open(p).unwrap();
                let mut s = c.prepare(sql).unwrap();
                s.query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
            }
            Raw::Postgres(url) => {
                let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
                c.query(sql, &[])
                    .unwrap()
                    .iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
                    .collect()
            }
        }
    }

    /// Runs statements (test set-up that no store method does).
    pub fn execute(&self, sql: &str) {
        match self {
            Raw::Sqlite(p) => rusqlite::Connection::open(p)
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
            Raw::Postgres(url) => postgres::Client::connect(url, postgres::NoTls)
                .unwrap()
                .batch_execute(sql)
                .unwrap(),
        }
    }

    /// Every table of a store, each as a digest of all its rows.
    pub fn checksums(&self) -> std::collections::BTreeMap<String, String> {
        match self {
            Raw::Sqlite(path) => {
                let db = super::sqlite::open_ro(path).unwrap();
                let tables: Vec<String> = db
                    .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                    .unwrap()
                    .query_map([], |r| r.get(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                tables
                    .into_iter()
                    .map(|t| {
                        let sql = format!("SELECT * FROM \"{t}\" ORDER BY 1, 2");
                        let mut stmt = db.prepare(&sql).unwrap();
                        let n = stmt.column_count();
                        let mut rows = stmt.query([]).unwrap();
                        let mut text = String::new();
                        while let Some(r) = rows.next().unwrap() {
                            for i in 0..n {
                                text.push_str(&format!("{:?}|", r.get_ref(i).unwrap()));
                            }
                            text.push('\n');
                        }
                        (
                            t,
                            format!("{} rows, {:x}", text.lines().count(), fnv(&text)),
                        )
                    })
                    .collect()
            }
            Raw::Postgres(url) => {
                let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
                let tables: Vec<String> = c
                    .query(
                        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
                        &[],
                    )
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                tables
                .into_iter()
                .map(|t| {
                    let sql = format!(
                        "SELECT COUNT(*)::text || ' rows, ' || COALESCE(md5(string_agg(x::text, '|' \
                         ORDER BY x::text)), '') FROM \"{t}\" x"
                    );
                    (t, c.query_one(&sql, &[]).unwrap().get(0))
                })
                .collect()
            }
        }
    }

    /// A single integer from a query (counts, max).
    pub fn scalar(&self, sql: &str) -> i64 {
        match self {
            Raw::Sqlite(p) => rusqlite::Connection::open(p)
                .unwrap()
                .query_row(sql, [], |r| r.get(0))
                .unwrap(),
            Raw::Postgres(url) => postgres::Client::connect(url, postgres::NoTls)
                .unwrap()
                .query_one(sql, &[])
                .unwrap()
                .get(0),
        }
    }
}

/// FNV-1a of a text: a digest that needs no crate.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// Checks the votes table of a PostgreSQL store: one vote per (election,
/// voter), and seq exactly 1..=count. Returns the count.
pub fn pg_votes_are_unique_and_gap_free(url: &str) -> i64 {
    let mut c = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    let row = c
        .query_one(
            "SELECT COUNT(*), COUNT(DISTINCT (election_no, voter_no)), COALESCE(MIN(seq), 1), COALESCE(MAX(seq), 0)
             FROM votes",
            &[],
        )
        .expect("count votes");
    let (n, distinct, min, max): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(n, distinct, "a voter has two votes in one election");
    assert_eq!((min, max), (1, n), "seq is not 1..=count");
    n
}
