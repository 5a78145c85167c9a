//! Runs saved inputs through a target without AFL, e.g. a crash AFL++ found:
//! `replay http fuzz/out/http/default/crashes/id:000000*`. Each input
//! runs in this process; the first broken invariant panics with its message.
fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().unwrap_or_default();
    let check: fn(&[u8]) = match target.as_str() {
        "parse" => votestream_fuzz::parse::check,
        "http" => votestream_fuzz::http::check,
        "import" => votestream_fuzz::import::check,
        "kafka" => votestream_fuzz::kafka::check,
        _ => {
            eprintln!("usage: replay parse|http|import|kafka FILE...");
            std::process::exit(2);
        }
    };
    let mut n = 0;
    for path in args {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        eprintln!("{path}");
        check(&data);
        n += 1;
    }
    eprintln!("{n} inputs passed");
}
