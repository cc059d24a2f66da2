// The tdetl serve page: task list, a form built from the drivers' parameter specs (validated by the
// service as you type), and a task page with counters, a throughput chart (uPlot) and the log tail.
"use strict";

// the token arrives once as /?token=…; the service keeps it in a cookie (HttpOnly, SameSite=Strict)
const $ = (id) => document.getElementById(id);
let drivers = [];
let current = null;  // the task shown on the task page
let chart = null;

async function api(method, path, body) {
  const opts = {method, headers: {}};
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (!r.ok) throw new Error(data && data.detail ? data.detail : r.status + " " + r.statusText);
  return data;
}

function show(section) {
  for (const id of ["list", "form", "detail"]) $(id).hidden = id !== section;
}

function fmt(n) { return (n || 0).toLocaleString("en-US", {maximumFractionDigits: 0}); }

// the source's lag in its own unit: offsets (Kafka messages, TMQ WAL entries) or seconds (realtime queries)
function lag(c) {
  if (c.lag === null || c.lag === undefined) return "";
  return c.lag_unit === "seconds" ? c.lag.toFixed(1) + " s" : fmt(c.lag) + " offsets";
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
}

async function refreshList() {
  const tasks = await api("GET", "/api/tasks");
  const body = document.querySelector("#tasks tbody");
  body.replaceChildren();
  $("empty").hidden = tasks.length > 0;
  for (const t of tasks) {
    const tr = document.createElement("tr");
    tr.className = "task";
    tr.dataset.id = t.id;
    const c = t.counters || {};
    const rate = c.elapsed > 0 ? c.rows_written / c.elapsed : 0;
    cell(tr, t.name);
    cell(tr, t.state, "state-" + t.state);
    cell(tr, fmt(rate));
    cell(tr, fmt((t.totals || {}).rows_written));
    cell(tr, lag(c));
    cell(tr, String(t.restarts));
    cell(tr, t.last_error || "");
    tr.addEventListener("click", () => { location.hash = "#/tasks/" + t.id; });
    body.appendChild(tr);
  }
}

// -- the form: each driver's parameters as fields, the DSN composed from them --------------------

function driverOf(dsn) {
  const m = /^([a-z]+)(\+[a-z]+)?:/.exec(dsn.trim());
  return m ? m[1] : null;
}

function renderParams(which) {
  const dsn = $("f-" + which).value;
  const role = which === "from" ? "source" : "target";
  const spec = drivers.find((d) => d.driver === driverOf(dsn) && d.role === role);
  const box = $("p-" + which);
  box.replaceChildren();
  if (!spec) return;
  const given = new URLSearchParams(dsn.includes("?") ? dsn.slice(dsn.indexOf("?") + 1) : "");
  for (const p of spec.params) {
    const label = document.createElement("label");
    label.title = p.help + " (" + p.form + ")";
    label.textContent = p.name + " ";
    const input = document.createElement("input");
    input.dataset.param = p.name;
    input.placeholder = p.default === null || p.default === undefined ? "" : String(p.default);
    if (p.secret) input.type = "password";
    input.value = given.get(p.name) || "";
    input.addEventListener("input", () => { composeDsn(which); validate(); });
    label.appendChild(input);
    box.appendChild(label);
  }
}

function composeDsn(which) {
  const field = $("f-" + which);
  const base = field.value.split("?")[0];
  const params = new URLSearchParams(field.value.includes("?") ? field.value.split("?").slice(1).join("?") : "");
  for (const input of $("p-" + which).querySelectorAll("input")) {
    if (input.value) params.set(input.dataset.param, input.value); else params.delete(input.dataset.param);
  }
  const q = params.toString();
  field.value = q ? base + "?" + q : base;
}

