// The dashboard: reads the daemon's own API (nothing else), follows its
// live stream and redraws what changed. The token, once given, is kept for
// this browser session only (sessionStorage); without it the page is
// read-only and says so.
"use strict";

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
};

let token = sessionStorage.getItem("rvm-token") || "";
let range = "1h";
let openTarget = null;

function headers() {
  return token ? { Authorization: "Bearer " + token } : {};
}

async function api(path, init = {}) {
  const r = await fetch(path, { ...init, headers: { ...headers(), ...(init.headers || {}) } });
  const body = await r.json().catch(() => ({}));
  if (r.status === 401) {
    notice(token ? "The token was refused: enter the one in the daemon's token file." : "This watchdog protects its reads: enter the API token to see anything.");
    throw new Error("401");
  }
  if (!r.ok && r.status !== 503) throw new Error((body.error && body.error.message) || r.statusText);
  return body;
}

function notice(text) {
  const n = $("notice");
  n.textContent = text || "";
  n.hidden = !text;
}

function ago(iso) {
  if (!iso) return "-";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  const t = s < 90 ? Math.round(s) + " s" : s < 5400 ? Math.round(s / 60) + " min" : s < 172800 ? Math.round(s / 3600) + " h" : Math.round(s / 86400) + " d";
  return t + " ago";
}

function state(word) {
  return el("span", { class: "state " + word }, word);
}

// ---- tiles: the latest value of a few series ----
const TILES = [
  ["CPU", 'rvm_host_cpu_usage_ratio{cpu="total"}', (v) => pct(v)],
  ["memory used", 'rvm_host_memory_bytes{kind="used"}', (v) => bytes(v)],
  ["disk used /", 'rvm_host_disk_used_ratio{mount="/"}', (v) => pct(v)],
  ["load 1 min", 'rvm_host_load_average{window="1m"}', (v) => v.toFixed(2)],
  ["GPU load", "rvm_jetson_gpu_load_ratio", (v) => pct(v)],
  ["hottest zone", "rvm_jetson_temperature_celsius", (v) => v.toFixed(1) + " °C", Math.max],
  ["input power", "rvm_jetson_input_power_watts", (v) => v.toFixed(1) + " W"],
  ["uptime", "rvm_host_uptime_seconds", (v) => (v / 3600).toFixed(1) + " h"],
];
const pct = (v) => (v * 100).toFixed(1) + " %";
const bytes = (v) => v >= 1 << 30 ? (v / (1 << 30)).toFixed(2) + " GiB" : (v / (1 << 20)).toFixed(0) + " MiB";

async function latest(series, fold) {
  const q = await api("/api/v1/query?since=3m&series=" + encodeURIComponent(series));
  const values = (q.series || []).map((s) => s.points.length ? s.points[s.points.length - 1].last : null).filter((v) => v !== null);
  if (!values.length) return null;
  return fold ? fold(...values) : values[0];
}

async function drawTiles(health) {
  const box = $("tiles");
  const tiles = [];
  const checks = health.checks || {};
  const bus = (checks["systemd:connection"] || [])[0];
  tiles.push(["systemd", bus ? (bus.observedValue ? "connected" : "not connected") : "no unit targets"]);
  tiles.push(["safe mode", checks["recovery:safe-mode"] ? "ON: no reboots" : "off"]);
  const budget = (checks["recovery:reboot-budget"] || [])[0];
  if (budget) tiles.push(["reboots left", String(budget.rebootsLeft)]);
  for (const [name, series, show, fold] of TILES) {
    try {
      const v = await latest(series, fold);
      if (v !== null) tiles.push([name, show(v)]);
    } catch (e) { if (e.message === "401") return; }
  }
  box.replaceChildren(...tiles.map(([k, v]) => el("div", { class: "tile" }, el("div", { class: "k" }, k), el("div", { class: "v" }, v))));
}

// ---- targets, alerts, incidents ----
let lastAlerts = [];

function drawTargets(health) {
  const body = $("targets").tBodies[0];
  const rows = (health.targets || []).map((t) => {
    const c = ((health.checks || {})["target:" + t.name] || [])[0] || {};
    const word = c.state || "unknown";
    const last = c.lastAction ? `${c.lastAction.action} ${c.lastAction.result} (${c.lastAction.by}, ${ago(c.lastAction.at)})` : "-";
    const mine = lastAlerts.filter((a) => a.target === t.name).map((a) => `${a.name} ${a.state}`);
    let alerts = mine.join(", ") || "-";
    if (c.suppressedBy) alerts += ` (held back: ${c.suppressedBy} is failing)`;
    if (c.acknowledged) alerts += ` (acknowledged by ${c.acknowledgedBy})`;
    const row = el("tr", { onclick: () => showTarget(t.name), "data-target": t.name },
      el("td", {}, t.name), el("td", {}, state(word)), el("td", {}, ago(c.since)), el("td", {}, last), el("td", { class: "out" }, alerts));
    const out = el("tr", { class: "out-row" }, el("td", { colspan: "5", class: "out" }, c.output || ""));
    return word === "healthy" ? [row] : [row, out];
  });
  body.replaceChildren(...rows.flat());
}

