//! AFL++ target: see `votestream_fuzz::http`.
fn main() {
    afl::fuzz!(|data: &[u8]| votestream_fuzz::http::check(data));
}