function formBody() {
  const body = {from: $("f-from").value.trim(), to: $("f-to").value.trim()};
  if ($("f-name").value.trim()) body.name = $("f-name").value.trim();
  const parser = $("f-parser").value.trim();
  if (parser) body.parser = parser;
  const on = $("f-on").value.trim();
  if (on) {
    try { body.on = JSON.parse(on); } catch (e) { throw new Error("on: not JSON (" + e.message + ")"); }
  }
  const jobs = $("f-jobs").value.trim();
  if (jobs) body.jobs = Number(jobs);
  for (const [id, key] of [["f-on-error", "on_error"], ["f-schedule", "schedule"], ["f-timezone", "timezone"]]) {
    if ($(id).value.trim()) body[key] = $(id).value.trim();
  }
  const rules = $("f-transforms").value.split("\n").map((r) => r.trim()).filter((r) => r);
  if (rules.length) body.transforms = rules;
  return body;
}

let pending = null;
function validate() {
  clearTimeout(pending);
  pending = setTimeout(async () => {
    try {
      await api("POST", "/api/tasks/validate", formBody());
      $("f-error").textContent = "";
      $("f-save").disabled = false;
    } catch (e) {
      $("f-error").textContent = e.message;
      $("f-save").disabled = true;
    }
  }, 250);
}

function newTask() {
  $("task-form").reset();
  $("p-from").replaceChildren();
  $("p-to").replaceChildren();
  $("f-error").textContent = "";
  show("form");
}

async function save(ev) {
  ev.preventDefault();
  try {
    const t = await api("POST", "/api/tasks", formBody());
    location.hash = "#/tasks/" + t.id;
  } catch (e) {
    $("f-error").textContent = e.message;
  }
}

// -- the parser preview: sample data through the parser, as a run would read it --------------------

function table(head, rows, cls) {
  const t = document.createElement("table");
  const tr = document.createElement("tr");
  for (const h of head) { const th = document.createElement("th"); th.textContent = h; tr.appendChild(th); }
  t.appendChild(tr);
  for (const r of rows) {
    const row = document.createElement("tr");
    if (cls) row.className = cls;
    for (const v of r) cell(row, v === null || v === undefined ? "NULL" : String(v));
    t.appendChild(row);
  }
  return t;
}

async function runPreview() {
  const out = $("pv-out");
  out.replaceChildren();
  const samples = $("pv-samples").value.split("\n").filter((l) => l.trim());
  const body = {kind: $("pv-kind").value, samples, parser: $("f-parser").value.trim() || null,
                on_error: $("f-on-error").value.trim() || "error"};
  try {
    const r = await api("POST", "/api/parser/preview", body);
    if (r.error) {
      const p = document.createElement("p");
      p.className = "error";
      p.textContent = "the run would stop: " + r.error;
      out.appendChild(p);
    }
    for (const t of r.tables) {
      const h = document.createElement("h4");
      h.className = "pv-table";
      const tags = Object.entries(t.tags).map(([k, v]) => k + "=" + v).join(", ");
      h.textContent = t.table + (t.stable ? " (super table " + t.stable + (tags ? "; " + tags : "") + ")" : "") +
        ": " + fmt(t.rows) + (t.rows === 1 ? " row" : " rows");
      out.appendChild(h);
      const names = t.columns.map((c) => c.name);
      const grid = table(names, [t.columns.map((c) => c.type)], "types");
      for (const row of t.first) {
        const tr = document.createElement("tr");
        for (const n of names) cell(tr, row[n] === null || row[n] === undefined ? "NULL" : String(row[n]));
        grid.appendChild(tr);
      }
      out.appendChild(grid);
    }
    const seen = Object.entries(r.outcomes);
    const p = document.createElement("p");
    p.className = "pv-outcomes";
    p.textContent = seen.length ? "situations: " + seen.map(([k, n]) => k + " " + n).join(", ") : "no situations met";
    out.appendChild(p);
    for (const s of r.skipped) {
      const q = document.createElement("p");
      q.className = "error";
      q.textContent = s;
      out.appendChild(q);
    }
  } catch (e) {
    const p = document.createElement("p");
    p.className = "error";
    p.textContent = e.message;
    out.appendChild(p);
  }
}

// -- the task page ---------------------------------------------------------------------------------

const LABELS = [["rows_read", "rows read"], ["rows_written", "rows written"], ["rows_failed", "rows failed"],
                ["rows_filtered", "rows filtered"], ["bytes_written", "bytes written"]];

