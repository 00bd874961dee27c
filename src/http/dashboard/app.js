// The Switchyard dashboard: reads /v1/analytics/* with the chosen window and filters and draws
// each panel. Charts are Chart.js (vendored, see vendor/). Every panel marks itself with
// data-rows (how many rows or points it drew) once rendered, which the browser test reads.
"use strict";

const $ = (id) => document.getElementById(id);
const charts = {};
const COLORS = ["#2f6fde", "#e07b39", "#23854a", "#8e44ad", "#c23b3b", "#16a2b8", "#a0782c", "#596275"];

function keyHeader() {
  const k = localStorage.getItem("switchyard-key") || "";
  return k ? { Authorization: "Bearer " + k } : {};
}

function params() {
  const p = new URLSearchParams();
  p.set("window", $("f-window").value);
  document.querySelectorAll("select[data-filter]").forEach((s) => {
    if (s.value) p.set(s.dataset.filter, s.value);
  });
  return p;
}

async function get(path, withFilters = true) {
  const url = withFilters ? path + (path.includes("?") ? "&" : "?") + params() : path;
  const r = await fetch(url, { headers: keyHeader() });
  if (r.status === 401) {
    $("key-box").hidden = false;
    throw new Error("this server needs a router key: enter it above");
  }
  const body = await r.json();
  if (!r.ok) throw new Error((body.error && body.error.message) || r.statusText);
  return body;
}

// Builds an element: el("td", {class: "num"}, "text" | node, ...).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick") e.onclick = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "—" : String(c)));
  return e;
}

const num = (x, d = 1) => (x == null || Number.isNaN(x) ? "—" : Number(x).toFixed(d));
const pct = (x) => (x == null ? "—" : (100 * x).toFixed(1) + " %");
const usd = (x) => (x == null ? "—" : "$" + (x < 0.01 ? x.toFixed(5) : x.toFixed(3)));
const time = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const scoreCell = (s) =>
  s && s.n > 0 ? `${num(s.mean, 3)}${s.ci95 ? ` [${num(s.ci95[0], 2)}, ${num(s.ci95[1], 2)}]` : ""} (n=${s.n})` : "—";

// Fills a table: head is a list of [label, numeric?]; rows a list of cell lists.
function table(id, head, rows, onRow) {
  const t = $(id);
  t.replaceChildren(el("tr", {}, ...head.map(([h, n]) => el("th", n ? { class: "num" } : {}, h))));
  if (!rows.length) {
    t.append(el("tr", {}, el("td", { class: "empty", colspan: head.length }, "no data in this window")));
  }
  rows.forEach((cells, i) => {
    const tr = el("tr", onRow ? { class: "clickable" } : {}, ...cells.map((c, j) => el("td", head[j][1] ? { class: "num" } : {}, c)));
    if (onRow) tr.onclick = () => onRow(i);
    t.append(tr);
  });
  return rows.length;
}

function tiles(id, items) {
  $(id).replaceChildren(...items.map(([label, value]) => el("div", { class: "tile" }, el("b", {}, value), el("span", {}, label))));
}

function chart(id, config) {
  if (charts[id]) charts[id].destroy();
  config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
  charts[id] = new Chart($(id), config);
}

function mark(panel, n) {
  document.querySelector(`section[data-panel="${panel}"]`).dataset.rows = String(n);
}

async function loadFilters() {
  const f = await get("/v1/analytics/filters?window=all", false);
  document.querySelectorAll("select[data-filter]").forEach((s) => {
    const keep = s.value;
    const values = f[s.dataset.filter] || [];
    s.replaceChildren(el("option", { value: "" }, "all"), ...values.map((v) => el("option", { value: v }, v)));
    if (values.includes(keep)) s.value = keep;
  });
}

