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
        check_voters(&voters);
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
        check_voters(&voters);
        store_voters(&voters);
    }
}

fn check_voters(voters: &[Voter]) {
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
        assert!(
            store::check_voter(v).is_ok(),
            "import accepted a voter the store refuses: {v:?}"
        );
        assert!(
            v.voter_id.len() <= MAX_ID_BYTES,
            "import accepted a voter_id of {} bytes, longer than any ballot may carry",
            v.voter_id.len()
        );
    }
}

fn store_voters(voters: &[Voter]) {
    STORE.with(|s| {
        let mut s = s.borrow_mut();
        let s = s.get_or_insert_with(|| store::open("sqlite::memory:").expect("in-memory store"));
        s.put_voters(voters)
            .expect("the store refused voters the import accepted");
    })
}
