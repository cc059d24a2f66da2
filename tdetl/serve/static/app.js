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
    tr.addEventListener("click", () => openTask(t.id));
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
    await openTask(t.id);
  } catch (e) {
    $("f-error").textContent = e.message;
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

async function refreshTask() {
  if (!current) return;
  const t = await api("GET", "/api/tasks/" + current);
  $("d-name").textContent = t.name;
  $("d-state").textContent = t.state + (t.last_error ? " — " + t.last_error : "");
  $("d-state").className = "state-" + t.state;
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
    chart = new uPlot({width: Math.min(1000, window.innerWidth - 40), height: 220, title: "rows/s (last hour)",
                       series: [{}, {label: "rows/s", stroke: "#1d3557", width: 2}]}, data, $("chart"));
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
  $("new").addEventListener("click", newTask);
  $("f-cancel").addEventListener("click", () => show("list"));
  $("task-form").addEventListener("submit", save);
  for (const which of ["from", "to"]) {
    $("f-" + which).addEventListener("input", () => { renderParams(which); validate(); });
  }
  for (const id of ["f-parser", "f-on", "f-name"]) $(id).addEventListener("input", validate);
  $("d-start").addEventListener("click", () => act("/start"));
  $("d-stop").addEventListener("click", () => act("/stop"));
  $("d-delete").addEventListener("click", async () => {
    await api("DELETE", "/api/tasks/" + current);
    current = null;
    show("list");
    await refreshList();
  });
  $("d-back").addEventListener("click", async () => { current = null; show("list"); await refreshList(); });
  show("list");
  await tick();
  setInterval(tick, 2000);
}

main();
