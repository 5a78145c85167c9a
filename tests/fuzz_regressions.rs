//! Needs: nothing.
//!
//! What the fuzzer (fuzz/, see docs/FUZZING.md) found, as plain tests: each
//! input it reported, reduced, with the behaviour that must hold.

use votestream::generate::import::{from_csv, from_randomuser_json};
use votestream::process::parse::{parse_ballot, MAX_ID_BYTES};

const COLUMNS: &str = "voter_id,voter_name,date_of_birth,gender,nationality,registration_number,\
address_street,address_city,address_state,address_country,address_postcode,email,phone_number,\
cell_number,picture,registered_age";

fn csv_row(voter_id: &str, name: &str) -> String {
    format!("{COLUMNS}\n{voter_id},{name},1990-01-02,female,US,r1,1 Main,Austin,Texas,US,1,a@b,1,2,p,36\n")
}

/// Found by the import target: a NUL in any text field was imported, and
/// the store (PostgreSQL cannot keep U+0000) then refused the whole batch.
#[test]
fn a_csv_voter_with_nul_is_refused_with_its_line() {
    let err = from_csv(csv_row("v-1", "A\u{0}B").as_bytes()).expect_err("NUL imported");
    let msg = err.to_string();
    assert!(
        msg.contains("line 2") && msg.contains("voter_name"),
        "{msg}"
    );
    let json = r#"{"results":[{"gender":"male","name":{"title":"Mr","first":"A\u0000","last":"B"},
        "location":{"street":{"number":1,"name":"Main"},"city":"c","state":"Texas","country":"US","postcode":1},
        "email":"e","login":{"uuid":"u-1","username":"u"},"dob":{"date":"1990-01-02T00:00:00Z","age":35},
        "phone":"1","cell":"2","picture":{"large":"p"},"nat":"US"}]}"#;
    assert!(
        from_randomuser_json(json.as_bytes()).is_err(),
        "NUL imported from randomuser JSON"
    );
}

/// Found by the import target: a voter_id longer than any ballot may carry
/// was imported: that voter could never vote.
#[test]
fn a_csv_voter_id_longer_than_a_ballot_allows_is_refused() {
    let id = "v".repeat(MAX_ID_BYTES + 1);
    let err = from_csv(csv_row(&id, "A").as_bytes()).expect_err("overlong voter_id imported");
    assert!(err.to_string().contains("voter_id"), "{err}");
}

/// The parse target's invariant, on the shapes the fuzzer's corpus grew
/// from: a ballot or a rejection with a reason, never a panic, the same
/// answer twice.
#[test]
fn parse_gives_a_ballot_or_a_reasoned_rejection_for_odd_inputs() {
    for raw in [
        &b"{\"ballot_id\":\"b\",\"election_id\":\"e\",\"voter_id\":\"v\",\"candidate_id\":\"c\",\"voting_time\":\"2026-01-01T00:00:00.999999999+14:00\"}"[..],
        b"{\"ballot_id\":\"\\ud83d\\ude00\",\"election_id\":\"e\",\"voter_id\":\"v\",\"candidate_id\":\"c\",\"voting_time\":\"2026-01-01 00:00:00\",\"x\":\"\\ud800\"}",
        b"{\"ballot_id\":\"b\",\"ballot_id\":\"b\"}",
        b"\xef\xbb\xbf{}",
        b"{\"voting_time\":\"0000-01-01 00:00:00\",\"ballot_id\":\"b\",\"election_id\":\"e\",\"voter_id\":\"v\",\"candidate_id\":\"c\"}",
    ] {
        let a = parse_ballot(raw, 7);
        let b = parse_ballot(raw, 7);
        match (a, b) {
            (Ok(x), Ok(y)) => assert_eq!(x, y),
            (Err(x), Err(y)) => {
                assert_eq!((x.ballot_id.as_str(), x.reason), (y.ballot_id.as_str(), y.reason));
                assert!(!x.detail.is_empty() && !x.raw.contains('\0'));
            }
            _ => panic!("two outcomes for {raw:?}"),
        }
    }
}

/// Found by the parse target: `-026-01-01 00:00:00` was read as the year
/// -26, and the ballot the API then puts on the bus (RFC 3339,
/// `-0026-…`) was refused by the processor as `invalid_field`: one ballot,
/// two readings. Only the exact `YYYY-MM-DD HH:MM:SS` shape is taken now.
#[test]
fn a_voting_time_reads_the_same_after_it_is_put_on_the_bus() {
    use votestream::process::parse::ballot_json;
    let ballot = |t: &str| {
        format!(
            r#"{{"ballot_id":"b","election_id":"e","voter_id":"v","candidate_id":"c","voting_time":"{t}"}}"#
        )
    };
    for odd in [
        "-026-01-01 00:00:00",
        "+2026-01-01 00:00:00",
        "26-01-01 00:00:00",
        "2026-1-01 00:00:00",
    ] {
        let r = parse_ballot(ballot(odd).as_bytes(), 0).expect_err(odd);
        assert_eq!(
            r.reason,
            votestream::model::RejectReason::InvalidField,
            "{odd}"
        );
    }
    for good in [
        "2026-11-28 01:02:03",
        "0026-01-01 00:00:00",
        "2026-11-28T01:02:03.5+02:00",
    ] {
        let b = parse_ballot(ballot(good).as_bytes(), 0).expect(good);
        let again = parse_ballot(ballot_json(&b).as_bytes(), 0).expect("the bus form reads back");
        assert_eq!(again, b, "{good}");
    }
}
