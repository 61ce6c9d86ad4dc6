// aflow ui: the runs list and the run page, drawn from the JSON API (no libraries, no network beyond this server).
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const POLL_MS = 1000;
const LOG_PAGE = 1000;
const FAMILY = {
  Success: "success", Cached: "success", Mapped: "success", Skipped: "skipped",
  Failed: "failed", TimedOut: "failed", TriggerFailed: "failed", Cancelled: "cancelled",
  Running: "running", Pending: "waiting", Scheduled: "waiting", Retrying: "waiting", Looped: "waiting",
  Paused: "waiting", NotRecorded: "other",
};
const family = (state) => FAMILY[state] || "other";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function stateBadge(state) {
  return el("span", { class: `state s-${family(state)}`, "data-state": state }, state);
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || `${response.status} ${response.statusText}`);
  return body;
}

const ms = (iso) => (iso ? Date.parse(iso) : null);

function duration(seconds) {
  if (seconds === null || Number.isNaN(seconds)) return "";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

const since = (start, end) => (start ? ((end ? ms(end) : Date.now()) - ms(start)) / 1000 : null);
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
const pad = (n, w = 2) => String(n).padStart(w, "0");
const clock = (iso) => { const d = new Date(iso); return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`; };
const taskLabel = (name, index) => (index === null || index === undefined ? name : `${name}[${index}]`);

function showError(message) {
  const main = document.querySelector("main");
  main.replaceChildren(el("section", { class: "error" }, el("h1", {}, "Not available"), el("p", {}, message)));
}

// ---------------------------------------------------------------------------------------------- runs list

async function runsPage() {
  const params = new URLSearchParams(location.search);
  const offset = Number(params.get("offset") || 0);
  const limit = Number(params.get("limit") || 50);
  document.getElementById("flow-filter").value = params.get("flow") || "";
  document.getElementById("state-filter").value = params.get("state") || "";
  const api = new URLSearchParams(params);
  api.set("offset", offset);
  api.set("limit", limit);

  async function refresh() {
    const data = await getJSON(`/api/runs?${api}`);
    const rows = data.runs.map((run) =>
      el("tr", { "data-run": run.id },
        el("td", {}, el("a", { href: `/runs/${run.id}`, class: "flow" }, run.flow_name)),
        el("td", {}, stateBadge(run.state)),
        el("td", {}, when(run.started_at)),
        el("td", {}, duration(since(run.started_at, run.ended_at))),
        el("td", {}, el("a", { href: `/runs/${run.id}`, class: "run-id" }, run.id.slice(0, 8)))));
    document.querySelector("#runs tbody").replaceChildren(...rows);
    document.getElementById("empty").hidden = rows.length > 0;
    const names = [...new Set(data.runs.map((run) => run.flow_name))].map((name) => el("option", { value: name }));
    document.getElementById("flow-names").replaceChildren(...names);
    const page = (to) => { const p = new URLSearchParams(params); p.set("offset", to); return `/?${p}`; };
    const newer = document.getElementById("newer");
    newer.hidden = offset === 0;
    newer.href = page(Math.max(0, offset - limit));
    const older = document.getElementById("older");
    older.hidden = !data.has_more;
    older.href = page(offset + limit);
    document.getElementById("page-info").textContent = rows.length ? `${offset + 1}–${offset + rows.length}` : "";
    const live = data.runs.some((run) => run.state === "Running");
    document.getElementById("live").hidden = !live;
    // the first page shows new runs as they start; any page follows the runs in progress on it
    if (live || offset === 0) setTimeout(() => refresh().catch((e) => showError(e.message)), POLL_MS * (live ? 1 : 2));
  }
  await refresh();
}

// ---------------------------------------------------------------------------------------------- run page

function layers(nodes, edges) {
  const incoming = new Map(nodes.map((n) => [n.slug, []]));
  for (const e of edges) if (incoming.has(e.target) && incoming.has(e.source)) incoming.get(e.target).push(e.source);
  const depth = new Map();
  const visit = (slug, seen) => {
    if (depth.has(slug)) return depth.get(slug);
    if (seen.has(slug)) return 0; // a cycle cannot be recorded, but never loop forever
    seen.add(slug);
    const d = Math.max(-1, ...incoming.get(slug).map((s) => visit(s, seen))) + 1;
    depth.set(slug, d);
    return d;
  };
  for (const n of nodes) visit(n.slug, new Set());
  return depth;
}

function drawGraph(graph, onPick) {
  const W = 190, H = 54, GX = 60, GY = 18, PAD = 10;
  const depth = layers(graph.nodes, graph.edges);
  const columns = [];
  for (const n of graph.nodes) (columns[depth.get(n.slug)] ||= []).push(n);
  const pos = new Map();
  const row = new Map();
  const ups = new Map(graph.nodes.map((n) => [n.slug, []]));
  for (const e of graph.edges) if (ups.has(e.target)) ups.get(e.target).push(e.source);
  columns.forEach((col, i) => {
    const mean = (n) => { const r = ups.get(n.slug).filter((s) => row.has(s)).map((s) => row.get(s)); return r.length ? r.reduce((a, b) => a + b) / r.length : -1; };
    if (i > 0) col.sort((a, b) => mean(a) - mean(b));
    col.forEach((n, j) => { row.set(n.slug, j); pos.set(n.slug, { x: PAD + i * (W + GX), y: PAD + j * (H + GY) }); });
  });
  const width = PAD * 2 + columns.length * (W + GX) - GX;
  const height = PAD * 2 + Math.max(1, ...columns.map((c) => c.length)) * (H + GY) - GY;
  const root = svg("svg", { id: "graph-svg", width: Math.max(width, 100), height, role: "img", "aria-label": "flow graph" });
  for (const e of graph.edges) {
    const a = pos.get(e.source), b = pos.get(e.target);
    if (!a || !b) continue;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
    root.append(svg("path", { class: `edge${e.mapped ? " mapped" : ""}`, d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` }));
  }
  for (const n of graph.nodes) {
    const p = pos.get(n.slug);
    const counts = n.counts || {};
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const g = svg("g", { class: `node s-${family(n.state)}${n.reference ? " reference" : ""}`, "data-slug": n.slug, "data-name": n.name,
      "data-state": n.state || "Pending", transform: `translate(${p.x},${p.y})` });
    g.append(svg("title", {}, `${n.name} (${n.slug}): ${n.state || "Pending"}`));
    g.append(svg("rect", { width: W, height: H, rx: 6 }));
    g.append(svg("text", { x: 10, y: 20, class: "name" }, n.mapped ? `${n.name} ×${total}` : n.name));
    const detail = n.mapped
      ? Object.entries(counts).map(([s, c]) => `${c} ${s}`).join(" · ") || "no children yet"
      : n.parameter ? "parameter" : n.state === "NotRecorded" ? "not recorded" : n.state || "Pending";
    g.append(svg("text", { x: 10, y: 38, class: "counts" }, detail));
    if (n.mapped && total) {
      let x = 0;
      for (const [s, c] of Object.entries(counts)) {
        const w = (W * c) / total;
        g.append(svg("rect", { class: `bar s-${family(s)}`, x, y: H - 6, width: w, height: 6, "data-state": s, "data-count": c }));
        x += w;
      }
    }
    g.addEventListener("click", () => onPick(n.name));
    root.append(g);
  }
  document.getElementById("graph").replaceChildren(root);
}

