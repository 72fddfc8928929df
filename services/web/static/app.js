// Arbiter pages: table sorting, live leaderboard, small helpers. Written here, no library;
// every page works without it (the server renders everything), this only adds to it.
"use strict";

// -- sorting: click a header of any <table class="sortable"> ------------------------------
// A cell's data-value (if any) is what sorts; th[data-sort="num"] sorts numerically.
function cellValue(row, index, numeric) {
  const cell = row.cells[index];
  if (!cell) return numeric ? -Infinity : "";
  const raw = cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent.trim();
  if (!numeric) return raw.toLowerCase();
  const n = parseFloat(String(raw).replace(/[^0-9eE+\-.]/g, ""));
  return Number.isNaN(n) ? -Infinity : n;
}

function sortTable(table, index, numeric, descending) {
  const body = table.tBodies[0];
  if (!body) return;
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = cellValue(a, index, numeric), y = cellValue(b, index, numeric);
    const order = x < y ? -1 : x > y ? 1 : 0;
    return descending ? -order : order;
  });
  rows.forEach((r) => body.appendChild(r));
}

function makeSortable(table) {
  const heads = table.tHead ? Array.from(table.tHead.rows[0].cells) : [];
  heads.forEach((th, index) => {
    if (!th.dataset.sort) th.dataset.sort = "text";
    th.tabIndex = 0;
    const go = () => {
      const descending = th.getAttribute("aria-sort") === "ascending";
      heads.forEach((h) => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      sortTable(table, index, th.dataset.sort === "num", descending);
    };
    th.addEventListener("click", go);
    th.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); go(); } });
  });
}

// -- helpers ------------------------------------------------------------------------------
function fmt(value, digits) {
  if (value === null || value === undefined) return "–";
  return Number(value).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
function pct(value) { return value === null || value === undefined ? "–" : (value * 100).toFixed(1) + " %"; }

// -- live leaderboard: <table data-live="/leaderboard/stream?..."> -------------------------
// Each `leaderboard` event carries GET /leaderboard's body; rows are matched by competitor and
// their cells with data-field are rewritten, the rank order re-applied, new rows added.
function applyBoard(table, board) {
  const body = table.tBodies[0];
  const byId = new Map(Array.from(body.rows).map((r) => [r.dataset.competitor, r]));
  const template = body.rows[0];
  board.rows.forEach((row) => {
    let tr = byId.get(row.competitor);
    if (!tr && template) {
      tr = template.cloneNode(true);
      tr.dataset.competitor = row.competitor;
      tr.querySelectorAll("[data-field]").forEach((c) => { c.textContent = ""; });
      const link = tr.querySelector("a[data-link]");
      if (link) { link.href = "/ui/competitors/" + encodeURIComponent(row.competitor); link.textContent = row.competitor; }
      body.appendChild(tr);
    }
    if (!tr) return;
    let changed = false;
    tr.querySelectorAll("[data-field]").forEach((cell) => {
      const field = cell.dataset.field;
      if (!(field in row)) return;
      const value = row[field];
      const digits = Number(cell.dataset.digits || 0);
      const text = cell.dataset.format === "pct" ? pct(value) : (typeof value === "number" ? fmt(value, digits) : (value ?? "–"));
      if (cell.textContent !== text) { cell.textContent = text; changed = true; }
      cell.dataset.value = value === null || value === undefined ? "" : value;
    });
    if (changed) { tr.classList.remove("changed"); void tr.offsetWidth; tr.classList.add("changed"); }
  });
  const order = new Map(board.rows.map((r, i) => [r.competitor, i]));
  Array.from(body.rows)
    .sort((a, b) => (order.get(a.dataset.competitor) ?? 1e9) - (order.get(b.dataset.competitor) ?? 1e9))
    .forEach((r) => body.appendChild(r));
  const position = document.querySelector("[data-position]");
  if (position) { position.dataset.position = board.position; position.textContent = board.position; }
}

function startLive(table) {
  if (!window.EventSource) return;
  const status = document.getElementById("live-status");
  const source = new EventSource(table.dataset.live);
  source.addEventListener("leaderboard", (e) => {
    applyBoard(table, JSON.parse(e.data));
    if (status) { status.classList.add("on"); status.textContent = "live"; }
  });
  source.addEventListener("error", () => {
    if (status) { status.classList.remove("on"); status.textContent = "reconnecting"; }
  });
}

// -- heatmap tooltips: written on hover from the cell's data (the server sends none per cell) --
function heatmapTip(event) {
  const cell = event.target;
  if (!(cell instanceof SVGElement) || !cell.classList.contains("mark") || cell.querySelector("title")) return;
  const map = cell.closest("svg");
  const raw = cell.dataset.value;
  let text = cell.dataset.a + " vs " + cell.dataset.b + ": ";
  if (raw === undefined) text += "never met";
  else if (map.classList.contains("pct")) text += pct(Number(raw)) + " won";
  else text += fmt(Number(raw), 0) + " results";
  const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
  title.textContent = text;
  cell.appendChild(title);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("svg.heatmap").forEach((svg) => svg.addEventListener("mouseover", heatmapTip));
  document.querySelectorAll("table.sortable").forEach(makeSortable);
  document.querySelectorAll("table[data-live]").forEach(startLive);
});
