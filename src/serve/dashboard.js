// votestream's dashboard: one EventSource, one render per snapshot, SVG
// drawn by hand. Text is only ever set with textContent (names may be hostile).
"use strict";
const NS = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
const fmt = (n) => Number(n || 0).toLocaleString("en-US");
const pct = (x) => (100 * (x || 0)).toFixed(1) + "%";
const PARTY_COLOURS = { "Management Party": "#2f6fdf", "Savior Party": "#d1323c", "Tech Republic Party": "#8a4fd8" };
const SPARE = ["#1a9a6c", "#e08a00", "#0096b4", "#b8487a", "#6b7f1a"];
// Tile map: [code, name, row, col].
const TILES = [["AK","Alaska",0,0],["ME","Maine",0,11],["VT","Vermont",1,10],["NH","New Hampshire",1,11],
 ["WA","Washington",2,1],["ID","Idaho",2,2],["MT","Montana",2,3],["ND","North Dakota",2,4],["MN","Minnesota",2,5],
 ["IL","Illinois",2,6],["WI","Wisconsin",2,7],["MI","Michigan",2,8],["NY","New York",2,9],["RI","Rhode Island",2,10],
 ["MA","Massachusetts",2,11],["OR","Oregon",3,1],["NV","Nevada",3,2],["WY","Wyoming",3,3],["SD","South Dakota",3,4],
 ["IA","Iowa",3,5],["IN","Indiana",3,6],["OH","Ohio",3,7],["PA","Pennsylvania",3,8],["NJ","New Jersey",3,9],
 ["CT","Connecticut",3,10],["CA","California",4,1],["UT","Utah",4,2],["CO","Colorado",4,3],["NE","Nebraska",4,4],
 ["MO","Missouri",4,5],["KY","Kentucky",4,6],["WV","West Virginia",4,7],["VA","Virginia",4,8],["MD","Maryland",4,9],
 ["DE","Delaware",4,10],["AZ","Arizona",5,2],["NM","New Mexico",5,3],["KS","Kansas",5,4],["AR","Arkansas",5,5],
 ["TN","Tennessee",5,6],["NC","North Carolina",5,7],["SC","South Carolina",5,8],["DC","District of Columbia",5,9],
 ["OK","Oklahoma",6,4],["LA","Louisiana",6,5],["MS","Mississippi",6,6],["AL","Alabama",6,7],["GA","Georgia",6,8],
 ["HI","Hawaii",7,0],["TX","Texas",7,4],["FL","Florida",7,9]];

const ui = { election: document.body.dataset.election, interval: 1000, paused: false, source: null,
  sort: "state", desc: false, page: 1, perPage: 10, last: null,
  // The timeline scrubber: null when live; else the ledger position shown.
  at: null, end: null, want: null, fetching: false };
// Any position past the ledger's end means its end (the largest safe integer).
const END = 9007199254740991;

