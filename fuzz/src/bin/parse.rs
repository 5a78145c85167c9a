//! AFL++ target: see `votestream_fuzz::parse`.
fn main() {
    afl::fuzz!(|data: &[u8]| votestream_fuzz::parse::check(data));
}
