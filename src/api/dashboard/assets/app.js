// The dashboard: reads the daemon's own API (nothing else), follows its
// live stream and redraws what changed. The token, once given, is kept for
// this browser session only (sessionStorage); without it the page is
// read-only and says so. What it shows starts from the site's view
// (`[dashboard]` in watchdog.toml); a browser may keep its own
// (localStorage).
"use strict";

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== false && v !== undefined) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== "" && c != null) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
};

let token = sessionStorage.getItem("rvm-token") || "";
let range = "1h";
let openTarget = null;
let site = null; // the site's view, from /api/v1/dashboard
let lastHealth = null;
let lastAlerts = [];
let openIncidents = new Set(); // targets with an incident open

function headers() {
  return token ? { Authorization: "Bearer " + token } : {};
}

async function api(path, init = {}) {
  const r = await fetch(path, { ...init, headers: { ...headers(), ...(init.headers || {}) } });
  const body = await r.json().catch(() => ({}));
  if (r.status === 401) {
    askToken(token ? "The token was refused: enter the one in the daemon's token file." : "This watchdog protects its reads: enter the API token to see anything.");
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

function askToken(why) {
  if (why) notice(why);
  $("token-form").hidden = false;
  $("token-input").focus();
}

function ago(iso) {
  if (!iso) return "-";
  const s = Math.max(0, (Date.now() - (typeof iso === "number" ? iso : Date.parse(iso))) / 1000);
  const t = s < 90 ? Math.round(s) + " s" : s < 5400 ? Math.round(s / 60) + " min" : s < 172800 ? Math.round(s / 3600) + " h" : Math.round(s / 86400) + " d";
  return t + " ago";
}

function state(word) {
  return el("span", { class: "state " + word }, word);
}

const pct = (v) => (v * 100).toFixed(1) + " %";
const bytes = (v) => (v >= 1 << 30 ? (v / (1 << 30)).toFixed(2) + " GiB" : v >= 1 << 20 ? (v / (1 << 20)).toFixed(0) + " MiB" : (v / 1024).toFixed(0) + " KiB");
const perSecond = (v) => (v >= 1 << 20 ? (v / (1 << 20)).toFixed(1) + " MiB/s" : (v / 1024).toFixed(1) + " KiB/s");
const num = (v) => v.toFixed(Math.abs(v) >= 10 ? 0 : 2);
const q = (series, since) => `/api/v1/query?since=${since}&series=${encodeURIComponent(series)}`;

// A counter's points as a rate: each point's increase over the time since
// the one before.
function rates(points) {
  const out = [];
  for (let i = 1; i < points.length; i++) {
    const dt = (points[i].at - points[i - 1].at) / 1000;
    if (dt > 0 && points[i].increase != null) out.push({ at: points[i].at, value: points[i].increase / dt });
  }
  return out;
}

async function latest(series, fold) {
  const r = await api(q(series, "3m"));
  const values = (r.series || []).map((s) => (s.points.length ? s.points[s.points.length - 1].last : null)).filter((v) => v !== null);
  if (!values.length) return null;
  return fold ? fold(...values) : values[0];
}

async function latestRate(series) {
  const r = await api(q(series, "3m"));
  const each = (r.series || []).map((s) => rates(s.points).pop()).filter(Boolean);
  return each.length ? each.reduce((a, p) => a + p.value, 0) : null;
}

// ---- tiles, by the names `[dashboard] tiles` takes ----
const check = (h, name) => ((h.checks || {})[name] || [])[0];
const TILES = {
  cpu: ["CPU", async () => { const v = await latest('rvm_host_cpu_usage_ratio{cpu="total"}'); return v === null ? null : pct(v); }],
  memory: ["memory used", async () => {
    const used = await latest('rvm_host_memory_bytes{kind="used"}');
    const total = await latest('rvm_host_memory_bytes{kind="total"}');
    if (used === null) return null;
    return total ? `${bytes(used)} of ${bytes(total)}` : bytes(used);
  }],
  disk: ["disk used /", async () => { const v = await latest('rvm_host_disk_used_ratio{mount="/"}'); return v === null ? null : pct(v); }],
  load: ["load 1 min", async () => { const v = await latest('rvm_host_load_average{window="1m"}'); return v === null ? null : v.toFixed(2); }],
  gpu: ["GPU load", async () => { const v = await latest("rvm_jetson_gpu_load_ratio"); return v === null ? null : pct(v); }],
  temperature: ["hottest zone", async () => { const v = await latest("rvm_jetson_temperature_celsius", Math.max); return v === null ? null : v.toFixed(1) + " °C"; }],
  power: ["input power", async () => { const v = await latest("rvm_jetson_input_power_watts"); return v === null ? null : v.toFixed(1) + " W"; }],
  network: ["network", async () => {
    const rx = await latestRate("rvm_host_network_receive_bytes_total");
    const tx = await latestRate("rvm_host_network_transmit_bytes_total");
    if (rx === null && tx === null) return null;
    return `in ${perSecond(rx || 0)}, out ${perSecond(tx || 0)}`;
  }],
  uptime: ["uptime", async () => { const v = await latest("rvm_host_uptime_seconds"); return v === null ? null : (v / 3600).toFixed(1) + " h"; }],
  systemd: ["systemd", async (h) => { const bus = check(h, "systemd:connection"); return bus ? (bus.observedValue ? "connected" : "not connected") : "no unit targets"; }],
  "safe-mode": ["safe mode", async (h) => (check(h, "recovery:safe-mode") ? "ON: no reboots" : "off")],
  reboots: ["reboots left", async (h) => { const b = check(h, "recovery:reboot-budget"); return b ? String(b.rebootsLeft) : null; }],
  outbox: ["outbox", async () => { const v = await latest("rvm_watchdog_outbox_queued"); return v === null ? null : `${v} waiting`; }],
};

// ---- charts, by the names `[dashboard] charts` takes ----
const CHARTS = {
  cpu: { title: "CPU", series: ['rvm_host_cpu_usage_ratio{cpu="total"}'], show: pct },
  memory: { title: "memory used", series: ['rvm_host_memory_bytes{kind="used"}'], show: bytes },
  load: { title: "load average", series: ["rvm_host_load_average"], show: num },
  disk: { title: "disk used", series: ["rvm_host_disk_used_ratio"], show: pct },
  gpu: { title: "GPU load", series: ["rvm_jetson_gpu_load_ratio"], show: pct },
  temperature: { title: "temperature °C", series: ["rvm_jetson_temperature_celsius"], show: num },
  power: { title: "power W", series: ["rvm_jetson_input_power_watts", "rvm_jetson_rail_power_watts"], show: num },
  network: { title: "network", series: ["rvm_host_network_receive_bytes_total", "rvm_host_network_transmit_bytes_total"], rate: true, show: perSecond },
  "service-memory": { title: "services' memory", series: ["rvm_watchdog_unit_memory_bytes"], show: bytes },
  "service-cpu": { title: "services' CPU (cores)", series: ["rvm_watchdog_unit_cpu_seconds_total"], rate: true, show: num },
  watchdog: { title: "the watchdog's memory", series: ["rvm_watchdog_process_resident_memory_bytes"], show: bytes },
};

// `kpis` stands for one chart per KPI.
function chartIds(list) {
  return list.flatMap((id) => (id === "kpis" ? (site.kpis || []).map((k) => "kpi:" + k.name) : [id]));
}

function chartOf(id) {
  if (id.startsWith("kpi:")) {
    const k = (site.kpis || []).find((k) => "kpi:" + k.name === id);
    return k && { title: k.help || k.name, series: [k.name], show: num };
  }
  return CHARTS[id];
}

// ---- the view: the site's, or this browser's own ----
function mine() {
  try { return JSON.parse(localStorage.getItem("rvm-view")) || {}; } catch (e) { return {}; }
}

function view() {
  const m = mine();
  return {
    tiles: m.tiles || site.tiles,
    charts: m.charts || site.charts,
    targets: m.targets !== undefined ? m.targets : site.targets,
  };
}

function keep(part, list) {
  const m = mine();
  m[part] = list;
  localStorage.setItem("rvm-view", JSON.stringify(m));
  drawChoices();
  redraw();
}

function targetNames() {
  return ((lastHealth && lastHealth.targets) || []).map((t) => t.name).sort();
}

function drawChoices() {
  if (!site) return;
  const v = view();
  const groups = [
    ["tiles", "Tiles", v.tiles, Object.keys(TILES)],
    ["charts", "Charts", v.charts, Object.keys(CHARTS).concat("kpis")],
    ["targets", "Targets", v.targets || targetNames(), targetNames()],
  ];
  $("choices").replaceChildren(...groups.map(([part, title, shown, all]) => {
    const order = shown.concat(all.filter((n) => !shown.includes(n)));
    const items = order.map((name, i) => {
      const on = shown.includes(name);
      const move = (by) => {
        const list = shown.slice();
        const at = list.indexOf(name);
        const to = at + by;
        if (at < 0 || to < 0 || to >= list.length) return;
        [list[at], list[to]] = [list[to], list[at]];
        keep(part, list);
      };
      return el("li", {},
        el("label", {}, el("input", { type: "checkbox", checked: on, "data-choice": part + ":" + name, onchange: (e) => keep(part, e.target.checked ? shown.concat(name) : shown.filter((n) => n !== name)) }), " ", name),
        on && i > 0 ? el("button", { type: "button", title: "earlier", onclick: () => move(-1) }, "↑") : "",
        on && i < shown.length - 1 ? el("button", { type: "button", title: "later", onclick: () => move(1) }, "↓") : "");
    });
    return el("fieldset", {}, el("legend", {}, title), el("ul", { class: "choices" }, ...items));
  }));
}

function redraw() {
  if (!lastHealth) return;
  drawTargets(lastHealth);
  drawTiles(lastHealth);
  drawCharts();
}

// ---- tiles ----
async function drawTiles(health) {
  const tiles = [];
  for (const id of view().tiles) {
    const t = TILES[id];
    if (!t) continue;
    try {
      const v = await t[1](health);
      if (v !== null) tiles.push(el("div", { class: "tile", "data-tile": id }, el("div", { class: "k" }, t[0]), el("div", { class: "v" }, v)));
    } catch (e) { if (e.message === "401") return; }
  }
  $("tiles").replaceChildren(...tiles);
}

// ---- targets, alerts, incidents ----
function drawTargets(health) {
  const body = $("targets").tBodies[0];
  const all = health.targets || [];
  const wanted = view().targets;
  const list = wanted ? wanted.map((n) => all.find((t) => t.name === n)).filter(Boolean) : all;
  const rows = list.map((t) => {
    const c = check(health, "target:" + t.name) || {};
    // After an action the target waits for a fresh observation: while its
    // incident is open, that is recovering, not unknown.
    const word = c.state === "unknown" && openIncidents.has(t.name) ? "recovering" : c.state || "unknown";
    const last = c.lastAction ? `${c.lastAction.action} ${c.lastAction.result} (${c.lastAction.by}, ${ago(c.lastAction.at)})` : "-";
    const held = lastAlerts.filter((a) => a.target === t.name).map((a) => `${a.name} ${a.state}`);
    let alerts = held.join(", ") || "-";
    if (c.suppressedBy) alerts += ` (held back: ${c.suppressedBy} is failing)`;
    if (c.acknowledged) alerts += ` (acknowledged by ${c.acknowledgedBy})`;
    const row = el("tr", { onclick: () => showTarget(t.name), "data-target": t.name, "data-state": word },
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
  } catch (e) { if (e.message !== "401") notice(e.message); }
}

function incidentLine(i) {
  const took = i.closedAt ? ` recovered in ${Math.round((i.closedAt - i.openedAt) / 1000)} s` : " open";
  const actions = (i.actions || []).map((a) => `${a.action} ${a.result || ""}`.trim()).join(" → ");
  return `${new Date(i.openedAt).toLocaleString()} ${i.target}: ${i.reason || ""}${actions ? " → " + actions : ""};${took}`;
}

// An inline form under an alert: one text field and a button (no
// prompt(): a kiosk or a phone keeps the page in view).
function inlineForm(item, label, placeholder, extra, send) {
  for (const f of item.querySelectorAll("form")) f.remove();
  const input = el("input", { type: "text", placeholder, "aria-label": label, required: true });
  const form = el("form", { class: "inline", onsubmit: async (e) => { e.preventDefault(); form.querySelector("[type=submit]").disabled = true; await send(input.value.trim(), form); } },
    input, extra || "", el("button", { type: "submit" }, label), el("button", { type: "button", onclick: () => form.remove() }, "cancel"));
  item.append(form);
  input.focus();
}

function drawAlerts(list) {
  lastAlerts = list;
  if (document.querySelector("#alerts form")) return; // an operator is typing
  const items = list.map((a) => {
    const item = el("li", { "data-alert": a.fingerprint }, state(a.state), ` ${a.severity} ${a.name}${a.target ? " on " + a.target : ""}: ${a.summary || ""}`,
      a.ack ? el("div", { class: "muted" }, `acknowledged by ${a.ack.by}: ${a.ack.comment}`) : "");
    item.append(el("div", {},
      a.state !== "acknowledged" ? el("button", { type: "button", "data-ack": a.fingerprint, onclick: () => ack(a, item) }, "acknowledge") : "",
      el("button", { type: "button", "data-silence": a.fingerprint, onclick: () => silence(a, item) }, "silence")));
    return item;
  });
  $("alerts").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "no active alerts")]));
}

