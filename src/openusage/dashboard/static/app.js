// The usage dashboard: reads this server's public API with the key entered in this tab,
// draws a chart (uPlot) and the table it is made from, and keeps its state in the URL.
"use strict";

const KEY_STORE = "openusage.key";
const DAY = 86400;
// Okabe and Ito's palette, told apart with the common colour-vision deficiencies.
const COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];
const OTHER = "#999999";
const MOST_SERIES = 7; // more groups than this are drawn as "other" (the table has them all)
const TOKENS = "tokens"; // completions: input (uncached), cached input and output, split

const $ = (id) => document.getElementById(id);
const timings = (window.dashboardTimings = { firstChart: null, lastDraw: null, draws: 0 });
let catalogue = null;
let projectNames = {};
let chart = null;
let shown = { columns: [], rows: [], total: null }; // what the table shows, for the CSV
let drawing = 0; // a newer draw makes an older one's answers stale
let keyEnteredAt = null;

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// ---- the API ------------------------------------------------------------------------

async function api(path, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    for (const v of Array.isArray(value) ? value : [value]) query.append(name, v);
  }
  const response = await fetch(`/v1${path}?${query}`, {
    headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY_STORE)}` },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (body.error && body.error.message) || response.statusText;
    throw new ApiError(response.status, message);
  }
  return body;
}

// Every bucket of every page.
async function buckets(path, params) {
  const all = [];
  let page = await api(path, params);
  all.push(...page.data);
  while (page.has_more) {
    page = await api(path, { ...params, page: page.next_page });
    all.push(...page.data);
  }
  return all;
}

async function listAll(path) {
  const all = [];
  let params = { limit: 100 };
  for (;;) {
    const page = await api(path, params);
    all.push(...page.data);
    if (!page.has_more || !page.last_id) return all;
    params = { limit: 100, after: page.last_id };
  }
}

// ---- state in the URL ---------------------------------------------------------------

function isoDay(seconds) {
  return new Date(seconds * 1000).toISOString().slice(0, 10);
}

function daySeconds(text) {
  return Math.floor(Date.parse(`${text}T00:00:00Z`) / 1000);
}

function readState() {
  const q = new URLSearchParams(location.search);
  const today = Math.floor(Date.now() / 1000 / DAY) * DAY;
  return {
    view: q.get("view") === "usage" ? "usage" : "spend",
    start: q.get("start") || isoDay(today - 29 * DAY),
    end: q.get("end") || isoDay(today),
    project: q.get("project") || "",
    apikey: q.get("apikey") || "",
    model: q.get("model") || "",
    stack: q.get("stack") || "line_item",
    kind: q.get("kind") || "completions",
    group: q.get("group") || "",
    metric: q.get("metric") || "",
    bucket: q.get("bucket") || "auto",
  };
}

function writeState(state, replace = false) {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(state)) {
    if (value !== "" && !(name === "view" && value === "spend")) q.set(name, value);
  }
  const url = `${location.pathname}?${q}`;
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
}

function formState() {
  const state = { view: document.body.dataset.view };
  for (const name of ["start", "end", "project", "apikey", "model", "stack", "kind", "group", "metric", "bucket"]) {
    state[name] = $(name).value;
  }
  return state;
}

function fillForm(state) {
  document.body.dataset.view = state.view;
  document.body.className = `view-${state.view}`;
  for (const button of document.querySelectorAll("nav button")) {
    button.setAttribute("aria-pressed", String(button.dataset.view === state.view));
  }
  $("kind").value = state.kind;
  fillKindChoices(state);
  for (const name of ["start", "end", "project", "apikey", "model", "stack", "bucket"]) {
    if (name === "project" && state.project && !projectNames.hasOwnProperty(state.project)) {
      addOption($("project"), state.project, state.project);
    }
    $(name).value = state[name];
  }
}

function addOption(select, value, text) {
  const option = document.createElement("option");
  option.value = value;
  option.textContent = text;
  select.append(option);
}

function fillKindChoices(state) {
  const kind = catalogue.kinds.find((k) => k.name === state.kind) || catalogue.kinds[0];
  const group = $("group");
  group.replaceChildren();
  addOption(group, "", "Nothing");
  for (const field of kind.group_fields) addOption(group, field, field);
  group.value = kind.group_fields.includes(state.group) ? state.group : "";
  const metric = $("metric");
  metric.replaceChildren();
  if (kind.name === "completions") addOption(metric, TOKENS, "tokens: input, cached, output");
  for (const name of kind.metrics) addOption(metric, name, name);
  metric.value = [...metric.options].some((o) => o.value === state.metric) ? state.metric : metric.options[0].value;
}

// ---- numbers ------------------------------------------------------------------------

const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 2 });

function dollars(value) {
  return money.format(value);
}

// ---- drawing ------------------------------------------------------------------------

function range(state) {
  const start = daySeconds(state.start);
  const now = Math.floor(Date.now() / 1000);
  const end = Math.min(daySeconds(state.end) + DAY, now);
  return { start, end: Math.max(end, start + 1) };
}

function status(text) {
  $("status").textContent = text;
}

// Series keyed by name, each with a value per bucket start, drawn stacked.
function drawChart(starts, series, yFormat) {
  const names = Object.keys(series).sort((a, b) => total(series[b]) - total(series[a]));
  let drawn = names.slice(0, MOST_SERIES);
  const rest = names.slice(MOST_SERIES);
  const values = drawn.map((n) => series[n]);
  if (rest.length) {
    drawn = [...drawn, `other (${rest.length})`];
    values.push(starts.map((_, i) => rest.reduce((sum, n) => sum + series[n][i], 0)));
  }
  // Stacked: each line is the sum of itself and those below it; its own value is kept for
  // the legend. The widest is drawn first, so each narrower one shows in front of it.
  const stacked = [];
  let running = starts.map(() => 0);
  for (const v of values) {
    running = running.map((r, i) => r + v[i]);
    stacked.push(running);
  }
  const order = drawn.map((_, i) => i).reverse();
  const bars = uPlot.paths.bars({ size: [0.8, 64] });
  const options = {
    width: Math.max(280, $("chart").clientWidth),
    height: 320,
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.05 : 1] } },
    axes: [{}, { values: (u, ticks) => ticks.map(yFormat), size: 80 }],
    series: [
      {},
      ...order.map((i) => ({
        label: drawn[i],
        stroke: i < MOST_SERIES ? COLOURS[i % COLOURS.length] : OTHER,
        fill: i < MOST_SERIES ? COLOURS[i % COLOURS.length] : OTHER,
        paths: bars,
        points: { show: false },
        value: (u, v, si, idx) => (idx == null ? "" : yFormat(values[i][idx])),
      })),
    ],
  };
  const data = [starts, ...order.map((i) => stacked[i])];
  if (chart) chart.destroy();
  chart = new uPlot(options, data, $("chart"));
}

function total(values) {
  return values.reduce((a, b) => a + b, 0);
}

function drawTable(title, columns, rows, totals) {
  $("table-title").textContent = title;
  const head = document.createElement("tr");
  for (const c of columns) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = c.name;
    if (c.numeric) th.className = "n";
    head.append(th);
  }
  $("table").tHead.replaceChildren(head);
  const body = document.createDocumentFragment();
  for (const row of rows) body.append(tableRow(columns, row));
  $("table").tBodies[0].replaceChildren(body);
  $("table").tFoot.replaceChildren(totals ? tableRow(columns, totals) : "");
  shown = { columns, rows, total: totals };
}

function tableRow(columns, row) {
  const tr = document.createElement("tr");
  columns.forEach((c, i) => {
    const td = document.createElement("td");
    td.textContent = c.format && typeof row[i] === "number" ? c.format(row[i]) : row[i] ?? "";
    if (c.numeric) td.className = "n";
    tr.append(td);
  });
  return tr;
}

function finished(started) {
  const ms = performance.now() - started;
  timings.lastDraw = ms;
  timings.draws += 1;
  if (timings.firstChart === null && keyEnteredAt !== null) timings.firstChart = performance.now() - keyEnteredAt;
  document.body.dataset.drawn = String(timings.draws);
}

async function draw() {
  const state = formState();
  const started = performance.now();
  const mine = ++drawing;
  status("Loading…");
  try {
    if (state.view === "spend") await drawSpend(state, mine);
    else await drawUsage(state, mine);
    if (mine !== drawing) return;
    status("");
    finished(started);
  } catch (error) {
    if (mine !== drawing) return;
    if (error instanceof ApiError && error.status === 401) return signOut(`That key was not accepted: ${error.message}`);
    status(`Could not load: ${error.message}`);
  }
}

// ---- spend --------------------------------------------------------------------------

function lineModel(lineItem) {
  return lineItem.split(", ")[0];
}

async function drawSpend(state, mine) {
  const { start, end } = range(state);
  const days = Math.ceil((end - start) / DAY);
  const filters = { "project_ids[]": state.project, "api_key_ids[]": state.apikey };
  const groupBy = state.stack === "project" ? ["line_item", "project_id"] : ["line_item"];
  const now = Math.floor(Date.now() / 1000);
  const monthStart = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), 1) / 1000;
  const limitPath = state.project ? `/organization/projects/${encodeURIComponent(state.project)}/spend_limit` : "/organization/spend_limit";
  // The month so far is asked for apart only when the range does not hold it.
  const rangeHoldsMonth = start <= monthStart && end >= now;
  const [costs, month, limit] = await Promise.all([
    buckets("/organization/costs", { start_time: start, end_time: end, bucket_width: "1d", limit: Math.min(days, 180), "group_by[]": groupBy, ...filters }),
    rangeHoldsMonth
      ? null
      : buckets("/organization/costs", { start_time: monthStart, end_time: now, bucket_width: "1d", limit: 31, "group_by[]": ["line_item"], ...filters }),
    api(limitPath).catch((error) => (error.status === 404 ? null : Promise.reject(error))),
  ]);
  if (mine !== drawing) return;
  const keep = (r) => !state.model || lineModel(r.line_item || "") === state.model;
  const starts = costs.map((b) => b.start_time);
  const series = {};
  const rows = [];
  const unpriced = {};
  const models = new Set();
  let sum = 0;
  costs.forEach((bucket, i) => {
    for (const r of bucket.results) {
      models.add(lineModel(r.line_item || ""));
      if (!keep(r)) continue;
      const name = state.stack === "project" ? label(r.project_id) : state.stack === "model" ? lineModel(r.line_item || "") : r.line_item || "(none)";
      (series[name] ||= starts.map(() => 0))[i] += r.amount.value;
      rows.push([bucket.start_time, name, r.amount.value]);
      sum += r.amount.value;
      if ((r.line_item || "").endsWith("(unpriced)")) unpriced[r.line_item] = (unpriced[r.line_item] || 0) + (r.quantity ?? 0);
    }
  });
  fillList("models", models);
  const merged = mergeRows(rows);
  drawChart(starts, series, (v) => dollars(v));
  drawTable(`Cost per day by ${state.stack.replace("_", " ")}`, [
    { name: "day", format: isoDay },
    { name: state.stack.replace("_", " ") },
    { name: "amount (USD)", numeric: true, format: (v) => v.toFixed(9), csv: (v) => v.toFixed(9) },
  ], merged, ["total", "", sum]);
  const monthBuckets = month || costs.filter((b) => b.start_time >= monthStart);
  const monthTotal = monthBuckets.flatMap((b) => b.results).filter(keep).reduce((s, r) => s + r.amount.value, 0);
  drawCards(monthTotal, sum, limit, state);
  const items = Object.entries(unpriced);
  $("unpriced").hidden = !items.length;
  $("unpriced").textContent = items.length
    ? `Usage without a price (counted at $0, shown as its own line items): ${items.map(([n, q]) => `${n}: ${integer.format(q)}`).join("; ")}.`
    : "";
  $("caption").textContent = `Cost per day, ${state.start} to ${state.end}, stacked by ${state.stack.replace("_", " ")}.`;
}

// Rows of the same day and name (a line item of several projects, say) added up.
function mergeRows(rows) {
  const merged = new Map();
  for (const [day, name, amount] of rows) {
    const key = `${day}\u0000${name}`;
    if (merged.has(key)) merged.get(key)[2] += amount;
    else merged.set(key, [day, name, amount]);
  }
  return [...merged.values()];
}

function drawCards(monthTotal, rangeTotal, limit, state) {
  const cards = [
    card("This month (UTC)", dollars(monthTotal)),
    card(`${state.start} to ${state.end}`, dollars(rangeTotal)),
  ];
  if (limit) {
    const cap = limit.threshold_amount / 100;
    const used = cap > 0 ? Math.min(100, (monthTotal / cap) * 100) : 100;
    const meter = document.createElement("div");
    meter.className = `meter${limit.enforcement.status === "enforcing" ? " over" : ""}`;
    meter.setAttribute("role", "meter");
    meter.setAttribute("aria-valuenow", used.toFixed(0));
    meter.setAttribute("aria-valuemin", "0");
    meter.setAttribute("aria-valuemax", "100");
    const fill = document.createElement("span");
    fill.style.width = `${used}%`;
    meter.append(fill);
    const limitCard = card(
      `Spend limit (${state.project ? "project" : "organization"})`,
      `${dollars(cap)}: ${used.toFixed(0)}% used${limit.enforcement.status === "enforcing" ? ", enforcing" : ""}`,
    );
    limitCard.append(meter);
    cards.push(limitCard);
  }
  $("cards").replaceChildren(...cards);
}

function card(labelText, value) {
  const div = document.createElement("div");
  div.className = "card";
  const l = document.createElement("div");
  l.className = "label";
  l.textContent = labelText;
  const v = document.createElement("div");
  v.className = "value";
  v.textContent = value;
  div.append(l, v);
  return div;
}

// ---- usage --------------------------------------------------------------------------

function bucketFor(state, start, end) {
  if (state.bucket !== "auto") return state.bucket;
  const span = end - start;
  return span <= 6 * 3600 ? "1m" : span <= 3 * DAY ? "1h" : "1d";
}

async function drawUsage(state, mine) {
  const kind = catalogue.kinds.find((k) => k.name === state.kind) || catalogue.kinds[0];
  const { start, end } = range(state);
  const width = bucketFor(state, start, end);
  const params = { start_time: start, end_time: end, bucket_width: width, limit: catalogue.limits[width] };
  if (state.group) params["group_by[]"] = state.group;
  for (const [filter, value] of [["project_ids", state.project], ["api_key_ids", state.apikey], ["models", state.model]]) {
    if (value && kind.filters.includes(filter)) params[`${filter}[]`] = value;
  }
  const data = await buckets(`/organization/usage/${kind.name}`, params);
  if (mine !== drawing) return;
  const split = state.metric === TOKENS;
  const metrics = split ? ["input_uncached_tokens", "input_cached_tokens", "output_tokens"] : [state.metric];
  const starts = data.map((b) => b.start_time);
  const series = {};
  const rows = [];
  const totals = metrics.map(() => 0);
  const models = new Set();
  data.forEach((bucket, i) => {
    for (const r of bucket.results) {
      if (r.model) models.add(r.model);
      const group = state.group ? label(r[state.group]) : "";
      const values = metrics.map((m) => r[m] ?? 0);
      values.forEach((v, m) => (totals[m] += v));
      rows.push([bucket.start_time, group, ...values]);
      if (split && !state.group) {
        metrics.forEach((m, j) => ((series[m] ||= starts.map(() => 0))[i] += values[j]));
      } else {
        (series[group || metrics[0]] ||= starts.map(() => 0))[i] += values.reduce((a, b) => a + b, 0);
      }
    }
  });
  fillList("models", models);
  drawChart(starts, series, (v) => integer.format(v));
  const timeFormat = width === "1d" ? isoDay : (s) => new Date(s * 1000).toISOString().slice(0, 16).replace("T", " ");
  drawTable(`${kind.name} per ${width === "1d" ? "day" : width === "1h" ? "hour" : "minute"}`, [
    { name: "bucket (UTC)", format: timeFormat },
    { name: state.group || "group" },
    ...metrics.map((m) => ({ name: m, numeric: true, format: (v) => integer.format(v), csv: String })),
  ], rows, ["total", "", ...totals]);
  $("caption").textContent = `${kind.name}, ${split ? "tokens" : state.metric} per ${width} bucket${state.group ? `, by ${state.group}` : ""}.`;
}

function label(value) {
  if (value === null || value === undefined) return "(none)";
  const name = projectNames[value];
  return name ? `${name} (${value})` : String(value);
}

function fillList(id, values) {
  const list = $(id);
  const known = new Set([...list.options].map((o) => o.value));
  for (const v of [...values].sort()) if (v && !known.has(v)) addOption(list, v, v);
}

// ---- CSV ----------------------------------------------------------------------------

function csvCell(value) {
  const text = String(value ?? "");
  // A cell a spreadsheet would run as a formula is written as text.
  const safe = /^[=+\-@\t\r]/.test(text) && !/^-?\d/.test(text) ? `'${text}` : text;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