async function showTarget(name) {
  openTarget = name;
  const d = $("detail");
  try {
    const t = await api("/api/v1/targets/" + encodeURIComponent(name));
    const probes = (t.probes || []).map((p) => el("li", {}, `${p.name}: `, state(p.health), ` ${p.status}, ${p.output} (${ago(p.at)})`));
    const r = t.recovery || {};
    const ladder = (t.ladder || []).map((a, i) => (i === r.step ? `[${a}]` : a)).join(" → ") || "none";
    const inc = Array.isArray(t.incidents) ? t.incidents.map((i) => el("li", {}, incidentLine(i))) : [];
    d.replaceChildren(
      el("h3", {}, name, " ", state(t.state || "unknown")),
      el("p", { class: "muted" }, t.output || ""),
      el("p", {}, `ladder: ${ladder}; attempts in this step: ${r.attempts ?? 0}` + (r.heldBy ? `; held while ${r.heldBy} is healed` : "")),
      el("h4", {}, "probes"), el("ul", { class: "list" }, ...probes),
      el("h4", {}, "incidents"), el("ul", { class: "list" }, ...inc),
      el("button", { type: "button", onclick: () => { d.hidden = true; openTarget = null; } }, "close"));
    d.hidden = false;
  } catch (e) { notice(e.message); }
}

function incidentLine(i) {
  const took = i.closedAt ? ` recovered in ${Math.round((i.closedAt - i.openedAt) / 1000)} s` : " open";
  const actions = (i.actions || []).map((a) => `${a.action} ${a.result || ""}`.trim()).join(" → ");
  return `${new Date(i.openedAt).toLocaleString()} ${i.target}: ${i.reason || ""}${actions ? " → " + actions : ""};${took}`;
}

async function drawAlerts() {
  const list = (await api("/api/v1/alerts")).alerts || [];
  lastAlerts = list;
  const items = list.map((a) => el("li", {}, state(a.state), ` ${a.severity} ${a.name}${a.target ? " on " + a.target : ""}: ${a.summary || ""}`,
    a.ack ? el("div", { class: "muted" }, `acknowledged by ${a.ack.by}: ${a.ack.comment}`) : "",
    el("div", {},
      a.state !== "acknowledged" ? el("button", { type: "button", "data-ack": a.fingerprint, onclick: () => ack(a) }, "acknowledge") : "",
      el("button", { type: "button", onclick: () => silence(a) }, "silence 2 h"))));
  $("alerts").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "no active alerts")]));
}

async function drawIncidents() {
  const list = (await api("/api/v1/incidents?limit=10")).incidents || [];
  $("incidents").replaceChildren(...(list.length ? list.map((i) => el("li", {}, incidentLine(i))) : [el("li", { class: "muted" }, "no incidents")]));
}

function needToken() {
  if (token) return true;
  notice("Read-only: acknowledging and silencing need the API token (enter token).");
  return false;
}

async function ack(a) {
  if (!needToken()) return;
  const comment = prompt(`Acknowledge ${a.name}${a.target ? " on " + a.target : ""}: what are you doing about it?`, "");
  if (comment === null) return;
  try {
    await api(`/api/v1/alerts/${a.fingerprint}/ack`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ comment, by: "dashboard" }) });
    await refresh();
  } catch (e) { notice("acknowledge: " + e.message); }
}

async function silence(a) {
  if (!needToken()) return;
  const reason = prompt(`Silence ${a.name}${a.target ? " on " + a.target : ""} for 2 h: why?`, "");
  if (reason === null) return;
  try {
    await api("/api/v1/silences", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ target: a.target || undefined, name: a.name, for: "2h", reason, by: "dashboard" }) });
    await refresh();
  } catch (e) { notice("silence: " + e.message); }
}

// ---- charts ----
const num = (v) => v.toFixed(v >= 10 ? 0 : 2);
const CHARTS = [
  ["CPU", 'rvm_host_cpu_usage_ratio{cpu="total"}', pct],
  ["memory used", 'rvm_host_memory_bytes{kind="used"}', bytes],
  ["load 1 min", 'rvm_host_load_average{window="1m"}', num],
  ["GPU load", "rvm_jetson_gpu_load_ratio", pct],
  ["temperature °C", "rvm_jetson_temperature_celsius", num],
  ["the watchdog's memory", "rvm_watchdog_process_resident_memory_bytes", bytes],
];
const plots = new Map();

