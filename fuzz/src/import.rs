//! `generate::import`: a voters CSV or a randomuser.me response, any bytes.
//! What is imported must be storable and, for CSV, read back unchanged.

use std::cell::RefCell;

use votestream::generate::import::{from_csv, from_randomuser_json, write_csv};
use votestream::model::Voter;
use votestream::process::parse::MAX_ID_BYTES;
use votestream::store::{self, Store};

thread_local! {
    static STORE: RefCell<Option<Box<dyn Store>>> = const { RefCell::new(None) };
}

pub fn check(data: &[u8]) {
    if let Ok(voters) = from_csv(data) {
        if !check_voters(&voters) {
            return;
        }
        let mut out = Vec::new();
        write_csv(&voters, &mut out).expect("writing CSV to memory");
        let back = from_csv(&out[..]).unwrap_or_else(|e| {
            panic!(
                "our own CSV does not read back: {e}\n{}",
                String::from_utf8_lossy(&out)
            )
        });
        assert_eq!(back, voters, "voters changed through write_csv/from_csv");
        store_voters(&voters);
    }
    if let Ok(voters) = from_randomuser_json(data) {
        if !check_voters(&voters) {
            return;
        }
        store_voters(&voters);
    }
}

/// False when the input reached a known bug and is skipped.
fn check_voters(voters: &[Voter]) -> bool {
    let mut ids = std::collections::HashSet::new();
    for v in voters {
        assert!(!v.voter_id.trim().is_empty(), "empty voter_id imported");
        assert!(
            ids.insert(&v.voter_id),
            "duplicate voter_id {:?}",
            v.voter_id
        );
        assert_eq!(
            v.date_of_birth.len(),
            10,
            "date_of_birth {:?}",
            v.date_of_birth
        );
        if crate::known_bug(
            store::check_voter(v).is_err(),
            "import: a voter with NUL in a field is accepted",
        ) || crate::known_bug(
            v.voter_id.len() > MAX_ID_BYTES,
            "import: a voter_id longer than any ballot may carry is accepted",
        ) {
            return false;
        }
    }
    true
}

fn store_voters(voters: &[Voter]) {
    STORE.with(|s| {
        let mut s = s.borrow_mut();
        let s = s.get_or_insert_with(|| store::open("sqlite::memory:").expect("in-memory store"));
        s.put_voters(voters)
            .expect("the store refused voters the import accepted");
    })
}
