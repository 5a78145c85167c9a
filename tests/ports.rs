//! Needs: nothing.
//!
//! Every port the scripts and compose.yaml listen on by default is below
//! Linux's ephemeral range (32768-60999): a port in that range can be held by
//! any outgoing connection, and the server then fails to bind.

mod support;

use support::{script, script_ok};

const EPHEMERAL_LOW: u16 = 32768;

fn script_output(name: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = script(name);
    cmd.args(args);
    for var in [
        "PGPORT",
        "DATABASE_URL",
        "KAFKA_BOOTSTRAP",
        "KAFKA_BASE_PORT",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    script_ok(&mut cmd)
}

fn ports_in(bootstrap: &str) -> Vec<u16> {
    bootstrap
        .trim()
        .split(',')
        .map(|hostport| {
            let port = hostport.rsplit(':').next().unwrap_or_default();
            port.parse::<u16>()
                .unwrap_or_else(|_| panic!("no port in {hostport:?}"))
        })
        .collect()
}

#[test]
fn postgres_listens_below_the_ephemeral_range_by_default() {
    let url = script_output("pg.sh", &["url"], &[]);
    // postgres://postgres@127.0.0.1:PORT/votestream
    let port = url
        .trim()
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no port in {url:?}"));
    assert!(port < EPHEMERAL_LOW, "pg.sh listens on {port} by default");
}

#[test]
fn every_kafka_broker_listens_below_the_ephemeral_range_by_default() {
    let home = tempfile::tempdir().unwrap();
    // `url` lists the brokers `start` made: three for the failure tests.
    std::fs::write(home.path().join("nodes"), "3").unwrap();
    let home_s = home.path().to_str().unwrap();
    let urls = script_output("kafka.sh", &["url"], &[("VOTESTREAM_KAFKA_HOME", home_s)]);
    let ports = ports_in(&urls);
    assert_eq!(ports.len(), 3, "{urls}");
    for port in ports {
        // The controller listens on the client port + 1.
        assert!(port + 1 < EPHEMERAL_LOW, "kafka.sh uses {port} by default");
    }
}

#[test]
fn compose_publishes_host_ports_below_the_ephemeral_range() {
    let compose =
        std::fs::read_to_string(format!("{}/compose.yaml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let mut seen = 0;
    for line in compose
        .lines()
        .filter(|l| l.trim_start().starts_with("ports:"))
    {
        // ports: ["127.0.0.1:${VOTESTREAM_LB_PORT:-8480}:8080"]: the host port
        // (its default where a variable may set it) is before the last colon.
        for mapping in line.split('"').skip(1).step_by(2) {
            let mapping = with_defaults(mapping);
            let parts: Vec<&str> = mapping.split(':').collect();
            let host: u16 = parts[parts.len() - 2].parse().unwrap();
            assert!(host < EPHEMERAL_LOW, "compose.yaml publishes {host}");
            seen += 1;
        }
    }
    assert!(seen > 0, "compose.yaml publishes no port: update this test");
}

/// `${NAME:-DEFAULT}` replaced by DEFAULT, as Compose does when NAME is unset.
fn with_defaults(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = start + rest[start..].find('}').expect("a closed ${…}");
        let inner = &rest[start + 2..end];
        out.push_str(inner.split_once(":-").map_or("", |(_, d)| d));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}
