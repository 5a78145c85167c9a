//! Needs: nothing.
//!
//! Loading a registry instead of generating one: a CSV export round-trips
//! into another store, a saved randomuser.me response (what the original
//! tutorial fetched) imports and can vote, and a bad CSV row is named and
//! imports nothing.

mod support;

use support::*;

/// Every column of the voters table but voter_no, in a stable order.
const VOTER_COLUMNS: &str = "voter_id, voter_name, date_of_birth, gender, nationality, \
     registration_number, address_street, address_city, address_state, address_country, \
     address_postcode, email, phone_number, cell_number, picture, registered_age";

fn voter_rows(store: &TestStore) -> Vec<Vec<String>> {
    let db = store.db();
    let mut stmt = db
        .prepare(&format!(
            "SELECT {VOTER_COLUMNS} FROM voters ORDER BY voter_id"
        ))
        .unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        (0..n)
            .map(|i| {
                Ok(match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Integer(x) => format!("int:{x}"),
                    rusqlite::types::ValueRef::Text(t) => {
                        format!("text:{}", String::from_utf8_lossy(t))
                    }
                    other => format!("{other:?}"),
                })
            })
            .collect::<rusqlite::Result<Vec<String>>>()
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

#[test]
fn a_csv_export_imports_into_another_store_unchanged() {
    let a = TestStore::new();
    let csv = a.file("voters.csv");
    let out = votestream_ok(&[
        "generate",
        "--store",
        &a.url,
        "--voters",
        "500",
        "--export-csv",
        csv.to_str().unwrap(),
    ]);
    assert!(
        stdout(&out).starts_with("added 500 voters"),
        "{}",
        stdout(&out)
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 501, "a header and 500 rows");
    assert!(text.starts_with("voter_id,voter_name,date_of_birth,"));

    let b = TestStore::new();
    let import = || {
        votestream_ok(&[
            "generate",
            "--store",
            &b.url,
            "--from-csv",
            csv.to_str().unwrap(),
        ])
    };
    assert!(stdout(&import()).starts_with("added 500 voters"));
    let rows_a = voter_rows(&a);
    let rows_b = voter_rows(&b);
    assert_eq!(rows_a.len(), 500);
    assert_eq!(rows_b, rows_a, "every column of every voter survives");
    assert_eq!(int(&b.results(), "registered_voters"), 500);

    // Importing the same file again adds nobody.
    assert!(stdout(&import()).starts_with("added 0 voters"));
    assert_eq!(count(&b.db(), "SELECT COUNT(*) FROM voters"), 500);
    assert_eq!(int(&b.results(), "registered_voters"), 500);
}

/// Three people as randomuser.me's API returns them (abridged only of fields
/// the import ignores); the first has a numeric postcode, as randomuser
/// sends for some nationalities.
const RANDOMUSER: &str = r#"{"results":[
  {"gender":"female","name":{"title":"Ms","first":"Jennie","last":"Nichols"},
   "location":{"street":{"number":8929,"name":"Valwood Pkwy"},"city":"Billings","state":"Michigan",
               "country":"United States","postcode":63104,
               "coordinates":{"latitude":"-69.8246","longitude":"134.8719"},
               "timezone":{"offset":"+9:30","description":"Adelaide, Darwin"}},
   "email":"jennie.nichols@example.com",
   "login":{"uuid":"7a0eed16-9430-4d68-901f-c0d4c1c3bf00","username":"yellowpeacock117",
            "password":"addison","salt":"sld1yGtd","md5":"ab54ac4c0be9480ae8fa5e9e2a5196a3"},
   "dob":{"date":"1992-03-08T15:13:16.688Z","age":34},
   "registered":{"date":"2007-07-09T05:51:59.390Z","age":19},
   "phone":"(272) 790-0888","cell":"(489) 330-2385","id":{"name":"SSN","value":"405-88-3636"},
   "picture":{"large":"https://randomuser.me/api/portraits/women/75.jpg",
              "medium":"https://randomuser.me/api/portraits/med/women/75.jpg",
              "thumbnail":"https://randomuser.me/api/portraits/thumb/women/75.jpg"},
   "nat":"US"},
  {"gender":"male","name":{"title":"Mr","first":"Brad","last":"O'Connor <b>"},
   "location":{"street":{"number":4105,"name":"Royal Ln"},"city":"Austin","state":"Texas",
               "country":"United States","postcode":"78701"},
   "email":"brad.oconnor@example.com",
   "login":{"uuid":"3c9a1f0e-5b7d-4e2a-9c8b-1d2e3f4a5b6c","username":"tinybird512"},
   "dob":{"date":"1961-11-30T01:02:03.000Z","age":65},
   "registered":{"date":"2010-01-01T00:00:00.000Z","age":16},
   "phone":"(512) 555-0143","cell":"(512) 555-0187",
   "picture":{"large":"https://randomuser.me/api/portraits/men/12.jpg"},"nat":"US"},
  {"gender":"female","name":{"title":"Miss","first":"Zoë","last":"Åberg"},
   "location":{"street":{"number":77,"name":"Lake Shore Dr"},"city":"Chicago","state":"Illinois",
               "country":"United States","postcode":"60611"},
   "email":"zoe.aberg@example.com",
   "login":{"uuid":"e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b","username":"redcat77"},
   "dob":{"date":"2004-05-20T12:00:00.000Z","age":22},
   "registered":{"date":"2022-05-20T12:00:00.000Z","age":4},
   "phone":"(312) 555-0100","cell":"(312) 555-0101",
   "picture":{"large":"https://randomuser.me/api/portraits/women/3.jpg"},"nat":"US"}
],"info":{"seed":"56d27f4a53bd5441","results":3,"page":1,"version":"1.4"}}"#;