function drawIncidents(list) {
  openIncidents = new Set(list.filter((i) => !i.closedAt).map((i) => i.target));
  $("incidents").replaceChildren(...(list.length ? list.map((i) => el("li", {}, incidentLine(i))) : [el("li", { class: "muted" }, "no incidents")]));
}

function needToken() {
  if (token) return true;
  askToken("Acknowledging and silencing need the API token.");
  return false;
}

function ack(a, item) {
  if (!needToken()) return;
  inlineForm(item, "acknowledge", "what are you doing about it?", null, async (comment, form) => {
    try {
      await api(`/api/v1/alerts/${a.fingerprint}/ack`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ comment, by: "dashboard" }) });
      form.remove();
      await refresh();
    } catch (e) { notice("acknowledge: " + e.message); form.remove(); }
  });
}

function silence(a, item) {
  if (!needToken()) return;
  const length = el("select", { "aria-label": "for" }, ...["1h", "2h", "8h", "24h"].map((d) => el("option", { value: d, selected: d === "2h" }, d)));
  inlineForm(item, "silence", "why?", length, async (reason, form) => {
    try {
      await api("/api/v1/silences", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ target: a.target || undefined, name: a.name, for: length.value, reason, by: "dashboard" }) });
      form.remove();
      await refresh();
    } catch (e) { notice("silence: " + e.message); form.remove(); }
  });
}

