//! AFL++ target: see `votestream_fuzz::import`.
fn main() {
    afl::fuzz!(|data: &[u8]| votestream_fuzz::import::check(data));
}
