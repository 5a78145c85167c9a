//! Needs: PostgreSQL.
//!
//! `results` (also as of a moment) and `audit` on PostgreSQL only read:
//! they run as a role that may SELECT and nothing else (no schema change is
//! attempted), and every session they open is read-only.

mod support;

use support::{votestream, votestream_ok, TempDb};

#[test]
fn results_and_audit_work_as_a_select_only_role() {
    let db = TempDb::new();
    votestream_ok(&["generate", "--store", &db.url, "--voters", "20"]);
    let role = format!("reader_{}", std::process::id());
    let mut admin = db.client();
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN;
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};"
        ))
        .unwrap();
    // The same database, as the reader (the test server trusts local logins).
    let reader_url = {
        let (scheme_user, rest) = db.url.split_once('@').unwrap();
        let scheme = scheme_user.split("//").next().unwrap();
        format!("{scheme}//{role}@{rest}")
    };
    let results = votestream(&["results", "--store", &reader_url, "--json"]);
    let audit = votestream(&["audit", "--store", &reader_url]);
    let at = votestream(&["results", "--store", &reader_url, "--json", "--at-seq", "0"]);
    drop(db); // drops the database, and with it the grants
    let mut server = postgres::Client::connect(&support::pg_server_url(), postgres::NoTls).unwrap();
    let _ = server.batch_execute(&format!("DROP ROLE IF EXISTS {role}"));

    assert!(
        results.status.success(),
        "results as a SELECT-only role: {}",
        String::from_utf8_lossy(&results.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&results.stdout).unwrap();
    assert_eq!(r["registered_voters"], 20, "{r}");
    assert!(
        audit.status.success(),
        "audit as a SELECT-only role: {}",
        String::from_utf8_lossy(&audit.stderr)
    );
    assert!(
        at.status.success(),
        "results --at-seq as a SELECT-only role: {}",
        String::from_utf8_lossy(&at.stderr)
    );
}