function el(tag, attrs, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(NS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function colours(r) {
  const out = {}; let spare = 0;
  for (const c of r.candidates) out[c.candidate_id] = PARTY_COLOURS[c.party_affiliation] || SPARE[spare++ % SPARE.length];
  return out;
}
function leaderOf(byCandidate) {
  const e = Object.entries(byCandidate || {}).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const total = e.reduce((s, x) => s + x[1], 0);
  if (!e.length || !total) return { id: null, margin: 0 };
  return { id: e[0][0], margin: (e[0][1] - (e[1] ? e[1][1] : 0)) / total };
}

function connect() {
  if (ui.source) ui.source.close();
  ui.source = null;
  if (ui.paused) { $("live-dot").classList.add("off"); return; }
  const url = `/api/v1/elections/${encodeURIComponent(ui.election)}/results/stream?interval_ms=${ui.interval}`;
  const s = new EventSource(url);
  s.addEventListener("snapshot", (ev) => { ui.last = JSON.parse(ev.data); if (ui.at === null) render(ui.last); });
  s.onopen = () => $("live-dot").classList.remove("off");
  s.onerror = () => $("live-dot").classList.add("off");
  ui.source = s;
}

function render(snap) {
  const r = snap.results, col = colours(r);
  const names = Object.fromEntries(r.candidates.map((c) => [c.candidate_id, c]));
  $("title").textContent = r.election.name;
  syncElections(snap.elections);
  $("n-registered").textContent = fmt(r.registered_voters);
  $("n-candidates").textContent = fmt(r.candidates.length);
  $("n-received").textContent = fmt(r.received);
  $("n-accepted").textContent = fmt(r.accepted);
  $("n-rejected").textContent = fmt(r.rejected);
  $("n-turnout").textContent = pct(r.registered_voters ? r.accepted / r.registered_voters : 0);
  $("n-rate").textContent = fmt(Math.round(snap.votes_per_s));
  $("n-lag").textContent = fmt(snap.lag);
  $("n-late").textContent = fmt(r.late_votes);
  const share = r.registered_voters ? Math.min(1, r.counted / r.registered_voters) : 0;
  $("progress-fill").style.width = (100 * share).toFixed(2) + "%";
  $("progress-text").textContent = `${fmt(r.counted)} ballots counted · ${pct(share)} of registered voters`;
  $("updated").textContent = new Date(snap.generated_at).toLocaleTimeString();
  const ranked = [...r.candidates].sort((a, b) => b.total_votes - a.total_votes);
  const led = {};
  for (const s of r.states) { const l = leaderOf(s.by_candidate).id; if (l) led[l] = (led[l] || 0) + 1; }
  renderLeader(ranked, r.counted, col);
  renderBars(ranked, r.counted, col);
  renderDonut(ranked, r.counted, col);
  renderCandTable(ranked, r.counted, col, led);
  renderMap(r, col, names, alertedStates(snap.alerts));
  renderStates(r, col, names);
  renderTimeline(r, col, names);
  renderDemographics(r, col, names);
  renderRejections(r);
  renderDesk(snap.desk, r, col, names);
  renderAlerts(snap.alerts);
}

// The states with an alert open: outlined on the map.
function alertedStates(a) {
  return new Set(((a && a.latest) || []).filter((e) => e.open && e.scope && e.scope.state).map((e) => e.scope.state));
}

const ALERT_NAME = {
  turnout_over_registration: "Turnout above registration", count_went_backwards: "Count went backwards",
  unknown_candidate: "Vote for a candidate not on the ballot", outside_polling_hours: "Vote outside polling hours",
  rate_spike: "Rate spike", rate_shift: "Sustained rate shift", source_concentration: "One source sends too much",
  share_swing: "Share swing",
};
const alertsUi = { key: null };

function alertScope(s) {
  return [s.state, s.candidate, s.source && `source ${s.source}`, s.metric].filter(Boolean).join(" · ") || "national";
}

function renderAlerts(a) {
  if (!a) {
    // As of a past moment: the feed is the live one's, so it is not shown.
    $("alerts-count").textContent = "live only: not shown for a past moment";
    $("alert-feed").replaceChildren();
    alertsUi.key = null;
    return;
  }
  $("alerts-count").textContent = `${fmt(a.open)} open · ${fmt(a.total)} in all`;
  const first = a.latest[0];
  const key = `${a.total}:${a.open}:${a.latest.map((e) => e.id + (e.open ? "o" : "r")).join(",")}`;
  if (alertsUi.key === key) return;
  if (alertsUi.key !== null && first) $("alerts-announce").textContent = `Alert: ${ALERT_NAME[first.kind] || first.kind}, ${alertScope(first.scope)}`;
  alertsUi.key = key;
  const items = a.latest.map((e) => {
    const li = el("li", { "data-kind": e.kind, "data-open": String(e.open), "data-alert": e.id });
    const badge = el("span", { class: `badge alert-${e.open ? e.severity : "resolved"}` }, e.open ? e.severity.toUpperCase() : "RESOLVED");
    const ev = e.evidence || {};
    const detail = `observed ${Number(ev.observed).toPrecision(4)} vs expected ${Number(ev.expected).toPrecision(4)} · statistic ${Number(ev.statistic).toFixed(1)} (threshold ${ev.threshold})`;
    li.append(el("time", { datetime: new Date(e.first_seen).toISOString() }, new Date(e.first_seen).toLocaleTimeString()), badge,
      el("span", { class: "alert-what" }, `${ALERT_NAME[e.kind] || e.kind}: ${alertScope(e.scope)}`), el("span", { class: "alert-evidence" }, detail));
    return li;
  });
  $("alert-feed").replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, "No alert raised")]));
}

function syncElections(list) {
  const sel = $("election");
  const want = list.map((e) => e.election_id).join("\n");
  if (sel.dataset.ids !== want) {
    sel.replaceChildren(...list.map((e) => el("option", { value: e.election_id }, e.name)));
    sel.dataset.ids = want;
  }
  sel.value = ui.election;
}