function drawTimeline(run, tasks) {
  const BAR_W = 600;
  const t0 = ms(run.started_at);
  let t1 = run.ended_at ? ms(run.ended_at) : Date.now();
  for (const t of tasks) for (const seg of t.segments) if (seg[1]) t1 = Math.max(t1, ms(seg[1]));
  const span = Math.max(1, t1 - t0);
  const x = (iso) => Math.min(BAR_W - 2, Math.max(0, ((ms(iso) - t0) / span) * BAR_W));
  const axis = document.getElementById("axis");
  axis.setAttribute("width", BAR_W);
  axis.replaceChildren(...[0, 0.25, 0.5, 0.75, 1].map((f) =>
    svg("text", { x: f * BAR_W, y: 13, "text-anchor": f === 0 ? "start" : f === 1 ? "end" : "middle" }, `+${duration((f * span) / 1000) || "0 ms"}`)));
  const rows = tasks.map((t) => {
    const bars = svg("svg", { class: "bars", width: BAR_W, height: 16 });
    let attempt = 0;
    for (const [start, end, state, kind] of t.segments) {
      const x0 = x(start), x1 = end ? x(end) : BAR_W;
      const wait = kind === "wait";
      if (!wait) attempt += 1;
      const shown = !wait && state === "Retrying" ? "failed" : family(state);
      const rect = svg("rect", { class: `seg s-${shown}${wait ? " wait" : " attempt"}`, x: x0, y: wait ? 6 : 2,
        width: Math.max(2, x1 - x0), height: wait ? 4 : 12, "data-state": state, "data-kind": kind });
      const took = duration(since(start, end || new Date(t1).toISOString()));
      rect.append(svg("title", {}, wait ? `waiting to retry, ${took}` : `attempt ${attempt}: ${state === "Retrying" ? "failed, retried" : state}, ${took}`));
      bars.append(rect);
    }
    if (!t.segments.length && t.started_at) { // never ran (TriggerFailed, Skipped...): a mark when it was decided
      const mark = svg("rect", { class: `seg s-${family(t.state)} mark`, x: x(t.started_at), y: 1, width: 3, height: 14, "data-state": t.state, "data-kind": "mark" });
      mark.append(svg("title", {}, `${t.state}: ${t.message || ""}`));
      bars.append(mark);
    }
    return el("tr", { "data-task": t.name, "data-map-index": t.map_index ?? "", "data-state": t.state, title: t.message || "" },
      el("td", { class: "task" }, taskLabel(t.name, t.map_index)),
      el("td", {}, stateBadge(t.state)),
      el("td", { class: "attempts" }, String(t.attempts)),
      el("td", { class: "bars" }, bars));
  });
  document.querySelector("#timeline tbody").replaceChildren(...rows);
}

