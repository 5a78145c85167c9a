//! Needs: Chromium.
//!
//! The dashboard's alert feed in headless Chromium, over a store whose
//! alerts stage recorded a night with anomalies: the feed lists the open
//! alerts and the latest others (what the API serves, newest first), the
//! map outlines the states with an alert open, and the counts line agrees.

mod support;

use support::alert_night::{record_night, BURST, SWING};
use support::browser::{digits, Driver};
use support::{Server, ELECTION};
use votestream::alerts::stage::AlertStage;
use votestream::alerts::AlertConfig;
use votestream::store::StoreUrl;

#[test]
fn the_alert_feed_shows_the_recorded_alerts_and_the_map_marks_their_states() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    let store = || StoreUrl::parse(&url).unwrap().open().unwrap();
    record_night(&mut *store(), None);
    let mut stage = AlertStage::open(
        store(),
        ELECTION,
        "builtin",
        AlertConfig::default(),
        Vec::new(),
    )
    .unwrap();
    while stage.step(votestream::model::now_millis()).unwrap().1 {}
    assert!(stage.recorded() > 0, "the night raised no alert");

    let server = Server::start(&url, dir.path(), &["--no-desk", "--no-alerts"]);
    let api = server.json(&format!("/api/v1/elections/{ELECTION}/alerts"));
    let alerts = api["alerts"].as_array().unwrap();
    let (open, total) = (
        api["open"].as_i64().unwrap(),
        api["total"].as_i64().unwrap(),
    );
    let shown: Vec<i64> = alerts
        .iter()
        .enumerate()
        .filter(|(i, a)| a["open"] == true || *i < 20)
        .map(|(_, a)| a["id"].as_i64().unwrap())
        .collect();
    let open_states: Vec<&str> = alerts
        .iter()
        .filter(|a| a["open"] == true)
        .filter_map(|a| a["scope"]["state"].as_str())
        .collect();

    let d = Driver::start();
    d.goto(&server.url("/"));
    d.wait("the alert feed", |d| {
        d.js("return document.querySelectorAll('#alert-feed li[data-alert]').length")
            .as_i64()
            == Some(shown.len() as i64)
    });
    let ids: Vec<i64> = d
        .js("return [...document.querySelectorAll('#alert-feed li[data-alert]')].map(li => Number(li.dataset.alert))")
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(
        ids, shown,
        "the feed lists what the API serves, newest first"
    );
    let counts = d.text("alerts-count");
    let numbers: Vec<i64> = counts.split('·').map(digits).collect();
    assert_eq!(numbers, vec![open, total], "{counts}");
    let feed = d.text("alert-feed");
    assert!(feed.contains(&format!("Rate spike: {BURST}")), "{feed}");
    assert!(feed.contains(&format!("Share swing: {SWING}")), "{feed}");
    let outlined: Vec<String> = d
        .js("return [...document.querySelectorAll('#map g[data-alert=open]')].map(g => g.dataset.state)")
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let mut want: Vec<String> = open_states.iter().map(|s| s.to_string()).collect();
    want.sort();
    want.dedup();
    assert!(!want.is_empty(), "the night ends with an alert open");
    let mut got = outlined.clone();
    got.sort();
    assert_eq!(
        got, want,
        "the map outlines exactly the states with an alert open"
    );
}