function renderLeader(ranked, counted, col) {
  const top = ranked[0];
  if (!top) return;
  const second = ranked[1] ? ranked[1].total_votes : 0;
  const img = $("leader-img");
  if (img.getAttribute("src") !== top.photo_url) img.setAttribute("src", top.photo_url);
  img.setAttribute("alt", top.candidate_name);
  img.style.borderColor = col[top.candidate_id];
  $("leader-name").textContent = top.candidate_name;
  $("leader-party").textContent = top.party_affiliation;
  $("leader-party").style.color = col[top.candidate_id];
  $("leader-votes").textContent = fmt(top.total_votes);
  $("leader-share").textContent = pct(counted ? top.total_votes / counted : 0);
  $("leader-margin").textContent = `${fmt(top.total_votes - second)} (${pct(counted ? (top.total_votes - second) / counted : 0)})`;
}

function renderBars(ranked, counted, col) {
  const svg = $("bars"), h = 180 / Math.max(ranked.length, 1), max = Math.max(1, ...ranked.map((c) => c.total_votes));
  svg.replaceChildren(...ranked.flatMap((c, i) => {
    const w = 250 * c.total_votes / max, y = i * h;
    return [el("svg:text", { x: 0, y: y + h / 2 + 5, "font-size": 14 }, c.candidate_name.slice(0, 18)),
      el("svg:rect", { x: 140, y: y + 6, width: Math.max(w, 1), height: h - 12, rx: 4, fill: col[c.candidate_id] }),
      el("svg:text", { x: 140 + w + 6 > 330 ? 334 : 140 + w + 6, y: y + h / 2 + 5, "font-size": 13 }, pct(counted ? c.total_votes / counted : 0))];
  }));
}

function renderDonut(ranked, counted, col) {
  const svg = $("donut"), cx = 90, cy = 90, R = 80, r0 = 50;
  const parts = [el("svg:circle", { cx, cy, r: (R + r0) / 2, fill: "none", stroke: "var(--track)", "stroke-width": R - r0 })];
  let a = -Math.PI / 2;
  for (const c of ranked) {
    if (!counted || !c.total_votes) continue;
    const sweep = 2 * Math.PI * c.total_votes / counted, b = a + Math.min(sweep, 2 * Math.PI - 1e-4);
    const p = (ang, rad) => `${cx + rad * Math.cos(ang)} ${cy + rad * Math.sin(ang)}`;
    const large = b - a > Math.PI ? 1 : 0;
    parts.push(el("svg:path", { d: `M ${p(a, R)} A ${R} ${R} 0 ${large} 1 ${p(b, R)} L ${p(b, r0)} A ${r0} ${r0} 0 ${large} 0 ${p(a, r0)} Z`, fill: col[c.candidate_id] }));
    a += sweep;
  }
  parts.push(el("svg:text", { x: cx, y: cy + 6, "text-anchor": "middle", "font-size": 16, "font-weight": 700 }, fmt(counted)));
  svg.replaceChildren(...parts);
}

function renderCandTable(ranked, counted, col, led) {
  $("cand-table").tBodies[0].replaceChildren(...ranked.map((c) => {
    const tr = el("tr", { "data-candidate": c.candidate_id });
    const name = el("td"); name.append(el("span", { class: "swatch", style: `background:${col[c.candidate_id]}` }), c.candidate_name);
    tr.append(name, el("td", {}, c.party_affiliation), el("td", { class: "num votes" }, fmt(c.total_votes)),
      el("td", { class: "num" }, pct(counted ? c.total_votes / counted : 0)), el("td", { class: "num" }, fmt(led[c.candidate_id] || 0)));
    return tr;
  }));
}

function renderMap(r, col, names, alerted) {
  const byName = Object.fromEntries(r.states.map((s) => [s.state, s]));
  const S = 58, G = 2;
  $("map").replaceChildren(...TILES.map(([code, name, row, c]) => {
    const s = byName[name], l = s ? leaderOf(s.by_candidate) : { id: null, margin: 0 };
    const g = el("svg:g", alerted.has(name) ? { "data-state": name, "data-alert": "open" } : { "data-state": name });
    const rect = el("svg:rect", { x: c * (S + G) + 2, y: row * (S + G) + 10, width: S, height: S, rx: 6,
      fill: l.id ? col[l.id] : "var(--track)", "fill-opacity": l.id ? (0.3 + 0.7 * Math.min(1, l.margin * 3)).toFixed(2) : 1 });
    const tip = el("svg:title", {}, `${name}: ${s ? fmt(s.count) + " votes" : "no votes"}${l.id ? ", " + names[l.id].candidate_name + " leads by " + pct(l.margin) : ""}${alerted.has(name) ? " (alert open)" : ""}`);
    g.append(rect, tip, el("svg:text", { x: c * (S + G) + 2 + S / 2, y: row * (S + G) + 10 + S / 2 + 6, "text-anchor": "middle", "font-size": 15, "font-weight": 700 }, code));
    return g;
  }));
  $("legend").replaceChildren(...r.candidates.map((c) => {
    const s = el("span"); s.append(el("span", { class: "swatch", style: `background:${col[c.candidate_id]}` }), `${c.party_affiliation} (paler = closer)`); return s;
  }));
}