async function drawCharts() {
  const box = $("charts");
  for (const [title, series, show] of CHARTS) {
    let q;
    try { q = await api(`/api/v1/query?since=${range}&series=${encodeURIComponent(series)}`); } catch (e) { return; }
    const list = (q.series || []).filter((s) => s.points.length);
    let card = box.querySelector(`[data-series="${CSS.escape(series)}"]`);
    if (!list.length) { if (card) card.remove(); plots.delete(series); continue; }
    const xs = list[0].points.map((p) => p.at / 1000);
    const data = [xs, ...list.map((s) => { const by = new Map(s.points.map((p) => [p.at / 1000, p.mean])); return xs.map((x) => by.get(x) ?? null); })];
    if (!card) {
      card = el("div", { class: "chart", "data-series": series }, el("div", { class: "k" }, title));
      box.append(card);
    }
    const width = Math.max(260, card.clientWidth - 10);
    const old = plots.get(series);
    if (old && old.series.length === data.length && old.rvmRange === range) {
      old.rvmSpan[0] = q.from / 1000;
      old.rvmSpan[1] = q.to / 1000;
      old.setData(data);
      continue;
    }
    if (old) old.destroy();
    const span = [q.from / 1000, q.to / 1000];
    const opts = {
      width, height: 160, legend: { show: list.length > 1 },
      scales: { x: { time: true, range: () => span } },
      series: [{}, ...list.map((s, i) => ({ label: s.series, stroke: ["#2f81f7", "#d29922", "#3fb950", "#f85149", "#a371f7"][i % 5], width: 1.5, value: (u, v) => (v == null ? "-" : show(v)) }))],
      axes: [{ stroke: "currentColor" }, { stroke: "currentColor", size: 70, values: (u, vals) => vals.map(show) }],
    };
    const plot = new uPlot(opts, data, card);
    plot.rvmRange = range;
    plot.rvmSpan = span;
    plots.set(series, plot);
  }
}

// ---- the whole page, and the live stream ----
async function refresh() {
  try {
    const health = await api("/health");
    notice(token ? "" : "Read-only: enter the API token to acknowledge or silence.");
    const id = health.identity || {};
    $("who").textContent = `${id.name || "rvm-watchdog"}${id.site ? " · " + id.site : ""} — rvm-watchdog ${health.releaseId || ""}`;
    const o = $("overall");
    o.className = "state " + health.status;
    o.textContent = health.status;
    await drawAlerts();
    drawTargets(health);
    await drawIncidents();
    if (openTarget) showTarget(openTarget);
    await drawTiles(health);
  } catch (e) {
    if (e.message !== "401") notice("cannot read the watchdog: " + e.message);
  }
}

let pending = null;
function soon() {
  if (pending) return;
  pending = setTimeout(() => { pending = null; refresh(); }, 250);
}

function live(word) {
  const l = $("live");
  l.className = "state " + word;
  l.textContent = word;
}

// Server-Sent Events over fetch (EventSource cannot send the token),
// resuming with Last-Event-ID after a break.
async function follow() {
  let last = null;
  for (;;) {
    try {
      const h = { ...headers(), Accept: "text/event-stream" };
      if (last) h["Last-Event-ID"] = last;
      const r = await fetch("/api/v1/stream", { headers: h });
      if (!r.ok) throw new Error(r.status);
      live("live");
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const frame = buf.slice(0, end);
          buf = buf.slice(end + 2);
          for (const line of frame.split("\n")) if (line.startsWith("id:")) last = line.slice(3).trim();
          if (frame.includes("event:")) soon();
        }
      }
    } catch (e) { /* shown below */ }
    live("reconnecting");
    await new Promise((ok) => setTimeout(ok, 1000));
  }
}

function theme(next) {
  if (next) localStorage.setItem("rvm-theme", next);
  const t = localStorage.getItem("rvm-theme");
  if (t) document.documentElement.dataset.theme = t;
}

$("theme").addEventListener("click", () => {
  const dark = document.documentElement.dataset.theme === "dark" || (!document.documentElement.dataset.theme && matchMedia("(prefers-color-scheme: dark)").matches);
  theme(dark ? "light" : "dark");
});
$("login").addEventListener("click", () => {
  const t = prompt("The API token (kept for this browser session only):", "");
  if (t === null) return;
  token = t.trim();
  if (token) sessionStorage.setItem("rvm-token", token); else sessionStorage.removeItem("rvm-token");
  refresh();
});
for (const b of document.querySelectorAll("#ranges button")) {
  b.addEventListener("click", () => {
    range = b.dataset.range;
    for (const o of document.querySelectorAll("#ranges button")) o.classList.toggle("on", o === b);
    drawCharts();
  });
}

theme();
refresh().then(drawCharts);
setInterval(drawCharts, 15000);
setInterval(refresh, 10000);
follow();