// ---- charts ----
const COLOURS = ["#2f81f7", "#d29922", "#3fb950", "#f85149", "#a371f7", "#db61a2", "#39c5cf"];
const plots = new Map();

function label(s, names) {
  const labels = Object.values(s.labels || {}).join(" ");
  const name = names > 1 ? s.name.replace(/^rvm_(host_|jetson_|watchdog_)?/, "").replace(/_(bytes_)?total$/, "") : "";
  return [name, labels].filter(Boolean).join(" ") || s.name;
}

async function drawCharts() {
  if (!site) return;
  const box = $("charts");
  const ids = chartIds(view().charts);
  for (const card of box.querySelectorAll(".chart")) {
    if (!ids.includes(card.dataset.chart)) { card.remove(); const p = plots.get(card.dataset.chart); if (p) p.destroy(); plots.delete(card.dataset.chart); }
  }
  let from = 0, to = 0;
  for (const id of ids) {
    const c = chartOf(id);
    if (!c) continue;
    let list = [];
    try {
      for (const series of c.series) {
        const r = await api(q(series, range));
        from = r.from; to = r.to;
        const names = c.series.length;
        list.push(...(r.series || []).map((s) => ({ label: label(s, names), points: c.rate ? rates(s.points) : s.points.map((p) => ({ at: p.at, value: p.mean })) })));
      }
    } catch (e) { return; }
    list = list.filter((s) => s.points.length);
    let card = box.querySelector(`[data-chart="${CSS.escape(id)}"]`);
    if (!list.length) { if (card) card.remove(); const p = plots.get(id); if (p) p.destroy(); plots.delete(id); continue; }
    const xs = [...new Set(list.flatMap((s) => s.points.map((p) => p.at)))].sort((a, b) => a - b);
    const data = [xs.map((x) => x / 1000), ...list.map((s) => { const by = new Map(s.points.map((p) => [p.at, p.value])); return xs.map((x) => by.get(x) ?? null); })];
    if (!card) card = el("div", { class: "chart", "data-chart": id }, el("div", { class: "k" }, c.title));
    box.append(card); // in the view's order
    const width = Math.max(240, Math.min(card.clientWidth || 320, box.clientWidth) - 10);
    const old = plots.get(id);
    const key = range + "|" + list.map((s) => s.label).join(",");
    if (old && old.rvmKey === key) {
      old.rvmSpan[0] = from / 1000;
      old.rvmSpan[1] = to / 1000;
      old.setData(data);
      continue;
    }
    if (old) old.destroy();
    const span = [from / 1000, to / 1000];
    const opts = {
      width, height: 160, legend: { show: list.length > 1 },
      scales: { x: { time: true, range: () => span } },
      series: [{}, ...list.map((s, i) => ({ label: s.label, stroke: COLOURS[i % COLOURS.length], width: 1.5, value: (u, v) => (v == null ? "-" : c.show(v)) }))],
      axes: [{ stroke: "currentColor" }, { stroke: "currentColor", size: 70, values: (u, vals) => vals.map(c.show) }],
    };
    const plot = new uPlot(opts, data, card);
    plot.rvmKey = key;
    plot.rvmSpan = span;
    plots.set(id, plot);
  }
}