function renderStates(r, col, names) {
  const rows = r.states.map((s) => ({ s, l: leaderOf(s.by_candidate) }));
  const key = { state: (x) => x.s.state, count: (x) => x.s.count, leader: (x) => (x.l.id ? names[x.l.id].candidate_name : ""), margin: (x) => x.l.margin }[ui.sort];
  rows.sort((a, b) => { const ka = key(a), kb = key(b); return (ka < kb ? -1 : ka > kb ? 1 : a.s.state < b.s.state ? -1 : 1) * (ui.desc ? -1 : 1); });
  const pages = Math.max(1, Math.ceil(rows.length / ui.perPage));
  ui.page = Math.min(Math.max(1, ui.page), pages);
  const shown = rows.slice((ui.page - 1) * ui.perPage, ui.page * ui.perPage);
  $("state-table").tBodies[0].replaceChildren(...shown.map(({ s, l }) => {
    const lead = el("td");
    if (l.id) lead.append(el("span", { class: "swatch", style: `background:${col[l.id]}` }), names[l.id].candidate_name);
    const tr = el("tr", { "data-state": s.state });
    tr.append(el("td", {}, s.state), el("td", { class: "num" }, fmt(s.count)), lead, el("td", { class: "num" }, pct(l.margin)));
    return tr;
  }));
  $("page-label").textContent = `Page ${ui.page} of ${pages}`;
  $("page-first").disabled = $("page-prev").disabled = ui.page === 1;
  $("page-last").disabled = $("page-next").disabled = ui.page === pages;
  ui.pages = pages;
}

function renderTimeline(r, col, names) {
  const minutes = [...new Set(r.timeline.map((m) => m.minute))].sort();
  const idx = Object.fromEntries(minutes.map((m, i) => [m, i]));
  const series = {};
  for (const c of r.candidates) series[c.candidate_id] = new Array(minutes.length).fill(0);
  for (const m of r.timeline) if (series[m.candidate_id]) series[m.candidate_id][idx[m.minute]] = m.votes;
  const max = Math.max(1, ...r.timeline.map((m) => m.votes)), W = 1120, H = 180, x0 = 60, y0 = 200;
  const x = (i) => x0 + (minutes.length > 1 ? W * i / (minutes.length - 1) : W / 2), y = (v) => y0 - H * v / max;
  const parts = [el("svg:line", { x1: x0, y1: y0, x2: x0 + W, y2: y0, stroke: "var(--line)" }),
    el("svg:text", { x: 0, y: y(max) + 5, "font-size": 12 }, fmt(max)), el("svg:text", { x: 0, y: y0, "font-size": 12 }, "0")];
  if (minutes.length) {
    parts.push(el("svg:text", { x: x0, y: y0 + 22, "font-size": 12 }, minutes[0].slice(11, 16)),
      el("svg:text", { x: x0 + W, y: y0 + 22, "font-size": 12, "text-anchor": "end" }, minutes[minutes.length - 1].slice(11, 16) + " UTC"));
  }
  for (const [id, vals] of Object.entries(series)) {
    parts.push(el("svg:polyline", { points: vals.map((v, i) => `${x(i)},${y(v)}`).join(" "), fill: "none", stroke: col[id], "stroke-width": 3, "stroke-linejoin": "round" }));
    // Dots, so a single minute still shows.
    if (vals.length <= 60) vals.forEach((v, i) => parts.push(el("svg:circle", { cx: x(i), cy: y(v), r: 4, fill: col[id] })));
  }
  $("timeline").replaceChildren(...parts);
  const head = el("tr"); head.append(el("th", {}, "Minute (UTC)"), ...r.candidates.map((c) => el("th", { class: "num" }, c.candidate_name)));
  $("timeline-table").tBodies[0].replaceChildren(head, ...minutes.slice(-15).map((m) => {
    const tr = el("tr"); tr.append(el("td", {}, m), ...r.candidates.map((c) => el("td", { class: "num" }, fmt(series[c.candidate_id][idx[m]]))));
    return tr;
  }));
}

