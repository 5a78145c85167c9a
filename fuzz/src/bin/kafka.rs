//! AFL++ target: see `votestream_fuzz::kafka`.
fn main() {
    afl::fuzz!(|data: &[u8]| votestream_fuzz::kafka::check(data));
}
