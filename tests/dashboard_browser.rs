//! Needs: Chromium.
//!
//! The dashboard in headless Chromium, driven over WebDriver
//! (`support::browser`). Fails, never skips, when Chromium is missing.

mod support;

use serde_json::{json, Value};
use support::browser::{digits, Driver};
use support::*;

#[test]
fn the_dashboard_shows_the_tallies_updates_live_and_pages_through_states() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("d.db").display());
    votestream_ok(&[
        "run",
        "--store",
        &store,
        "--voters",
        "20000",
        "--rate",
        "max",
        "--until-done",
        "--listen",
        "127.0.0.1:0",
        "--late-share",
        "0",
    ]);
    let server = Server::start(&store, dir.path(), &["--rate-limit", "0"]);
    let results = server.json(&format!("/api/v1/elections/{ELECTION}/results"));
    let driver = Driver::start();
    driver.goto(&server.url("/"));

    // The tallies match the results API.
    let accepted = results["accepted"].as_i64().unwrap();
    driver.wait("the first snapshot", |d| {
        digits(&d.text("n-accepted")) == accepted
    });
    assert_eq!(
        digits(&driver.text("n-received")),
        results["received"].as_i64().unwrap()
    );
    assert_eq!(
        digits(&driver.text("n-registered")),
        results["registered_voters"].as_i64().unwrap()
    );
    for c in results["candidates"].as_array().unwrap() {
        let id = c["candidate_id"].as_str().unwrap();
        let shown = driver.js(&format!(
            "return document.querySelector('#cand-table tr[data-candidate=\"{id}\"] .votes').textContent"
        ));
        assert_eq!(
            digits(shown.as_str().unwrap()),
            c["total_votes"].as_i64().unwrap(),
            "{id}"
        );
    }
    let mut ranked: Vec<&Value> = results["candidates"].as_array().unwrap().iter().collect();
    ranked.sort_by_key(|c| -c["total_votes"].as_i64().unwrap());
    assert_eq!(
        driver.text("leader-name"),
        ranked[0]["candidate_name"].as_str().unwrap()
    );
    assert_eq!(
        driver.js("return document.querySelectorAll('#map g[data-state]').length"),
        json!(51)
    );

    // Pagination reaches the last page; sorted by name, it ends with the last state.
    let mut states: Vec<String> = results["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap().to_string())
        .collect();
    states.sort();
    let pages = states.len().div_ceil(10);
    driver.js("document.getElementById('page-last').click()");
    assert_eq!(
        driver.text("page-label"),
        format!("Page {pages} of {pages}")
    );
    let last_row = driver.js("const r = document.querySelectorAll('#state-table tbody tr'); return r[r.length-1].dataset.state");
    assert_eq!(last_row.as_str().unwrap(), states.last().unwrap());
    assert_eq!(
        driver.js("return document.getElementById('page-next').disabled"),
        json!(true)
    );
    driver.js("document.getElementById('page-first').click()");

    // A live update arrives without a reload: votes cast now show up in the
    // same page (the marker survives only if the page was not reloaded).
    driver.js("window.__noReload = 42");
    let mut cast = 0;
    for i in 19_000..19_400u64 {
        let body = json!({"voter_id": voter_id(i), "candidate_id": "c-savior"}).to_string();
        if server.cast(body.as_bytes(), None).status == 202 {
            cast += 1;
        }
    }
    assert!(cast > 0, "some of these voters had not voted yet");
    driver.wait("the live update", |d| {
        digits(&d.text("n-accepted")) == accepted + cast
    });
    assert_eq!(driver.js("return window.__noReload"), json!(42));

    let shot =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/artifacts/dashboard.png");
    driver.screenshot(&shot);
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
}

/// A state's call as the desk contract spells it.
fn call(status: &str, candidate: Option<&str>) -> Value {
    match candidate {
        Some(c) => json!({"status": status, "candidate": c}),
        None => json!({"status": status}),
    }
}

