// Wardgate console: the overview's live charts and the clients page's as-you-type filter.
// Plain JavaScript, no library. The charts poll GET /api/v1/stats (running totals from the
// counters /metrics exports) every 2 s and draw the last 60 samples (two minutes) as SVG
// polylines.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const PERIOD_MS = 2000;
const KEEP = 60;
const COLOURS = ["#2457c5", "#c62828", "#1a7f37", "#b45d00", "#7b3fb5", "#00838f"];

// Each chart: the series it draws, computed from the previous and the current sample.
const CHARTS = {
  connections: (prev, cur) => ({ connections: cur.connections }),
  messages: (prev, cur) => ({
    in: rate(prev, cur, (s) => s.publishesReceived),
    out: rate(prev, cur, (s) => s.publishesSent),
  }),
  drops: (prev, cur) => {
    const out = {};
    for (const reason of Object.keys(cur.drops)) {
      const r = rate(prev, cur, (s) => s.drops[reason] || 0);
      if (r > 0 || (history.drops.series[reason] || []).some((v) => v > 0)) out[reason] = r;
    }
    return Object.keys(out).length ? out : { all: 0 };
  },
  latency: (prev, cur) => {
    const out = {};
    for (const [qos, seconds] of Object.entries(cur.selfCheckLatencySeconds || {})) {
      out["QoS " + qos] = seconds * 1000;
    }
    return out;
  },
};

const history = {};

function rate(prev, cur, pick) {
  if (!prev) return 0;
  const seconds = (cur.at - prev.at) / 1000;
  return seconds > 0 ? Math.max(0, (pick(cur) - pick(prev)) / seconds) : 0;
}

function record(name, values) {
  const h = history[name];
  h.samples += 1;
  for (const key of new Set([...Object.keys(h.series), ...Object.keys(values)])) {
    const list = h.series[key] || (h.series[key] = []);
    list.push(values[key] ?? 0);
    if (list.length > KEEP) list.shift();
  }
}

function draw(figure, name) {
  const h = history[name];
  const svg = figure.querySelector("svg");
  const keys = Object.keys(h.series);
  const max = Math.max(1, ...keys.flatMap((k) => h.series[k]));
  svg.replaceChildren();
  keys.forEach((key, i) => {
    const list = h.series[key];
    // The samples so far span the width; older ones scroll out once KEEP are held.
    const span = Math.max(list.length - 1, 1);
    const points = list.map((v, x) => `${(x * 300) / span},${100 - (v * 95) / max}`);
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", points.join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", COLOURS[i % COLOURS.length]);
    line.setAttribute("stroke-width", "2");
    line.setAttribute("vector-effect", "non-scaling-stroke");
    line.dataset.series = key;
    svg.appendChild(line);
  });
  const legend = figure.querySelector(".legend");
  legend.replaceChildren(
    ...keys.map((key, i) => {
      const span = document.createElement("span");
      const last = h.series[key][h.series[key].length - 1];
      span.textContent = `${key}: ${format(last)}`;
      span.style.color = COLOURS[i % COLOURS.length];
      return span;
    }),
  );
  figure.querySelector(".now").textContent = `max ${format(max)}`;
  figure.dataset.samples = String(h.samples);
}

// 1234 -> "1234", 12.34 -> "12.3", 2.5 -> "2.5", 0 -> "0".
function format(v) {
  if (v >= 100) return v.toFixed(0);
  return v.toFixed(v >= 10 ? 1 : 2).replace(/\.?0+$/, "");
}

async function poll(figures, prev) {
  let cur = prev;
  try {
    const response = await fetch("/api/v1/stats", { cache: "no-store" });
    if (response.ok) {
      cur = await response.json();
      for (const figure of figures) {
        const name = figure.dataset.chart;
        record(name, CHARTS[name](prev, cur));
        draw(figure, name);
      }
    }
  } catch (e) {
    // The broker is restarting or unreachable: keep the last drawing, try again.
  }
  setTimeout(() => poll(figures, cur), PERIOD_MS);
}

function filterClients(input) {
  const needle = input.value.trim().toLowerCase();
  for (const row of document.querySelectorAll("#clients tbody tr[data-search]")) {
    row.hidden = !row.dataset.search.includes(needle);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const figures = [...document.querySelectorAll("figure.chart[data-chart]")];
  if (figures.length) {
    for (const f of figures) history[f.dataset.chart] = { series: {}, samples: 0 };
    poll(figures, null);
  }
  const search = document.getElementById("search");
  if (search) search.addEventListener("input", () => filterClients(search));
});
