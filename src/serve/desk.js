// The race desk: the calls a desk stage makes from the count, drawn from the
// snapshot's optional `desk` field. Without one the section stays hidden, so
// a pipeline with no desk shows the dashboard it always did. dashboard.js
// loads after this file; its helpers (el, $, fmt, pct, TILES) are only used
// once it has, from inside functions. Text is only ever set with
// textContent (candidate names may be hostile).
"use strict";
const DESK_BADGE = { too_early: "TOO EARLY", too_close: "TOO CLOSE", projected: "PROJECTED", called: "CALLED" };
const DESK_KIND = { called: "Called", projected: "Projected", withdrawn: "Withdrawn", suspended: "Model suspended" };
const DESK_RANK = { called: 0, projected: 1, too_close: 2, too_early: 3 };
// A candidate id the results do not know still gets drawn, in a colour no party has.
const DESK_UNKNOWN = "#7d8590";
const desk = { sort: "state", desc: false, headKey: null, logKey: null, args: null, log: null };

const deskP1 = (x) => (100 * (Number(x) || 0)).toFixed(1);
const deskShare = (s) => `${deskP1(s.share)}% (${deskP1(s.lo)}–${deskP1(s.hi)})`;
const deskTint = (c) => c + "40";
function deskTime(ms) {
  const t = new Date(ms);
  if (Number.isNaN(t.getTime())) return "–";
  return [t.getHours(), t.getMinutes(), t.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}
function deskStatus(s) {
  const st = s && DESK_BADGE[s.status] ? s.status : "too_early";
  return { status: st, candidate: st === "called" || st === "projected" ? s.candidate : null };
}

function renderDesk(d, r, col, names) {
  const section = $("desk");
  if (!d) { section.hidden = true; return; }
  section.hidden = false;
  desk.args = [d, r, col, names];
  // Own keys only: a candidate id such as "__proto__" must not reach the prototype.
  const who = (id) => (Object.hasOwn(names, id) ? names[id] : { candidate_id: id, candidate_name: String(id ?? "–"), party_affiliation: "" });
  const colour = (id) => (Object.hasOwn(col, id) ? col[id] : DESK_UNKNOWN);
  const ctx = { who, colour, order: r.candidates.map((c) => c.candidate_id) };
  const states = Array.isArray(d.states) ? d.states : [];
  const nat = d.national || {};
  $("desk-asof").textContent = `As of count position ${fmt(d.position)} · ${deskTime(d.at)}`;
  // Suspended: the count leans further than the model allows, so nothing is
  // projected and each share's range is the certain one.
  const model = $("desk-model");
  model.hidden = !d.suspended;
  $("desk").dataset.suspended = d.suspended ? "true" : "false";
  const tally = deskTally(nat, ctx);
  renderDeskNational(nat, states, tally, ctx);
  renderDeskEv(nat, tally, ctx, !!d.suspended);
  renderDeskMap(states, ctx);
  renderDeskTable(states, ctx);
  renderDeskLog(deskEvents(d), ctx);
}

// A frame carries the latest events and the record's length: the page keeps
// what it was sent, and fetches the older ones once (the record only grows).
function deskEvents(d) {
  const events = Array.isArray(d.events) ? d.events : [];
  const total = Number.isFinite(d.events_total) ? d.events_total : events.length;
  if (total <= events.length) { desk.log = null; return events; }
  if (!desk.log || desk.log.election !== ui.election) {
    desk.log = { election: ui.election, events: new Map(), fetched: false, tried: 0 };
  }
  const log = desk.log;
  for (const e of events) log.events.set(e.event_no, e);
  // At most one try every 10 s while the API cannot answer.
  if (log.events.size < total && !log.fetched && Date.now() - log.tried > 10000) {
    log.tried = Date.now();
    fetch(`/api/v1/elections/${encodeURIComponent(log.election)}/desk/events`)
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((all) => {
        if (desk.log !== log || !Array.isArray(all)) return;
        for (const e of all) if (!log.events.has(e.event_no)) log.events.set(e.event_no, e);
        log.fetched = true;
        if (desk.args) renderDesk(...desk.args);
      })
      .catch(() => {});
  }
  return [...log.events.values()].sort((a, b) => a.event_no - b.event_no);
}

function deskSwatch(c) {
  return el("span", { class: "swatch", style: `background:${c}` });
}

// A badge for a call status; called is solid in the winner's colour,
// projected an outlined tint, so the two never read alike.
function deskBadge(status, candidate, ctx, text) {
  const b = el("span", { class: `badge ${status}` }, text || DESK_BADGE[status]);
  if (status === "called") { b.style.background = ctx.colour(candidate); b.style.borderColor = ctx.colour(candidate); }
  if (status === "projected") { b.style.background = deskTint(ctx.colour(candidate)); b.style.borderColor = ctx.colour(candidate); }
  return b;
}

function renderDeskNational(nat, states, tally, ctx) {
  const { status, candidate } = deskStatus(nat.status);
  const box = $("desk-national"), c = candidate != null ? ctx.who(candidate) : null;
  box.dataset.status = status;
  box.style.setProperty("--call", c ? ctx.colour(candidate) : "");
  const label = { called: c && `CALLED: ${c.candidate_name} wins`, projected: c && `PROJECTED: ${c.candidate_name}`,
    too_close: "Too close to call", too_early: "Too early to call" }[status] || "Too early to call";
  // Set only on change: the box is a live region, and a screen reader
  // would otherwise repeat it with every frame.
  if ($("desk-national-label").textContent !== label) $("desk-national-label").textContent = label;
  const n = { called: 0, projected: 0 };
  for (const s of states) { const st = deskStatus(s.status).status; if (st in n) n[st] += 1; }
  const t = tally.find((x) => x.id === candidate);
  const detail = c
    ? `${c.party_affiliation ? c.party_affiliation + " · " : ""}${fmt(t ? t.called : 0)} electoral votes called, ${fmt(t ? t.called + t.projected : 0)} with projections · ${fmt(nat.threshold || 270)} to win`
    : `${fmt(nat.threshold || 270)} of ${fmt(nat.total_ev || 538)} electoral votes needed to win · ${n.called} states called, ${n.projected} projected`;
  if ($("desk-national-detail").textContent !== detail) $("desk-national-detail").textContent = detail;
}

// Called and projected electoral votes per candidate, leader first. The
// contract's projected_ev counts the called states too (its example: 120
// called and 200 projected is "120 called + 80 projected"), so the tint
// drawn beside the solid bar is the difference.
function deskTally(nat, ctx) {
  const pairs = (p) => new Map((Array.isArray(p) ? p : []).map(([id, n]) => [id, Number(n) || 0]));
  const called = pairs(nat.called_ev), projected = pairs(nat.projected_ev);
  const ids = [...new Set([...ctx.order, ...called.keys(), ...projected.keys()])];
  return ids.map((id, i) => {
    const c = called.get(id) || 0;
    return { id, i, called: c, projected: Math.max(0, (projected.get(id) || 0) - c) };
  }).sort((a, b) => b.called + b.projected - a.called - a.projected || b.called - a.called || a.i - b.i);
}

function renderDeskEv(nat, tally, ctx, suspended) {
  const total = Number(nat.total_ev) || 538, threshold = Number(nat.threshold) || 270;
  const at = (ev) => `${(100 * Math.min(ev, total) / total).toFixed(3)}%`;
  const segs = [];
  let x = 0;
  for (const t of tally) {
    const c = ctx.colour(t.id);
    for (const [kind, ev] of [["called", t.called], ["projected", t.projected]]) {
      if (!ev) continue;
      const seg = el("div", { class: `ev-seg ${kind}` });
      seg.style.left = at(x); seg.style.width = at(ev);
      seg.style.setProperty("--c", c);
      seg.style.setProperty("--t", deskTint(c));
      // Room for the figure inside the bar only on a wide enough piece.
      if (ev / total > 0.06) seg.append(el("span", {}, fmt(ev)));
      segs.push(seg);
      x += ev;
    }
  }
  const mark = el("div", { class: "ev-mark" }); mark.style.left = at(threshold);
  const label = el("span", { class: "ev-mark-label" }, `${fmt(threshold)} to win`);
  label.style.left = at(threshold);
  $("desk-ev-bar").replaceChildren(...segs, mark, label);
  const lines = tally.map((t) => {
    const c = ctx.who(t.id);
    return `${c.party_affiliation || c.candidate_name} ${fmt(t.called)} called + ${fmt(t.projected)} projected`;
  });
  const rest = Math.max(0, total - x);
  $("desk-ev-bar").setAttribute("aria-label", `Electoral votes, ${fmt(threshold)} to win: ${lines.join("; ")}; ${fmt(rest)} not yet called or projected`);
  $("desk-ev-text").replaceChildren(...tally.map((t, i) => {
    const c = ctx.who(t.id), li = el("li", { "data-candidate": t.id });
    li.append(deskSwatch(ctx.colour(t.id)), el("b", { class: "ev-n" }, fmt(t.called + t.projected)),
      el("span", { class: "ev-name" }, c.candidate_name), el("span", { class: "ev-detail" }, lines[i]));
    return li;
  }), el("li", { class: "ev-rest" }, `${fmt(rest)} not yet called or projected`));
  const pop = Array.isArray(nat.popular) ? nat.popular : [];
  const p = $("desk-popular");
  p.replaceChildren(el("span", { class: "k" }, suspended ? "Popular vote (counted, certain range)" : "Projected popular vote"), ...pop.map((s) => {
    const item = el("span", { class: "pop" });
    item.append(deskSwatch(ctx.colour(s.candidate)), `${ctx.who(s.candidate).candidate_name} ${deskShare(s)}`);
    return item;
  }));
  p.hidden = !pop.length;
}

function renderDeskMap(states, ctx) {
  const byCode = new Map(states.map((s) => [s.code, s]));
  const S = 58, G = 2;
  // One hatch per candidate colour, so a projection reads as "not final"
  // even in greyscale.
  const defs = el("svg:defs");
  const hatch = new Map();
  for (const id of new Set([...ctx.order, ...states.map((s) => deskStatus(s.status).candidate).filter((c) => c != null)])) {
    const pid = `desk-hatch-${hatch.size}`;
    hatch.set(id, pid);
    const p = el("svg:pattern", { id: pid, width: 8, height: 8, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" });
    p.append(el("svg:rect", { width: 3, height: 8, fill: ctx.colour(id), "fill-opacity": 0.7 }));
    defs.append(p);
  }
  $("desk-map").replaceChildren(defs, ...TILES.map(([code, name, row, c]) => {
    const s = byCode.get(code), { status, candidate } = deskStatus(s && s.status);
    const x = c * (S + G) + 2, y = row * (S + G) + 10, g = el("svg:g", { class: `tile ${status}`, "data-state": code, "data-status": status });
    const colour = candidate != null ? ctx.colour(candidate) : null;
    if (status === "called") g.append(el("svg:rect", { x, y, width: S, height: S, rx: 6, fill: colour }));
    else if (status === "projected") {
      g.append(el("svg:rect", { x: x + 1.5, y: y + 1.5, width: S - 3, height: S - 3, rx: 5, fill: colour, "fill-opacity": 0.22, stroke: colour, "stroke-width": 3 }),
        el("svg:rect", { x: x + 1.5, y: y + 1.5, width: S - 3, height: S - 3, rx: 5, fill: `url(#${hatch.get(candidate)})` }));
    } else g.append(el("svg:rect", { class: "bg", x: x + 0.75, y: y + 0.75, width: S - 1.5, height: S - 1.5, rx: 6 }));
    const ev = s ? Number(s.electoral_votes) || 0 : 0;
    const call = candidate != null ? ` for ${ctx.who(candidate).candidate_name}` : "";
    g.append(el("svg:title", {}, `${name} (${ev} EV): ${DESK_BADGE[status].toLowerCase()}${call}` +
        (s ? ` · ${deskP1(s.eevp)}% of expected vote in` : "")),
      el("svg:text", { class: "code", x: x + S / 2, y: y + S / 2 + 1, "text-anchor": "middle" }, code),
      el("svg:text", { class: "ev", x: x + S / 2, y: y + S / 2 + 18, "text-anchor": "middle" }, s ? String(ev) : ""));
    return g;
  }));
  const legend = [["called", "Called"], ["projected", "Projected"], ["too_close", "Too close to call"], ["too_early", "Too early to call"]];
  $("desk-legend").replaceChildren(...legend.map(([k, t]) => {
    const li = el("li"); li.append(el("span", { class: `key ${k}` }), t); return li;
  }), ...ctx.order.map((id) => {
    const li = el("li"), c = ctx.who(id);
    li.append(deskSwatch(ctx.colour(id)), c.party_affiliation ? `${c.candidate_name} (${c.party_affiliation})` : c.candidate_name);
    return li;
  }));
}

function renderDeskTable(states, ctx) {
  const table = $("desk-table");
  const headKey = ctx.order.map((id) => id + "\u0000" + ctx.who(id).candidate_name).join("\u0001");
  if (desk.headKey !== headKey) {
    const tr = el("tr"), sortable = (key, text, cls) => {
      const th = el("th", { class: cls || "", "data-key": key });
      th.append(el("button", { type: "button", "data-desk-sort": key }, text));
      return th;
    };
    tr.append(sortable("state", "State", "c-state"), sortable("ev", "EV", "num c-ev"), sortable("status", "Status", "c-status"),
      ...ctx.order.map((id) => { const th = el("th", { class: "num c-cand" }); th.append(deskSwatch(ctx.colour(id)), ctx.who(id).candidate_name); return th; }),
      sortable("eevp", "Expected vote in", "c-eevp"), el("th", { class: "num c-counted" }, "Counted"));
    table.tHead.replaceChildren(tr);
    // A fixed layout keeps columns still between frames; the candidates'
    // columns get their room from here, and the wrapper scrolls sideways.
    table.style.setProperty("--cands", String(ctx.order.length));
    desk.headKey = headKey;
  }
  for (const th of table.tHead.querySelectorAll("th[data-key]")) {
    th.setAttribute("aria-sort", th.dataset.key === desk.sort ? (desk.desc ? "descending" : "ascending") : "none");
  }
  const key = { state: (s) => String(s.state), ev: (s) => Number(s.electoral_votes) || 0,
    status: (s) => DESK_RANK[deskStatus(s.status).status], eevp: (s) => Number(s.eevp) || 0 }[desk.sort];
  const rows = [...states].sort((a, b) => {
    const ka = key(a), kb = key(b);
    return (ka < kb ? -1 : ka > kb ? 1 : String(a.state) < String(b.state) ? -1 : 1) * (desk.desc ? -1 : 1);
  });
  table.tBodies[0].replaceChildren(...rows.map((s) => {
    const { status, candidate } = deskStatus(s.status);
    const tr = el("tr", { "data-state": s.code, "data-status": status });
    const name = el("td", { class: "c-state" }, s.state);
    name.append(el("span", { class: "code" }, s.code));
    const st = el("td", { class: "c-status" });
    st.append(deskBadge(status, candidate, ctx));
    if (candidate != null) {
      const n = ctx.who(candidate).candidate_name;
      st.append(el("span", { class: "winner", title: n }, n));
    }
    const shares = new Map((Array.isArray(s.shares) ? s.shares : []).map((x) => [x.candidate, x]));
    const cells = ctx.order.map((id) => {
      const x = shares.get(id), td = el("td", { class: "num c-cand" + (id === s.leader ? " lead" : "") });
      if (!x) { td.textContent = "–"; return td; }
      td.append(`${deskP1(x.share)}%`, el("span", { class: "ci" }, ` (${deskP1(x.lo)}–${deskP1(x.hi)})`));
      return td;
    });
    const eevp = el("td", { class: "c-eevp" }), bar = el("span", { class: "eevp-bar" }), fill = el("span");
    fill.style.width = `${Math.min(100, Math.max(0, 100 * (Number(s.eevp) || 0))).toFixed(1)}%`;
    bar.append(fill);
    eevp.append(bar, el("span", { class: "eevp-n" }, `${deskP1(s.eevp)}%`));
    tr.append(name, el("td", { class: "num c-ev" }, fmt(s.electoral_votes)), st, ...cells, eevp, el("td", { class: "num c-counted" }, fmt(s.counted)));
    return tr;
  }));
}

const deskRace = (e) => (e.race && e.race.kind === "national" ? "National" : String((e.race && e.race.state) ?? "–"));

function renderDeskLog(events, ctx) {
  // Rebuilt only when the log changed, so a reader scrolled down it keeps
  // their place between frames.
  const last = events[events.length - 1];
  const logKey = `${events.length}:${last ? last.event_no : ""}:${ctx.order.join(",")}`;
  if (desk.logKey === logKey) return;
  // The list is no live region (a rebuilt list would be read out whole):
  // one line announces the newest call, and not the backlog a freshly
  // opened page arrives with.
  if (desk.logKey !== null && last) {
    $("desk-announce").textContent = `${deskRace(last)}: ${(DESK_KIND[last.kind] || DESK_KIND.projected).toLowerCase()}, ${ctx.who(last.candidate).candidate_name}`;
  }
  desk.logKey = logKey;
  const items = [...events].reverse().map((e) => {
    const kind = DESK_KIND[e.kind] ? e.kind : "projected";
    const li = el("li", { "data-kind": kind, "data-event": e.event_no });
    const who = el("span", { class: "log-who" });
    who.append(deskSwatch(ctx.colour(e.candidate)), el("span", { class: "log-name" }, ctx.who(e.candidate).candidate_name));
    const plain = kind === "withdrawn" || kind === "suspended";
    const badge = plain ? el("span", { class: `badge ${kind}` }, DESK_KIND[kind]) : deskBadge(kind, e.candidate, ctx, DESK_KIND[kind]);
    const detail = kind === "suspended"
      ? `count ${(Number(e.conflict) || 0).toFixed(1)} sd past the model`
      : [e.margin != null ? `margin ${fmt(e.margin)}` : "", e.outstanding != null ? `${fmt(e.outstanding)} outstanding` : ""].filter(Boolean).join(" · ");
    const time = el("time", Number.isFinite(e.at) ? { datetime: new Date(e.at).toISOString() } : {}, deskTime(e.at));
    li.append(time, el("span", { class: "log-race" }, deskRace(e)), badge, who, el("span", { class: "log-detail" }, detail));
    return li;
  });
  $("desk-log").replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, "No race called or projected yet")]));
}

// Not `$`: this runs before dashboard.js has defined it.
document.getElementById("desk-table").tHead.addEventListener("click", (ev) => {
  const b = ev.target.closest("button[data-desk-sort]");
  if (!b) return;
  const k = b.dataset.deskSort;
  desk.desc = desk.sort === k ? !desk.desc : k === "ev" || k === "eevp";
  desk.sort = k;
  if (desk.args) renderDesk(...desk.args);
});