async function openTask(id) {
  current = id;
  show("detail");
  if (chart) { chart.destroy(); chart = null; }
  await refreshTask();
}

// each task has its own address (#/tasks/<id>): reloadable, shareable, the back button works
async function route() {
  const m = /^#\/tasks\/([\w-]+)$/.exec(location.hash);
  if (m) { await openTask(m[1]); return; }
  current = null;
  if (location.hash === "#/new") { newTask(); return; }
  show("list");
  await refreshList();
}

// what each button can do in each state
const CAN = {
  start: (t) => t.wanted !== "running" || ["finished", "failed", "stopped"].includes(t.state),
  stop: (t) => t.wanted === "running" && !["finished", "failed", "stopped"].includes(t.state),
};

async function refreshTask() {
  if (!current) return;
  const t = await api("GET", "/api/tasks/" + current);
  $("d-name").textContent = t.name;
  $("d-state").textContent = t.state + (t.last_error ? " — " + t.last_error : "");
  $("d-state").className = "state-" + t.state;
  $("d-start").disabled = !CAN.start(t);
  $("d-stop").disabled = !CAN.stop(t);
  const rows = $("d-counters");
  rows.replaceChildren();
  for (const [k, label] of LABELS) {
    const tr = document.createElement("tr");
    tr.dataset.counter = k;
    cell(tr, label);
    cell(tr, fmt((t.counters || {})[k]));
    cell(tr, fmt((t.totals || {})[k]));
    rows.appendChild(tr);
  }
  const behind = lag(t.counters || {});
  if (behind) {
    const tr = document.createElement("tr");
    tr.dataset.counter = "lag";
    cell(tr, "lag");
    cell(tr, behind);
    cell(tr, "");
    rows.appendChild(tr);
  }
  const h = await api("GET", "/api/tasks/" + current + "/history");
  const data = [h.points.map((p) => p[0]), h.points.map((p) => p[1])];
  if (!chart) {
    // the y axis wide enough for 9-digit rates, its labels grouped (400,000, not a clipped "0,000")
    chart = new uPlot({width: Math.min(1000, window.innerWidth - 40), height: 220, title: "rows/s (last hour)",
                       series: [{}, {label: "rows/s", stroke: "#1d3557", width: 2}],
                       axes: [{}, {size: 90, values: (u, vals) => vals.map((v) => fmt(v))}]}, data, $("chart"));
  } else {
    chart.setData(data);
  }
  const logs = await api("GET", "/api/tasks/" + current + "/logs?tail=50");
  $("d-log").textContent = logs.lines.join("\n");
}

async function act(path) {
  try { await api("POST", "/api/tasks/" + current + path); await refreshTask(); }
  catch (e) { $("d-state").textContent = e.message; }
}

async function tick() {
  try {
    const h = await api("GET", "/health");
    $("health").textContent = "v" + h.version + " · " + h.tasks + " tasks";
    if (!$("list").hidden) await refreshList();
    if (!$("detail").hidden) await refreshTask();
  } catch (e) {
    $("health").textContent = "service unreachable: " + e.message;
  }
}

async function main() {
  drivers = await api("GET", "/api/drivers");
  $("new").addEventListener("click", () => { location.hash = "#/new"; });
  $("f-cancel").addEventListener("click", () => { location.hash = ""; });
  $("pv-run").addEventListener("click", runPreview);
  $("task-form").addEventListener("submit", save);
  for (const which of ["from", "to"]) {
    $("f-" + which).addEventListener("input", () => { renderParams(which); validate(); });
  }
  for (const id of ["f-parser", "f-on", "f-name", "f-jobs", "f-on-error", "f-schedule", "f-timezone",
                    "f-transforms"]) $(id).addEventListener("input", validate);
  $("d-start").addEventListener("click", () => act("/start"));
  $("d-stop").addEventListener("click", () => act("/stop"));
  $("d-delete").addEventListener("click", async () => {
    await api("DELETE", "/api/tasks/" + current);
    location.hash = "";
  });
  $("d-back").addEventListener("click", () => { location.hash = ""; });
  window.addEventListener("hashchange", route);
  await route();
  await tick();
  setInterval(tick, 2000);
}

main();
