//! Needs: nothing.
//!
//! The command line at its edge: numeric flags out of range are clear errors
//! (never a run that does nothing and exits 0), `results` and `audit` only
//! read (a missing store is an error, a read-only file is fine), and an empty
//! SQLite path is named as the mistake it is.

mod support;

use std::path::Path;
use std::process::Output;

use support::{bin, output_within, scrubbed, stderr, store_with_voters, votestream, DEADLINE};

#[test]
fn numeric_flags_out_of_range_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 20);
    let cases: &[(&[&str], &str)] = &[
        (&["simulate", "--turnout", "NaN"], "--turnout"),
        (&["simulate", "--turnout", "-1"], "--turnout"),
        (&["simulate", "--turnout=-1"], "--turnout"),
        (&["simulate", "--turnout", "1.5"], "--turnout"),
        (
            &["simulate", "--duplicate-share", "inf"],
            "--duplicate-share",
        ),
        (&["simulate", "--invalid-share", "-0.5"], "--invalid-share"),
        (&["simulate", "--late-share", "2"], "--late-share"),
        (&["run", "--rate-limit", "-5"], "--rate-limit"),
        (&["run", "--rate-burst", "NaN"], "--rate-burst"),
        (&["serve", "--max-body", "0"], "--max-body"),
        (&["serve", "--http-workers", "0"], "--http-workers"),
        (&["serve", "--header-timeout", "0"], "--header-timeout"),
        (&["serve", "--idle-timeout", "-1"], "--idle-timeout"),
        (&["serve", "--max-connections", "0"], "--max-connections"),
        (&["process", "--until-idle", "NaN"], "--until-idle"),
        (&["aggregate", "--until-idle", "-3"], "--until-idle"),
        (&["bench", "--seconds", "0"], "--seconds"),
        (&["bench", "--voters", "0"], "--voters"),
        (&["bench", "--repeat", "0"], "--repeat"),
        (&["bench", "--http", "--h2-streams", "1000"], "--h2-streams"),
    ];
    for (args, flag) in cases {
        let mut full = args.to_vec();
        full.extend(["--store", &store]);
        let out = votestream(&full);
        let err = stderr(&out);
        assert!(!out.status.success(), "{full:?} succeeded:\n{err}");
        assert!(
            err.contains("invalid value") && err.contains(flag),
            "{full:?} must name the flag and the problem:\n{err}"
        );
        assert!(out.stdout.is_empty(), "{full:?} wrote output");
    }
    // In range still works.
    let out = votestream(&[
        "simulate",
        "--store",
        &store,
        "--turnout",
        "0.5",
        "--rate",
        "max",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!out.stdout.is_empty());
}

#[test]
fn results_and_audit_never_create_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo.db");
    let url = format!("sqlite://{}", missing.display());
    for cmd in ["results", "audit"] {
        let out = votestream(&[cmd, "--store", &url]);
        assert!(!out.status.success(), "{cmd} on a missing store succeeded");
        assert!(
            stderr(&out).contains("no store at"),
            "{cmd}: {}",
            stderr(&out)
        );
        assert!(!missing.exists(), "{cmd} created {}", missing.display());
    }
}

#[test]
fn an_empty_sqlite_path_is_named_as_the_mistake() {
    for cmd in ["results", "audit", "generate"] {
        let out = votestream(&[cmd, "--store", "sqlite://"]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{cmd}: {err}");
        assert!(
            err.contains("unsupported store URL `sqlite://`") && !err.contains("unknown election"),
            "{cmd}: {err}"
        );
    }
}

/// Runs `votestream` so that it cannot write `path`: as user `nobody` when
/// the tests run as root (root writes any file), else after `chmod a-w`.
fn read_only_run(dir: &Path, db: &Path, args: &[&str]) -> Output {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(db, std::fs::Permissions::from_mode(0o644)).unwrap();
        // `nobody` may not be able to reach the build directory.
        let exe = dir.join("votestream-copy");
        if !exe.exists() {
            std::fs::copy(bin(), &exe).unwrap();
        }
        output_within(
            scrubbed("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&exe)
                .args(args),
            DEADLINE,
        )
    } else {
        std::fs::set_permissions(db, std::fs::Permissions::from_mode(0o444)).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        votestream(args)
    }
}

#[test]
fn results_and_audit_read_a_read_only_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_voters(dir.path(), 20);
    // A few votes, so there is something to read and recount.
    let ballots = dir.path().join("b.jsonl");
    let out = votestream(&[
        "simulate",
        "--store",
        &store,
        "--rate",
        "max",
        "--out",
        ballots.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = votestream(&[
        "process",
        "--store",
        &store,
        "--input",
        ballots.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = votestream(&["aggregate", "--store", &store]);
    assert!(out.status.success(), "{}", stderr(&out));
    let db = dir.path().join("v.db");
    let before = std::fs::read(&db).unwrap();

    let out = read_only_run(dir.path(), &db, &["results", "--store", &store, "--json"]);
    assert!(out.status.success(), "results: {}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["counted"].as_i64().unwrap() > 0, "{r}");
    let out = read_only_run(dir.path(), &db, &["audit", "--store", &store]);
    assert!(out.status.success(), "audit: {}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("audit passed"));
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "a read changed the file"
    );
}

#[test]
fn metrics_listen_off_the_kafka_shape_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("v.db").display());
    for sub in ["process", "aggregate"] {
        let out = votestream(&[sub, "--store", &store, "--metrics-listen", "127.0.0.1:0"]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{sub} accepted it:\n{err}");
        assert!(
            err.contains("--metrics-listen is for the Kafka shape"),
            "{sub}: {err}"
        );
    }
}