/// A desk event (one row of the calls log).
fn desk_event(no: usize, state: &str, kind: &str, candidate: &str, at: i64) -> Value {
    json!({"event_no": no, "race": {"kind": "state", "state": state}, "kind": kind,
           "candidate": candidate, "position": 100 * no, "at": at, "margin": 300 + no,
           "outstanding": if kind == "called" { 0 } else { 1200 }, "lower_bound": 0.02})
}

/// A race desk in the shape the desk stage will send (`desk` in the SSE
/// snapshot), over the real states and the election's real candidates: the
/// first leads where the state leans one way, the second where it leans the
/// other, a state is called where the lean is wide, projected where it is
/// not, too close where it is narrow, and too early where polls close late.
/// One projection is withdrawn. `ohio` is Ohio's call, whatever its lean.
fn desk_json(cands: &[String], ohio: &Value, at: i64) -> Value {
    use votestream::states::STATES;
    let (a, b) = (cands[0].as_str(), cands[1].as_str());
    let mut called: std::collections::BTreeMap<&str, i64> =
        cands.iter().map(|c| (c.as_str(), 0)).collect();
    let mut projected = called.clone();
    let mut events: Vec<(&str, &str, &str)> = Vec::new();
    let mut states = Vec::new();
    for s in STATES {
        let leader = if s.lean > 0.0 { a } else { b };
        let status = if s.code == "OH" {
            ohio.clone()
        } else if s.close_step >= 8 {
            call("too_early", None)
        } else if s.lean.abs() < 0.04 {
            call("too_close", None)
        } else if s.lean.abs() > 0.2 {
            call("called", Some(leader))
        } else {
            call("projected", Some(leader))
        };
        let ev = i64::from(s.electoral_votes);
        if let Some(c) = status["candidate"].as_str() {
            let c = cands.iter().find(|x| x.as_str() == c).unwrap().as_str();
            events.push((s.name, "projected", c));
            *projected.get_mut(c).unwrap() += ev;
            if status["status"] == "called" {
                events.push((s.name, "called", c));
                *called.get_mut(c).unwrap() += ev;
            }
        }
        if s.code == "NV" {
            events.push((s.name, "projected", b));
            events.push((s.name, "withdrawn", b));
        }
        let eevp = if status["status"] == "too_early" {
            0.0
        } else {
            (0.35 + s.lean.abs()).min(0.99)
        };
        let first = 0.46 + s.lean / 2.0;
        let share = |c: &str| match c {
            c if c == a => first,
            c if c == b => 0.92 - first,
            _ => 0.08 / (cands.len() as f64 - 2.0).max(1.0),
        };
        let shares: Vec<Value> = cands
            .iter()
            .map(|c| {
                let v = share(c);
                json!({"candidate": c, "counted": (3000.0 * eevp * v) as i64, "share": v,
                       "lo": (v - 0.04).max(0.0), "hi": (v + 0.04).min(1.0)})
            })
            .collect();
        states.push(json!({
            "state": s.name, "code": s.code, "electoral_votes": ev, "status": status,
            "leader": leader, "counted": (3000.0 * eevp) as i64, "registered": 5000,
            "outstanding": (3000.0 * (1.0 - eevp)) as i64, "projected_turnout": 0.6,
            "turnout_lo": 0.55, "turnout_hi": 0.66, "eevp": eevp, "shares": shares}));
    }
    let n = events.len() as i64;
    let events: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(i, (state, kind, c))| desk_event(i, state, kind, c, at - 37_000 * (n - i as i64)))
        .collect();
    let pairs = |m: &std::collections::BTreeMap<&str, i64>| -> Vec<Value> {
        cands.iter().map(|c| json!([c, m[c.as_str()]])).collect()
    };
    let popular: Vec<Value> = cands
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let v = [0.481, 0.455, 0.064].get(i).copied().unwrap_or(0.0);
            json!({"candidate": c, "counted": 1000, "share": v, "lo": v - 0.02, "hi": v + 0.02})
        })
        .collect();
    json!({
        "position": 2400, "at": at, "states": states,
        "national": {"threshold": 270, "total_ev": 538, "status": {"status": "too_early"},
                     "called_ev": pairs(&called), "projected_ev": pairs(&projected), "popular": popular},
        "events": events,
    })
}