#[test]
fn a_randomuser_response_imports_and_its_people_can_vote() {
    let store = TestStore::new();
    let json = store.file("randomuser.json");
    std::fs::write(&json, RANDOMUSER).unwrap();
    let out = votestream_ok(&[
        "generate",
        "--store",
        &store.url,
        "--from-randomuser",
        json.to_str().unwrap(),
    ]);
    assert!(
        stdout(&out).starts_with("added 3 voters"),
        "{}",
        stdout(&out)
    );

    let db = store.db();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM voters"), 3);
    let row = |uuid: &str| -> (String, String, String, String, String, String, i64) {
        db.query_row(
            "SELECT voter_name, date_of_birth, address_street, address_postcode,
                    registration_number, picture, registered_age
             FROM voters WHERE voter_id = ?1",
            [uuid],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .unwrap_or_else(|e| panic!("voter {uuid} not imported: {e}"))
    };
    assert_eq!(
        row("7a0eed16-9430-4d68-901f-c0d4c1c3bf00"),
        (
            "Jennie Nichols".into(),
            "1992-03-08".into(),
            "8929 Valwood Pkwy".into(),
            "63104".into(),
            "yellowpeacock117".into(),
            "https://randomuser.me/api/portraits/women/75.jpg".into(),
            34
        ),
        "numeric postcode kept as text; age from dob.age"
    );
    let brad = row("3c9a1f0e-5b7d-4e2a-9c8b-1d2e3f4a5b6c");
    assert_eq!(brad.0, "Brad O'Connor <b>", "names kept verbatim");
    assert_eq!(brad.6, 65);
    let zoe = row("e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b");
    assert_eq!(zoe.0, "Zoë Åberg");
    assert_eq!(zoe.3, "60611");
    let (gender, state): (String, String) = db
        .query_row(
            "SELECT gender, address_state FROM voters WHERE voter_id = ?1",
            ["3c9a1f0e-5b7d-4e2a-9c8b-1d2e3f4a5b6c"],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((gender.as_str(), state.as_str()), ("male", "Texas"));
    drop(db);

    // The imported registry is the one the processor checks ballots against.
    let now = chrono::Utc::now() - chrono::Duration::seconds(5);
    let t = now.format("%Y-%m-%d %H:%M:%S").to_string();
    let ballots = store.file("ballots.jsonl");
    let line = |id: &str, voter: &str, cand: &str| {
        serde_json::json!({"ballot_id": id, "election_id": ELECTION, "voter_id": voter,
                           "candidate_id": cand, "voting_time": t})
        .to_string()
    };
    std::fs::write(
        &ballots,
        [
            line("r-1", "7a0eed16-9430-4d68-901f-c0d4c1c3bf00", "c-savior"),
            line(
                "r-2",
                "3c9a1f0e-5b7d-4e2a-9c8b-1d2e3f4a5b6c",
                "c-management",
            ),
            line("r-3", "00000000-0000-0000-b082-e16334733c85", "c-savior"),
        ]
        .join("\n"),
    )
    .unwrap();
    let out = votestream_ok(&[
        "process",
        "--store",
        &store.url,
        "--input",
        ballots.to_str().unwrap(),
    ]);
    assert_eq!(
        stdout(&out).trim(),
        "processed 3 ballots: 2 accepted, 1 rejected, 0 replays skipped",
        "a generated voter id is unknown in an imported registry"
    );
    votestream_ok(&["aggregate", "--store", &store.url]);
    assert!(store.audit_passes());
    let r = store.results();
    assert_eq!(int(&r, "registered_voters"), 3);
    assert_eq!(int(&r, "counted"), 2);
    let states: Vec<(String, i64)> = r["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["state"].as_str().unwrap().to_string(),
                s["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [("Michigan".to_string(), 1), ("Texas".to_string(), 1)]
    );
}

#[test]
fn a_bad_csv_row_is_named_and_nothing_is_imported() {
    let a = TestStore::new();
    let good = a.file("voters.csv");
    votestream_ok(&[
        "generate",
        "--store",
        &a.url,
        "--voters",
        "500",
        "--export-csv",
        good.to_str().unwrap(),
    ]);
    // Row 250 (line 251: the header is line 1) gets registered_age "abc".
    let text = std::fs::read_to_string(&good).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let row = &mut lines[250];
    let cut = row.rfind(',').expect("a CSV row");
    row.truncate(cut + 1);
    row.push_str("abc");
    let bad = a.file("bad.csv");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();

    let b = TestStore::new();
    let out = votestream(&[
        "generate",
        "--store",
        &b.url,
        "--from-csv",
        bad.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "a bad row must fail the import");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 251"), "names the line: {err}");
    assert!(err.contains("registered_age"), "names the field: {err}");
    assert!(err.contains("\"abc\""), "shows the value: {err}");
    // The 249 good rows before it are not imported either.
    if b.path.exists() {
        assert_eq!(count(&b.db(), "SELECT COUNT(*) FROM voters"), 0);
        assert_eq!(int(&b.results(), "registered_voters"), 0);
    }
}