async function traffic() {
  const d = await get("/v1/analytics/traffic");
  const t = d.totals;
  tiles("traffic-tiles", [
    ["requests", t.requests], ["error rate", pct(t.error_rate)], ["failover rate", pct(t.failover_rate)],
    ["cost", usd(t.cost_usd)], ["cost per 1k requests", usd(t.cost_per_1k_requests_usd)],
    ["latency p50 / p99 ms", t.latency_ms ? `${num(t.latency_ms.p50)} / ${num(t.latency_ms.p99)}` : "—"],
  ]);
  chart("traffic-chart", {
    type: "bar",
    data: {
      labels: d.series.map((p) => time(p.t)),
      datasets: [
        { label: `answered (per ${d.bucket_ms / 1000} s)`, data: d.series.map((p) => p.requests - p.errors), backgroundColor: COLORS[0] },
        { label: "errors", data: d.series.map((p) => p.errors), backgroundColor: COLORS[4] },
      ],
    },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
  });
  mark("traffic", d.series.length);
}

async function models() {
  const d = await get("/v1/analytics/models");
  const q = (p) => (p ? `${num(p.p50)} / ${num(p.p95)} / ${num(p.p99)}` : "—");
  const n = table("models-table",
    [["model"], ["requests", 1], ["errors", 1], ["latency p50 / p95 / p99", 1], ["TTFT p50 / p95 / p99", 1]],
    d.models.map((m) => [m.model, m.requests, pct(m.error_rate), q(m.latency_ms), q(m.ttft_ms)]));
  mark("models", n);
  const f = table("feedback-table",
    [["model"], ["requests", 1], ["feedback mean [95 %] (n)", 1], ["judge mean [95 %] (n)", 1]],
    d.models.map((m) => [m.model, m.requests, scoreCell(m.feedback), scoreCell(m.judge)]));
  mark("feedback", d.models.some((m) => m.feedback.n > 0 || m.judge.n > 0) ? f : 0);
}

async function costs() {
  const d = await get("/v1/analytics/costs");
  chart("costs-chart", {
    type: "bar",
    data: {
      labels: d.by_model.map((m) => m.model),
      datasets: [{ label: "cost per 1k requests (USD)", data: d.by_model.map((m) => m.cost_per_1k_requests_usd), backgroundColor: COLORS[1] }],
    },
    options: { indexAxis: "y" },
  });
  const rows = [
    ...d.by_model.map((m) => ["model", m.model, m.requests, usd(m.cost_usd), usd(m.cost_per_1k_requests_usd)]),
    ...d.by_router.map((m) => ["router", m.router, m.requests, usd(m.cost_usd), usd(m.cost_per_1k_requests_usd)]),
    ...d.by_variant.map((m) => ["variant", [m.router, m.route || "default", m.variant].filter(Boolean).join(" / "), m.requests, usd(m.cost_usd), usd(m.cost_per_1k_requests_usd)]),
  ];
  mark("costs", table("costs-table", [["by"], ["name"], ["requests", 1], ["cost", 1], ["per 1k requests", 1]], rows));
}

async function failovers() {
  const d = await get("/v1/analytics/failovers");
  tiles("failover-tiles", [["requests", d.requests], ["with a failed attempt", d.requests_with_failures]]);
  mark("failovers", table("failovers-table", [["failed model"], ["why"], ["served instead"], ["count", 1]],
    d.failures.map((f) => [f.failed_model, f.reason, f.served_by || "nothing (request failed)", f.count])));
}