/// Every `.stat .v` headline figure that is wider than its box, as "id: scroll > client".
fn clipped_figures(d: &Driver) -> Vec<String> {
    let v = d.js("return [...document.querySelectorAll('.stat .v')].filter(e => e.scrollWidth > e.clientWidth).map(e => `${e.id}: ${e.scrollWidth} > ${e.clientWidth}`)");
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

/// The race desk: hidden while the snapshot has no `desk`; given one (fed
/// through the page's own render, with the live stream paused so no frame
/// overwrites it), the map, the electoral-vote bar, the table and the calls
/// log show its calls, and a later call turns Ohio without a reload. The
/// headline figures never clip at 10,000,000, from 360 to 2560 px.
#[test]
fn the_race_desk_shows_calls_and_the_headline_figures_never_clip() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("d.db").display());
    votestream_ok(&[
        "run",
        "--store",
        &store,
        "--voters",
        "5000",
        "--rate",
        "max",
        "--until-done",
        "--listen",
        "127.0.0.1:0",
        "--late-share",
        "0",
    ]);
    let server = Server::start(&store, dir.path(), &["--rate-limit", "0"]);
    let results = server.json(&format!("/api/v1/elections/{ELECTION}/results"));
    let cands: Vec<String> = results["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["candidate_id"].as_str().unwrap().to_string())
        .collect();
    let name = |id: &str| -> String {
        results["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["candidate_id"] == id)
            .unwrap()["candidate_name"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let party = |id: &str| -> String {
        results["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["candidate_id"] == id)
            .unwrap()["party_affiliation"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let driver = Driver::start();
    driver.viewport(1400, 1000);
    driver.goto(&server.url("/"));
    let accepted = results["accepted"].as_i64().unwrap();
    driver.wait("the first snapshot", |d| {
        digits(&d.text("n-accepted")) == accepted
    });
    // The live frames carry the desk: the section is shown, a tile per state.
    driver.wait("the live race desk", |d| {
        d.js("return document.getElementById('desk').hidden") == json!(false)
    });
    assert_eq!(
        driver.js("return document.querySelectorAll('#desk-map [data-state]').length"),
        json!(51)
    );
    driver.js("document.getElementById('pause').click()");
    driver.js("window.__noReload = 7");
    let feed = |desk: &Value, huge: i64| {
        driver.js_with(
            "const [desk, huge] = arguments; const s = structuredClone(ui.last); s.desk = desk;
             if (huge) { for (const k of ['registered_voters', 'received', 'accepted', 'rejected']) s.results[k] = huge;
                         s.votes_per_s = huge; s.lag = huge; }
             render(s);",
            json!([desk, huge]),
        );
    };
    let attr = |sel: &str, a: &str| -> String {
        driver
            .js_with(
                "const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null",
                json!([sel, a]),
            )
            .as_str()
            .unwrap_or("(none)")
            .to_string()
    };
    let now = results["election"]["opens_at"].as_i64().unwrap() + 3 * 3_600_000;

    // Ohio too early.
    let first = desk_json(&cands, &call("too_early", None), now);
    feed(&first, 0);
    assert_eq!(
        driver.js("return document.getElementById('desk').hidden"),
        json!(false)
    );
    assert_eq!(
        driver.js("return document.querySelectorAll('#desk-map [data-state]').length"),
        json!(51)
    );
    assert_eq!(
        attr("#desk-map [data-state=\"OH\"]", "data-status"),
        "too_early"
    );
    assert_eq!(
        attr("#desk-table tbody tr[data-state=\"OH\"]", "data-status"),
        "too_early"
    );
    assert_eq!(
        attr("#desk-map [data-state=\"WY\"]", "data-status"),
        "called"
    );
    assert_eq!(
        attr("#desk-map [data-state=\"NH\"]", "data-status"),
        "too_close"
    );
    assert!(driver
        .text("desk-national")
        .trim()
        .starts_with("Too early to call"));
    let ev = driver.text("desk-ev");
    for (i, c) in cands.iter().enumerate() {
        let called = first["national"]["called_ev"][i][1].as_i64().unwrap();
        let proj = first["national"]["projected_ev"][i][1].as_i64().unwrap() - called;
        let line = format!("{} {called} called + {proj} projected", party(c));
        assert!(ev.contains(&line), "{line:?} in {ev:?}");
    }
    assert!(ev.contains("270 to win"), "{ev}");
    // Every state's row is there and the last one can be scrolled to.
    assert_eq!(
        driver.js("return document.querySelectorAll('#desk-table tbody tr[data-state]').length"),
        json!(51)
    );
    let reachable = driver.js(
        "const w = document.querySelector('.desk-table-wrap'); const rows = w.querySelectorAll('tbody tr');
         const last = rows[rows.length - 1]; w.scrollTop = w.scrollHeight;
         const a = w.getBoundingClientRect(), b = last.getBoundingClientRect();
         const ok = b.top >= a.top - 1 && b.bottom <= a.bottom + 1; w.scrollTop = 0; return ok",
    );
    assert_eq!(
        reachable,
        json!(true),
        "the table's last row scrolls into view"
    );
    // Sorted by electoral votes, the largest state comes first.
    driver.js("document.querySelector('#desk-table button[data-desk-sort=\"ev\"]').click()");
    assert_eq!(attr("#desk-table tbody tr", "data-state"), "CA");
    driver.js("document.querySelector('#desk-table button[data-desk-sort=\"state\"]').click()");
    assert_eq!(attr("#desk-table tbody tr", "data-state"), "AL");
    let events = first["events"].as_array().unwrap().len();
    assert_eq!(
        driver.js("return document.querySelectorAll('#desk-log li[data-kind]').length"),
        json!(events)
    );
    assert_eq!(
        attr("#desk-log li", "data-event"),
        (events - 1).to_string(),
        "newest first"
    );
    assert_eq!(
        driver
            .js("return document.querySelectorAll('#desk-log li[data-kind=\"withdrawn\"]').length"),
        json!(1)
    );

    // Ohio called, with its call the newest event, and headline counts at
    // ten million: the same page turns the tile, the row and the log.
    let winner = cands[1].as_str();
    let mut second = desk_json(&cands, &call("called", Some(winner)), now + 60_000);
    let n = second["events"].as_array().unwrap().len();
    second["events"]
        .as_array_mut()
        .unwrap()
        .retain(|e| e["race"]["state"] != "Ohio");
    let kept = second["events"].as_array().unwrap().len();
    assert!(kept + 2 == n, "Ohio had a projection and a call");
    for (i, e) in second["events"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        e["event_no"] = json!(i);
    }
    second["events"].as_array_mut().unwrap().push(desk_event(
        kept,
        "Ohio",
        "called",
        winner,
        now + 60_000,
    ));
    feed(&second, 10_000_000);
    assert_eq!(
        attr("#desk-map [data-state=\"OH\"]", "data-status"),
        "called"
    );
    assert_eq!(
        attr("#desk-table tbody tr[data-state=\"OH\"]", "data-status"),
        "called"
    );
    assert_eq!(attr("#desk-log li", "data-kind"), "called");
    let newest = driver.js("return document.querySelector('#desk-log li').textContent");
    let newest = newest.as_str().unwrap();
    assert!(
        newest.contains("Ohio") && newest.contains(&name(winner)),
        "{newest}"
    );
    assert_eq!(driver.js("return window.__noReload"), json!(7));
    assert!(driver.text("desk-announce").contains("Ohio"));
    assert_eq!(driver.text("n-registered"), "10,000,000");

    // A long night: the frame carries the latest 20 events of 45; the page
    // fetches the record once and lists all of them, then keeps each later
    // frame's new ones without fetching again.
    let night: Vec<Value> = (0..46)
        .map(|no| desk_event(no, "Ohio", "projected", winner, now + no as i64))
        .collect();
    driver.js_with(
        "window.__fetched = []; const all = arguments[0];
         window.fetch = async (url) => { window.__fetched.push(String(url));
           return { ok: true, json: async () => all.slice(0, 45) }; };",
        json!([night]),
    );
    let mut long = second.clone();
    long["events"] = json!(night[25..45]);
    long["events_total"] = json!(45);
    feed(&long, 10_000_000);
    let listed = || driver.js("return document.querySelectorAll('#desk-log li[data-kind]').length");
    support::wait::until(
        std::time::Duration::from_secs(5),
        "the older events",
        || listed() == json!(45),
    );
    assert_eq!(
        driver.js("return window.__fetched"),
        json!([format!("/api/v1/elections/{ELECTION}/desk/events")])
    );
    long["events"] = json!(night[26..46]);
    long["events_total"] = json!(46);
    feed(&long, 10_000_000);
    assert_eq!(listed(), json!(46));
    assert_eq!(attr("#desk-log li", "data-event"), "45", "newest first");
    assert_eq!(driver.js("return window.__fetched.length"), json!(1));
    feed(&second, 10_000_000);

    // No headline figure clips, from a small phone to a wide screen.
    for width in [
        360, 390, 412, 600, 639, 640, 768, 900, 1024, 1280, 1299, 1300, 1400, 1600, 1920, 2560,
    ] {
        driver.viewport(width, 1000);
        let clipped = clipped_figures(&driver);
        assert!(clipped.is_empty(), "at {width} px: {clipped:?}");
    }

    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/artifacts");
    // `at`: the element scrolled to the top of the view (none: the page's top).
    let shoot = |file: &str, width: u32, height: u32, at: Option<&str>| {
        driver.viewport(width, height);
        driver.js_with(
            "const e = arguments[0] && document.querySelector(arguments[0]);
             if (e) e.scrollIntoView(); else window.scrollTo(0, 0);",
            json!([at]),
        );
        assert!(
            clipped_figures(&driver).is_empty(),
            "{file}: {:?}",
            clipped_figures(&driver)
        );
        let path = shots.join(file);
        driver.screenshot(&path);
        assert!(std::fs::metadata(&path).unwrap().len() > 10_000);
    };
    shoot("desk-1400.png", 1400, 1000, None);
    shoot("desk-1400-desk.png", 1400, 1000, Some("#desk"));
    shoot("desk-1400-table.png", 1400, 1000, Some(".desk-log-card"));
    shoot("desk-390.png", 390, 844, None);
    shoot("desk-390-desk.png", 390, 844, Some("#desk"));
    shoot("desk-390-log.png", 390, 844, Some(".desk-log-card"));
    driver.js("if (document.documentElement.dataset.theme !== 'dark') document.getElementById('theme').click()");
    shoot("desk-1400-dark.png", 1400, 1000, Some("#desk"));
    shoot("desk-390-dark.png", 390, 844, Some("#desk"));

    // The national headline follows the desk's national call.
    second["national"]["status"] = call("called", Some(winner));
    feed(&second, 10_000_000);
    assert_eq!(
        driver.text("desk-national-label"),
        format!("CALLED: {} wins", name(winner))
    );
    assert_eq!(attr("#desk-national", "data-status"), "called");
    shoot("desk-1400-dark-called.png", 1400, 1000, Some("#desk"));

    // A hostile id and race name from the desk show as text, never run.
    let hostile = "<img src=x onerror=\"window.__xss=1\">";
    let n = second["events"].as_array().unwrap().len();
    second["events"].as_array_mut().unwrap().push(desk_event(
        n,
        "<b>Atlantis</b>",
        "projected",
        hostile,
        now + 120_000,
    ));
    feed(&second, 10_000_000);
    let newest = driver.js("return document.querySelector('#desk-log li').textContent");
    assert!(
        newest.as_str().unwrap().contains(hostile)
            && newest.as_str().unwrap().contains("<b>Atlantis</b>"),
        "{newest}"
    );
    assert_eq!(
        driver.js("return [window.__xss === undefined, document.querySelectorAll('#desk img, #desk b:not(.ev-n)').length]"),
        json!([true, 0])
    );

    // The model suspended for the night: a note above the map, and the
    // event in the log with its statistic.
    let hidden = "return document.getElementById('desk-model').hidden";
    assert_eq!(driver.js(hidden), json!(true));
    let n = second["events"].as_array().unwrap().len();
    let mut suspended = desk_event(n, "", "suspended", &cands[0], now + 180_000);
    suspended["race"] = json!({"kind": "national"});
    suspended["conflict"] = json!(6.44);
    second["events"].as_array_mut().unwrap().push(suspended);
    second["suspended"] = json!(true);
    feed(&second, 10_000_000);
    assert_eq!(driver.js(hidden), json!(false));
    assert!(driver.text("desk-model").contains("Projections suspended"));
    assert!(driver.text("desk-popular").contains("certain range"));
    assert_eq!(attr("#desk-log li", "data-kind"), "suspended");
    let newest = driver.js("return document.querySelector('#desk-log li').textContent");
    let newest = newest.as_str().unwrap();
    assert!(
        newest.contains("National")
            && newest.contains("Model suspended")
            && newest.contains("6.4 sd past the model"),
        "{newest}"
    );
    shoot("desk-1400-suspended.png", 1400, 1000, Some("#desk"));
}

/// A real night, not a fed snapshot: the election's polls close a few
/// seconds from now, ballots arrive over HTTP, and the desk seals and calls
/// each state. The page sees Ohio's tile and table row turn from not called
/// to called, and the call appear in the log, without a reload.
#[test]
fn a_state_turns_from_too_early_to_called_on_a_live_night() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("night.db").display());
    let voters = 400;
    // Time enough to start Chromium and cast every ballot before the first close.
    let polls = night(&store, voters, 20_000, 250);
    let server = Server::start(&store, dir.path(), &["--allowance-secs", "1"]);
    let driver = Driver::start();
    driver.viewport(1400, 1000);
    driver.goto(&server.url("/"));
    let ohio = "return (document.querySelector('#desk-map [data-state=\"OH\"]') || {}).dataset?.status || ''";
    driver.wait("the live desk", |d| d.js(ohio) == json!("too_early"));
    driver.js("window.__stillHere = 11");
    let cast = cast_night(&server, voters);
    assert!(cast > 200, "{cast} ballots accepted");
    assert!(
        votestream::model::now_millis() < polls.first_close,
        "the ballots went in before the first close"
    );
    let row = "return (document.querySelector('#desk-table tr[data-state=\"OH\"]') || {}).dataset?.status || ''";
    assert_ne!(
        driver.js(row),
        json!("called"),
        "not called before its polls close"
    );
    driver.wait("Ohio called on the page", |d| {
        d.js(ohio) == json!("called") && d.js(row) == json!("called")
    });
    assert_eq!(
        driver.js("return window.__stillHere"),
        json!(11),
        "no reload"
    );
    let logged = driver.js(
        "return [...document.querySelectorAll('#desk-log [data-kind=\"called\"]')].some(li => li.textContent.includes('Ohio'))",
    );
    assert_eq!(logged, json!(true), "the call is in the log");
    // What the page shows is what the desk recorded.
    let desk = server.json(&format!("/api/v1/elections/{ELECTION}/desk"));
    let recorded = desk["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "called" && e["race"]["state"] == "Ohio");
    assert!(recorded, "{desk}");
}
