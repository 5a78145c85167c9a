//! `votestream bench`: placeholder until the benchmark is written.
pub fn run(_voters: u64, _dir: &std::path::Path, _progress: bool) -> anyhow::Result<String> {
    anyhow::bail!("not yet")
}