async function learned() {
  const d = await get("/v1/analytics/learned");
  tiles("learned-tiles", [
    ["auto requests", d.requests],
    ["knobs", Object.entries(d.knobs).map(([k, n]) => `${k} ${n}`).join(", ") || "—"],
    ["decision p50 / p99 ms", d.decision_ms ? `${num(d.decision_ms.p50, 2)} / ${num(d.decision_ms.p99, 2)}` : "—"],
    ["unfamiliar prompts", pct(d.unfamiliar_rate)], ["explored", pct(d.exploration_share)],
  ]);
  const models = [...new Set(d.series.flatMap((p) => Object.keys(p.chosen)))].sort();
  chart("learned-chart", {
    type: "bar",
    data: {
      labels: d.series.map((p) => time(p.t)),
      datasets: models.map((m, i) => ({
        label: m, backgroundColor: COLORS[i % COLORS.length],
        data: d.series.map((p) => {
          const all = Object.values(p.chosen).reduce((a, b) => a + b, 0);
          return all ? (100 * (p.chosen[m] || 0)) / all : 0;
        }),
      })),
    },
    options: { scales: { x: { stacked: true }, y: { stacked: true, max: 100, title: { display: true, text: "% of auto requests" } } } },
  });
  table("learned-table", [["candidate"], ["share", 1], ["requests", 1], ["cost per 1k", 1], ["feedback [95 %] (n)", 1], ["judge [95 %] (n)", 1]],
    d.candidates.map((c) => [c.model, pct(c.share), c.requests, usd(c.cost_per_1k_requests_usd), scoreCell(c.feedback), scoreCell(c.judge)]));
  mark("learned", d.series.length);
}

function qualityText(q) {
  if (q.status !== "estimated") return q.message;
  return `quality ${num(q.served, 3)} served vs ${num(q.baseline, 3)} estimated on the baseline (off-policy, ${q.baseline_labels} of ${q.labels} labels on it): ` +
    `difference ${num(q.difference, 3)} [95 %: ${num(q.low, 3)}, ${num(q.high, 3)}]`;
}

async function savings() {
  const d = await get("/v1/analytics/savings");
  const o = d.overall;
  tiles("savings-tiles", [
    ["auto requests", o.requests], ["cost", usd(o.cost_usd)], ["baseline cost", usd(o.baseline_cost_usd)],
    ["saved", usd(o.saved_usd)], ["saved %", pct(o.saved_share)],
  ]);
  $("savings-quality").textContent = o.requests ? qualityText(o.quality) : "no auto requests in the window";
  const rows = [...d.by_router.map((r) => ["router", r.router, r]), ...d.by_key.map((r) => ["key", r.key, r])];
  table("savings-table", [["by"], ["name"], ["requests", 1], ["cost", 1], ["baseline cost", 1], ["saved", 1], ["saved %", 1], ["quality"]],
    rows.map(([by, name, r]) => [by, name, r.requests, usd(r.cost_usd), usd(r.baseline_cost_usd), usd(r.saved_usd), pct(r.saved_share), qualityText(r.quality)]));
  mark("savings", o.requests);
}

async function experiments() {
  const d = await get("/v1/analytics/experiments");
  const box = $("experiments");
  box.replaceChildren();
  let arms = 0;
  for (const r of d.routers) {
    const t = el("table", {});
    const id = "exp-" + r.router.replace(/[^a-z0-9_-]/gi, "_");
    t.id = id;
    box.append(el("h3", {}, "router/" + r.router), t);
    arms += table(id, [["route / variant"], ["requests", 1], ["feedback [95 %] (n)", 1], ["cost per 1k", 1], ["latency p50", 1], ["TTFT p50", 1], ["errors", 1], ["against the baseline"]],
      r.arms.map((a) => [a.arm, a.requests, scoreCell(a.feedback), usd(a.cost_per_1k_requests_usd), num(a.latency_ms && a.latency_ms.p50), num(a.ttft_ms && a.ttft_ms.p50), pct(a.error_rate),
        el("span", { class: "statement" }, a.versus_baseline ? a.versus_baseline.statement : "—")]));
  }
  if (!d.routers.length) box.append(el("p", { class: "empty" }, "no router traffic in this window"));
  mark("experiments", arms);
}