// ---- the whole page, and the live stream ----
async function refresh() {
  try {
    if (!site) site = await api("/api/v1/dashboard");
    const [health, alerts, incidents] = await Promise.all([api("/api/v1/health"), api("/api/v1/alerts"), api("/api/v1/incidents?limit=10")]);
    lastHealth = health;
    notice(token ? "" : "Read-only: enter the API token to acknowledge or silence.");
    const id = health.identity || {};
    $("who").textContent = `${id.name || "rvm-watchdog"}${id.site ? " · " + id.site : ""} — rvm-watchdog ${health.releaseId || ""}`;
    const o = $("overall");
    o.className = "state " + health.status;
    o.textContent = health.status;
    drawIncidents(incidents.incidents || []);
    drawAlerts(alerts.alerts || []);
    drawTargets(health);
    if (!$("customise").open) drawChoices();
    if (openTarget) showTarget(openTarget);
    await drawTiles(health);
  } catch (e) {
    if (e.message !== "401") notice("cannot read the watchdog: " + e.message);
  }
}

let pending = null;
function soon() {
  if (pending) return;
  pending = setTimeout(() => { pending = null; refresh(); }, 100);
}

function live(word) {
  const l = $("live");
  l.className = "state " + word;
  l.textContent = word;
}

// An event from the stream: a target's new state is shown at once (the
// whole page follows with the next refresh).
function onEvent(kind, data) {
  if (kind === "incident-opened" && data.target) openIncidents.add(data.target);
  if (kind === "incident-closed" && data.target) openIncidents.delete(data.target);
  const to = data.fields && data.fields.to;
  if (kind === "health-changed" && data.target && to && to.state && lastHealth) {
    const c = check(lastHealth, "target:" + data.target);
    if (c && c.state !== to.state) {
      c.state = to.state;
      c.since = new Date().toISOString();
      drawTargets(lastHealth);
    }
  }
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
      if (r.status === 401) { live("locked"); await new Promise((ok) => setTimeout(ok, 2000)); continue; }
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
          let kind = null, data = "";
          for (const line of frame.split("\n")) {
            if (line.startsWith("id:")) last = line.slice(3).trim();
            else if (line.startsWith("event:")) kind = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          if (kind) {
            try { onEvent(kind, JSON.parse(data || "{}")); } catch (e) { /* not JSON: the refresh shows it */ }
            soon();
          }
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
$("login").addEventListener("click", () => askToken());
$("token-cancel").addEventListener("click", () => { $("token-form").hidden = true; });
$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("token-input").value.trim();
  $("token-input").value = "";
  if (token) sessionStorage.setItem("rvm-token", token); else sessionStorage.removeItem("rvm-token");
  $("token-form").hidden = true;
  notice("");
  refresh().then(drawCharts);
});
$("reset-view").addEventListener("click", () => { localStorage.removeItem("rvm-view"); drawChoices(); redraw(); });
$("customise").addEventListener("toggle", drawChoices);
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