function renderDemographics(r, col, names) {
  const cells = {};
  for (const d of r.demographics) { const k = d.age_band + "|" + d.gender; (cells[k] = cells[k] || {})[d.candidate_id] = d.votes; }
  $("demo-table").tBodies[0].replaceChildren(...Object.keys(cells).sort().map((k) => {
    const [age, gender] = k.split("|"), l = leaderOf(cells[k]), total = Object.values(cells[k]).reduce((a, b) => a + b, 0);
    const lead = el("td");
    if (l.id) lead.append(el("span", { class: "swatch", style: `background:${col[l.id]}` }), names[l.id] ? names[l.id].candidate_name : l.id);
    const tr = el("tr"); tr.append(el("td", {}, age), el("td", {}, gender), lead,
      el("td", { class: "num" }, pct(l.id ? cells[k][l.id] / total : 0)), el("td", { class: "num" }, fmt(total)));
    return tr;
  }));
}

function renderRejections(r) {
  const rows = Object.entries(r.rejected_by_reason);
  $("reject-table").tBodies[0].replaceChildren(...(rows.length ? rows : [["none", 0]]).map(([k, v]) => {
    const tr = el("tr"); tr.append(el("td", {}, k.replace(/_/g, " ")), el("td", { class: "num" }, fmt(v))); return tr;
  }));
}

// Results as of a moment, fetched from the ledger; one request at a time,
// always for the slider's latest value.
async function resultsAt(at) {
  const url = `/api/v1/elections/${encodeURIComponent(ui.election)}/results?at=${at}`;
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
  return res.json();
}
async function scrub() {
  if (ui.fetching) return;
  ui.fetching = true;
  try {
    while (ui.want !== null) {
      const value = ui.want; ui.want = null;
      if (ui.end === null) ui.end = (await resultsAt(END)).as_of.ledger_seq;
      const r = await resultsAt(Math.round((ui.end * value) / 1000));
      if (ui.at === null && $("live").disabled) continue; // back to live meanwhile
      ui.at = r.as_of.seq;
      const when = r.as_of.time ? new Date(r.as_of.time).toLocaleTimeString() : "before the first vote";
      $("scrub-at").textContent = `as of vote ${fmt(r.as_of.seq)} of ${fmt(r.as_of.ledger_seq)} · ${when}`;
      // The desk as of then is not rebuilt: hidden rather than shown live.
      render({ ...(ui.last || { elections: [] }), results: r, desk: null, alerts: null, votes_per_s: 0, lag: 0, generated_at: Date.now() });
    }
  } catch (e) {
    $("scrub-at").textContent = `cannot go back: ${e.message}`;
  } finally {
    ui.fetching = false;
  }
}
function goLive() {
  ui.at = null; ui.end = null; ui.want = null;
  $("scrub").value = 1000; $("live").disabled = true; $("scrub-at").textContent = "live";
  if (ui.last) render(ui.last);
}

function init() {
  const params = new URLSearchParams(location.search);
  if (params.get("election")) ui.election = params.get("election");
  const theme = localStorage.getItem("theme") || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  document.documentElement.dataset.theme = theme;
  $("theme").onclick = () => {
    const t = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = t; localStorage.setItem("theme", t);
  };
  $("pause").onclick = () => { ui.paused = !ui.paused; $("pause").textContent = ui.paused ? "Resume" : "Pause"; connect(); };
  $("scrub").oninput = (e) => { $("live").disabled = false; ui.want = Number(e.target.value); scrub(); };
  $("live").onclick = goLive;
  $("interval").onchange = (e) => { ui.interval = Number(e.target.value); connect(); };
  $("election").onchange = (e) => { goLive(); ui.election = e.target.value; ui.page = 1; history.replaceState(null, "", "?election=" + encodeURIComponent(ui.election)); connect(); };
  const rerender = () => ui.last && render(ui.last);
  for (const b of document.querySelectorAll("#state-table th button")) {
    b.onclick = () => { const k = b.dataset.sort; ui.desc = ui.sort === k ? !ui.desc : k !== "state"; ui.sort = k; ui.page = 1; rerender(); };
  }
  $("page-first").onclick = () => { ui.page = 1; rerender(); };
  $("page-prev").onclick = () => { ui.page -= 1; rerender(); };
  $("page-next").onclick = () => { ui.page += 1; rerender(); };
  $("page-last").onclick = () => { ui.page = ui.pages || 1; rerender(); };
  connect();
}
init();
