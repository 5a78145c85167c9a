//! What the processor keeps in memory to validate a ballot without a query:
//! elections, candidates, and a compact index of the voters (about 25 bytes a
//! voter, so a 10M-voter registry stays well under 1 GB).

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::model::{AgeBand, Candidate, Election, Gender, Millis, PollClose};
use crate::store::{Store, StoreError, VoterKey};

/// The key is already a seeded hash: hashing it again would be wasted work.
#[derive(Default)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys are hashed")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Clone, Copy)]
struct VoterAttrs {
    voter_no: u32,
    state: u16,
    age_band: AgeBand,
    gender: Gender,
}

/// One voter's attributes as a vote carries them.
pub struct VoterInfo {
    pub voter_no: i64,
    pub state: Arc<str>,
    pub age_band: AgeBand,
    pub gender: Gender,
    /// The state's poll-closing wave (`UsState::close_step`).
    pub close_step: u8,
}

pub struct ElectionInfo {
    pub no: i64,
    pub id: Arc<str>,
    pub opens_at: Millis,
    pub polls: Option<PollClose>,
    candidates: HashMap<String, Arc<str>>,
}

impl ElectionInfo {
    pub fn candidate(&self, id: &str) -> Option<&Arc<str>> {
        self.candidates.get(id)
    }

    /// When polls close for a voter of this wave, if the election has a schedule.
    pub fn closes_at(&self, close_step: u8) -> Option<Millis> {
        self.polls
            .map(|p| p.first_close + i64::from(close_step) * p.step_ms)
    }
}

#[derive(Default)]
pub struct Registry {
    // Randomly seeded per process: a hostile voter id cannot be crafted to collide.
    hash_keys: foldhash::quality::RandomState,
    index: HashMap<u64, u32, BuildHasherDefault<IdentityHasher>>,
    voters: Vec<VoterAttrs>,
    states: Vec<Arc<str>>,
    /// Parallel to `states`: each one's poll-closing wave.
    close_steps: Vec<u8>,
    elections: HashMap<String, ElectionInfo>,
}

impl Registry {
    pub fn load(store: &mut dyn Store) -> Result<Registry, StoreError> {
        let mut reg = Registry::default();
        for e in store.elections()? {
            reg.add_election(e.no, &e.election, &e.candidates);
        }
        let mut state_ids: HashMap<String, u16> = HashMap::new();
        store.scan_voters(&mut |v: VoterKey<'_>| reg.add_voter(&mut state_ids, v))?;
        Ok(reg)
    }

    pub fn add_election(&mut self, no: i64, e: &Election, candidates: &[Candidate]) {
        let info = ElectionInfo {
            no,
            id: Arc::from(e.election_id.as_str()),
            opens_at: e.opens_at,
            polls: e.polls,
            candidates: candidates
                .iter()
                .map(|c| (c.candidate_id.clone(), Arc::from(c.candidate_id.as_str())))
                .collect(),
        };
        self.elections.insert(e.election_id.clone(), info);
    }

    fn add_voter(&mut self, state_ids: &mut HashMap<String, u16>, v: VoterKey<'_>) {
        let state = match state_ids.get(v.state) {
            Some(&s) => s,
            None => {
                let s = self.states.len() as u16;
                self.states.push(Arc::from(v.state));
                self.close_steps.push(
                    crate::states::state_by_name(v.state)
                        .map_or(crate::states::LAST_CLOSE_STEP, |s| s.close_step),
                );
                state_ids.insert(v.state.to_string(), s);
                s
            }
        };
        let pos = self.voters.len() as u32;
        self.voters.push(VoterAttrs {
            // Registries beyond 4 billion voters are out of scope.
            voter_no: v.voter_no as u32,
            state,
            age_band: AgeBand::of_age(v.age),
            gender: v.gender,
        });
        self.index.insert(self.key(v.voter_id), pos);
    }

    fn key(&self, voter_id: &str) -> u64 {
        self.hash_keys.hash_one(voter_id)
    }

    /// The states' names, and each voter's state (an index into them) by
    /// voter_no, `u16::MAX` where no voter has that number: what the alerts
    /// stage needs of the registry, without its own scan of the store.
    pub fn states_by_voter_no(&self) -> (Vec<Arc<str>>, Vec<u16>) {
        let len = self.voters.iter().map(|v| v.voter_no as usize + 1).max();
        let mut by_voter = vec![u16::MAX; len.unwrap_or(0)];
        for v in &self.voters {
            by_voter[v.voter_no as usize] = v.state;
        }
        (self.states.clone(), by_voter)
    }

    pub fn voter_count(&self) -> usize {
        self.voters.len()
    }

    pub fn election(&self, id: &str) -> Option<&ElectionInfo> {
        self.elections.get(id)
    }

    pub fn voter(&self, voter_id: &str) -> Option<VoterInfo> {
        let pos = *self.index.get(&self.key(voter_id))?;
        let a = self.voters[pos as usize];
        Some(VoterInfo {
            voter_no: a.voter_no as i64,
            state: self.states[a.state as usize].clone(),
            age_band: a.age_band,
            gender: a.gender,
            close_step: self.close_steps[a.state as usize],
        })
    }
}