function csvText() {
  const lines = [shown.columns.map((c) => csvCell(c.name)).join(",")];
  // The table's rows as shown, numbers without thousands separators.
  for (const row of shown.rows) {
    lines.push(row.map((v, i) => csvCell(i === 0 ? isoTime(v) : shown.columns[i].csv ? shown.columns[i].csv(v) : v)).join(","));
  }
  return lines.join("\r\n") + "\r\n";
}

function isoTime(seconds) {
  return new Date(seconds * 1000).toISOString().replace(".000Z", "Z");
}

function download() {
  const blob = new Blob([csvText()], { type: "text/csv" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `openusage-${document.body.dataset.view}-${$("start").value}-${$("end").value}.csv`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

// ---- signing in ---------------------------------------------------------------------

function signOut(message = "") {
  sessionStorage.removeItem(KEY_STORE);
  $("board").hidden = true;
  $("sign-out").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("key").focus();
}

async function start() {
  $("board").hidden = false;
  $("sign-out").hidden = false;
  $("login").hidden = true;
  try {
    catalogue = await (await fetch("/dashboard/catalogue.json")).json();
    const projects = await listAll("/organization/projects");
    projectNames = Object.fromEntries(projects.filter((p) => p.name).map((p) => [p.id, p.name]));
    const select = $("project");
    select.replaceChildren();
    addOption(select, "", "All projects");
    for (const p of projects) addOption(select, p.id, p.name ? `${p.name} (${p.id})` : p.id);
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      return signOut(error.status === 401 ? `That key was not accepted: ${error.message}` : `This key may not read usage (${error.message}); use an admin key.`);
    }
    status(`Could not load: ${error.message}`);
    return;
  }
  const kinds = $("kind");
  kinds.replaceChildren();
  for (const k of catalogue.kinds) addOption(kinds, k.name, k.name.replaceAll("_", " "));
  fillForm(readState());
  writeState(formState(), true);
  await draw();
}

function main() {
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORE, $("key").value.trim());
    $("key").value = "";
    keyEnteredAt = performance.now();
    start();
  });
  $("sign-out").addEventListener("click", () => signOut());
  for (const button of document.querySelectorAll("nav button")) {
    button.addEventListener("click", () => {
      const state = { ...formState(), view: button.dataset.view };
      fillForm(state);
      writeState(formState());
      draw();
    });
  }
  $("filters").addEventListener("change", (event) => {
    if (event.target.id === "kind") fillKindChoices({ ...formState(), group: "", metric: "" });
    writeState(formState());
    draw();
  });
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  $("download").addEventListener("click", download);
  window.addEventListener("popstate", () => {
    if (!catalogue) return;
    fillForm(readState());
    draw();
  });
  window.addEventListener("resize", () => chart && chart.setSize({ width: Math.max(280, $("chart").clientWidth), height: 320 }));
  window.dashboardCsv = csvText;
  if (sessionStorage.getItem(KEY_STORE)) start();
  else signOut();
}

document.addEventListener("DOMContentLoaded", main);