function fillSelect(select, values, keep) {
  const have = [...select.options].map((o) => o.value);
  for (const v of values) if (!have.includes(v)) select.append(el("option", { value: v }, v));
  select.value = keep;
}

async function runPage() {
  const runId = decodeURIComponent(location.pathname.split("/")[2]);
  const taskFilter = document.getElementById("task-filter");
  const stateFilter = document.getElementById("task-state-filter");
  const logFilter = document.getElementById("log-filter");
  const view = { offset: 0, limit: 200, task: "", state: "", logTask: "", logAfter: null, logMore: false, final: false };

  async function loadRun() {
    const q = new URLSearchParams({ offset: view.offset, limit: view.limit });
    if (view.task) q.set("task", view.task);
    if (view.state) q.set("state", view.state);
    const run = await getJSON(`/api/runs/${encodeURIComponent(runId)}?${q}`);
    document.title = `${run.flow_name} ${run.state} · aflow`;
    document.getElementById("flow-name").textContent = run.flow_name;
    document.getElementById("run-state").replaceWith(Object.assign(stateBadge(run.state), { id: "run-state" }));
    document.getElementById("run-id").textContent = run.id;
    document.getElementById("run-started").textContent = when(run.started_at);
    document.getElementById("run-duration").textContent = duration(since(run.started_at, run.ended_at));
    document.getElementById("run-message").textContent = run.message || "";
    document.getElementById("run-params").textContent = JSON.stringify(run.parameters).slice(0, 2000);
    document.getElementById("run-counts").replaceChildren(
      ...Object.entries(run.counts).flatMap(([s, c]) => [stateBadge(s), ` ${c}  `]));
    const flowLink = document.getElementById("flow-link");
    flowLink.textContent = `runs of ${run.flow_name}`;
    flowLink.href = `/?flow=${encodeURIComponent(run.flow_name)}`;
    drawGraph(run.graph, (name) => { taskFilter.value = name; logFilter.value = name; taskFilter.dispatchEvent(new Event("change")); logFilter.dispatchEvent(new Event("change")); });
    drawTimeline(run, run.tasks);
    const names = [...new Set(run.graph.nodes.map((n) => n.name))];
    fillSelect(taskFilter, names, view.task);
    fillSelect(logFilter, names, view.logTask);
    fillSelect(stateFilter, Object.keys(run.counts), view.state);
    const last = Math.min(run.offset + run.tasks.length, run.tasks_total);
    document.getElementById("tasks-info").textContent =
      run.tasks_total ? `task runs ${run.offset + 1}–${last} of ${run.tasks_total}` : "no task runs";
    document.getElementById("tasks-prev").disabled = run.offset === 0;
    document.getElementById("tasks-next").disabled = last >= run.tasks_total;
    return run;
  }

  // one page of log lines at a time: "more" loads the next; a live run is followed once the end is shown
  async function loadLogs(reset) {
    const box = document.getElementById("logs");
    if (reset) { view.logAfter = null; box.replaceChildren(); }
    const q = new URLSearchParams({ limit: LOG_PAGE });
    if (view.logTask) q.set("task", view.logTask);
    if (view.logAfter !== null) q.set("after", view.logAfter);
    const data = await getJSON(`/api/runs/${encodeURIComponent(runId)}/logs?${q}`);
    box.append(...data.logs.map((r) => el("div", { class: `log l-${r.level.toLowerCase()}`, "data-task": r.task },
      el("span", { class: "time" }, clock(r.time)), " ", el("span", { class: "level" }, r.level), " ",
      el("span", { class: "task" }, taskLabel(r.task, r.map_index)), " ", el("span", { class: "message" }, r.message))));
    view.logAfter = data.next;
    view.logMore = data.has_more;
    document.getElementById("logs-more").hidden = !data.has_more;
    const n = box.childElementCount;
    document.getElementById("logs-info").textContent =
      n ? `${n} line${n === 1 ? "" : "s"}${data.has_more ? " shown" : ""}` : "no log lines";
  }

  async function tick() {
    const run = await loadRun();
    if (!view.logMore) await loadLogs(false);
    const live = run.state === "Running";
    document.getElementById("live").hidden = !live;
    if (live) setTimeout(retrying, POLL_MS);
    else if (!view.final) { view.final = true; if (!view.logMore) await loadLogs(false); }
  }

  // a failed poll (the server restarting, say) is retried: the page keeps what it shows meanwhile
  function retrying() {
    tick().then(() => { document.getElementById("live").textContent = "live"; }).catch(() => {
      document.getElementById("live").textContent = "reconnecting";
      setTimeout(retrying, POLL_MS * 2);
    });
  }
  const reload = () => loadRun().catch((e) => showError(e.message));
  taskFilter.addEventListener("change", () => { view.task = taskFilter.value; view.offset = 0; reload(); });
  stateFilter.addEventListener("change", () => { view.state = stateFilter.value; view.offset = 0; reload(); });
  logFilter.addEventListener("change", () => { view.logTask = logFilter.value; loadLogs(true).catch((e) => showError(e.message)); });
  document.getElementById("tasks-prev").addEventListener("click", () => { view.offset = Math.max(0, view.offset - view.limit); reload(); });
  document.getElementById("tasks-next").addEventListener("click", () => { view.offset += view.limit; reload(); });
  document.getElementById("logs-more").addEventListener("click", () => loadLogs(false).catch((e) => showError(e.message)));
  await tick();
}

const page = document.body.dataset.page;
const start = page === "run" ? runPage : runsPage;
start().then(() => { document.body.dataset.ready = "1"; }).catch((e) => { showError(e.message); document.body.dataset.ready = "error"; });