async function requests() {
  const d = await get("/v1/analytics/requests?limit=50");
  mark("requests", table("requests-table", [["time"], ["request id"], ["router"], ["model"], ["status", 1], ["attempts", 1], ["ms", 1], ["cost", 1]],
    d.requests.map((r) => [time(r.ts_ms), r.request_id, r.router, r.model, r.status, r.attempts, num(r.duration_ms), usd(r.cost_usd)]),
    (i) => drill(d.requests[i].request_id)));
}

async function drill(id) {
  $("drill-id").value = id;
  const box = $("drill");
  box.dataset.request = "";
  let d;
  try {
    d = await get("/v1/analytics/requests/" + encodeURIComponent(id), false);
  } catch (e) {
    box.replaceChildren(el("p", { class: "fail" }, e.message));
    return;
  }
  const r = d.record;
  const parts = [
    el("h3", {}, "Request " + r.request_id),
    el("p", {}, `${r.ts} · ${r.endpoint} · status ${r.status} · requested ${r.requested_model || "—"} · served by ${r.model || "nothing"} · ${num(r.duration_ms)} ms total, TTFT ${num(r.ttft_ms)} ms, overhead ${num(r.overhead_ms, 2)} ms · ${usd(r.cost_usd)} · ${r.prompt_tokens} + ${r.completion_tokens} tokens`),
    el("p", { class: "statement" }, "routing: " + (r.reason || "—")),
    el("h4", {}, "Attempt chain"),
  ];
  const at = el("table", { id: "drill-attempts" });
  parts.push(at);
  if (r.learned) {
    parts.push(el("h4", {}, `Decision (knob ${r.learned.knob}, ${num(r.learned.decision_ms, 2)} ms${r.learned.unfamiliar ? ", unfamiliar prompt" : ""}${r.learned.exploration && r.learned.exploration.explored ? ", explored" : ""})`));
    parts.push(el("table", { id: "drill-decision" }));
  }
  parts.push(el("h4", {}, "Feedback"));
  parts.push(el("p", {}, d.feedback.length ? d.feedback.map((f) => `${f.source}: ${num(f.score, 2)}`).join(", ") : "none"));
  box.replaceChildren(...parts);
  table("drill-attempts", [["#", 1], ["model"], ["result"], ["status", 1], ["why"], ["TTFT ms", 1], ["ms", 1]],
    r.attempts.map((a, i) => [i + 1, a.model, el("span", { class: a.success ? "ok" : "fail" }, a.skipped ? "skipped" : a.success ? "served" : "failed"),
      a.status, a.skipped || a.error_kind || "", num(a.time_to_first_token_ms), num(a.duration_ms)]));
  if (r.learned) {
    const ranked = [...r.learned.candidates].sort((a, b) => b.score - a.score);
    table("drill-decision", [["candidate"], ["score", 1], ["predicted quality", 1], ["predicted cost", 1], ["eligible"], ["guardrails"]],
      ranked.map((c) => [c.model + (c.model === r.learned.chosen ? " (chosen)" : ""), num(c.score, 3), num(c.predicted_quality, 3), usd(c.predicted_cost_usd),
        c.eligible ? "yes" : "no", c.guardrails.map((g) => `${g.passed ? "✓" : "✗"} ${g.expression}`).join("; ") || "—"]));
  }
  box.dataset.request = r.request_id;
}

async function refresh() {
  const status = $("status");
  status.className = "";
  status.textContent = "loading…";
  try {
    await loadFilters();
    await Promise.all([traffic(), models(), costs(), failovers(), learned(), savings(), experiments(), requests()]);
    status.textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
  } catch (e) {
    status.className = "error";
    status.textContent = e.message;
  }
}

$("refresh").onclick = refresh;
$("f-window").onchange = refresh;
document.querySelectorAll("select[data-filter]").forEach((s) => (s.onchange = refresh));
$("api-key").onchange = (e) => {
  localStorage.setItem("switchyard-key", e.target.value);
  refresh();
};
$("drill-go").onclick = () => drill($("drill-id").value.trim());
refresh();
