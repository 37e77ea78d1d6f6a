"""The app's one page: a text box (function -> genes), a DNA box or FASTA file (gene -> function), and the map.

Plain HTML and JavaScript calling the JSON API; every value from the server is inserted as text
(``textContent``), never as markup, so gene descriptions cannot inject anything into the page.
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>BioTalk gene search</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.4em;margin-bottom:.2em} h2{font-size:1.1em;margin:.3em 0}
.cols{display:flex;gap:1.5em;flex-wrap:wrap} .col{flex:1 1 520px;min-width:0}
textarea,input[type=text]{width:100%;box-sizing:border-box;font:inherit;padding:.4em}
textarea{height:7em;font-family:monospace;font-size:.85em}
button{font:inherit;padding:.35em 1em;margin-top:.4em}
table{border-collapse:collapse;width:100%;font-size:.88em;margin-top:.5em}
td,th{border-bottom:1px solid #ddd;padding:.25em .4em;text-align:left;vertical-align:top}
#message{display:none;background:#fde8e8;border:1px solid #e0a0a0;padding:.5em;margin:.8em 0}
#message.shown{display:block} #status{color:#555;font-size:.9em}
.predicted-ec{font-size:1.2em;font-weight:bold} .muted{color:#666;font-size:.88em}
canvas{border:1px solid #ccc;max-width:100%} .legend span{display:inline-block;margin-right:1em;font-size:.85em}
.swatch{display:inline-block;width:.8em;height:.8em;margin-right:.3em;border-radius:50%}
</style></head><body>
<h1>BioTalk gene search</h1>
<div id="status">Loading...</div>
<div id="message" role="alert"></div>
<div class="cols">
<div class="col">
<h2>Find genes by what they do</h2>
<form id="search-form"><input type="text" id="query" maxlength="1000"
 placeholder="e.g. breaks down hydrogen peroxide into water and oxygen">
<label class="muted">top <input type="number" id="k" value="10" min="1" max="50" style="width:4em"></label>
<button id="search-button" type="submit">Search</button></form>
<table id="genes"><thead><tr><th>#</th><th>score</th><th>gene</th><th>EC (ENZYME name)</th><th>organism</th>
<th>DNA</th></tr></thead><tbody></tbody></table>
</div>
<div class="col">
<h2>What does this gene do?</h2>
<form id="dna-form"><textarea id="dna" placeholder="paste a gene's DNA, or FASTA records"></textarea>
<input type="file" id="fasta-file" accept=".fa,.fasta,.fna,.ffn,.txt">
<button id="predict-button" type="submit">Predict EC</button></form>
<div id="predictions"></div>
</div></div>
<h2>Map of the indexed genes</h2>
<div class="muted" id="map-note">PCA of the genes' shared-space vectors, coloured by EC class; hits are ringed.</div>
<canvas id="map" width="900" height="460"></canvas><div class="legend" id="legend"></div>
<script>
"use strict";
const COLORS = {"1":"#1f77b4","2":"#ff7f0e","3":"#2ca02c","4":"#d62728","5":"#9467bd","6":"#8c564b","7":"#e377c2","":"#aaaaaa"};
let mapData = null, marks = [];
const $ = id => document.getElementById(id);
function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls; return e; }
function showError(text) { const m = $("message"); m.textContent = text; m.classList.add("shown"); }
function clearError() { const m = $("message"); m.textContent = ""; m.classList.remove("shown"); }
async function api(path, body) {
  const opts = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"},
                                          body: JSON.stringify(body)};
  let resp;
  try { resp = await fetch(path, opts); } catch (e) { throw new Error("the app is not reachable: " + e); }
  const data = await resp.json().catch(() => ({error: "HTTP " + resp.status}));
  if (!resp.ok) throw new Error(data.error || ("HTTP " + resp.status));
  return data;
}
function ecText(ecs) { return ecs.length ? ecs.map(e => e.name ? e.ec + " (" + e.name + ")" : e.ec).join("; ") : "no EC"; }
function geneRow(g) {
  const tr = el("tr", undefined, "gene-row");
  tr.append(el("td", String(g.rank)), el("td", g.score.toFixed(3)), el("td", g.gene_id), el("td", ecText(g.ecs)),
            el("td", g.organism));
  const td = el("td"), a = el("a", "FASTA"); a.href = g.fasta_url; a.setAttribute("download", ""); td.append(a);
  tr.append(td); return tr;
}
async function search(ev) {
  ev.preventDefault(); clearError();
  const body = $("genes").tBodies[0]; body.replaceChildren();
  try {
    const data = await api("/api/search", {query: $("query").value, k: parseInt($("k").value, 10) || 10});
    data.genes.forEach(g => body.append(geneRow(g)));
    if (!data.genes.length) showError("no gene in the index");
    marks = data.genes.map(g => ({x: g.x, y: g.y, kind: "hit"})); drawMap();
  } catch (e) { showError(e.message); }
}
function prediction(rec) {
  const box = el("div"), p = rec.prediction;
  box.append(el("h2", rec.id + " (" + rec.length.toLocaleString() + " nt)"));
  const line = el("div");
  line.append(el("span", p.ec === null ? "no prediction" : p.ec, "predicted-ec"),
              el("span", p.ec === null ? "" : "  " + (p.name || "") + " - confidence " + p.confidence.toFixed(2)));
  box.append(line, el("div", "hierarchical decoding, tau " + p.tau + " (" + p.tau_from + ")", "muted"));
  const levels = el("table"); levels.append(el("tr"));
  levels.rows[0].append(el("th", "level"), el("th", "node (grey: below tau)"), el("th", "probability"));
  p.levels.forEach(l => { const tr = el("tr", undefined, l.predicted ? "" : "muted"); tr.append(el("td", l.rank), el("td", l.node + (l.name ? " " + l.name : "")),
                                                          el("td", l.p.toFixed(3))); levels.append(tr); });
  const desc = el("table"); desc.append(el("tr"));
  desc.rows[0].append(el("th", "nearest EC descriptions"), el("th", "cosine"), el("th", "p"));
  rec.descriptions.forEach(d => { const tr = el("tr", undefined, "description-row");
    tr.append(el("td", d.ec + ": " + d.text), el("td", d.score.toFixed(3)), el("td", d.p.toFixed(3))); desc.append(tr); });
  const genes = el("table"); genes.append(el("tr"));
  genes.rows[0].append(el("th", "#"), el("th", "score"), el("th", "nearest indexed gene"), el("th", "EC"),
                       el("th", "organism"), el("th", "DNA"));
  rec.genes.forEach(g => genes.append(geneRow(g)));
  box.append(levels, desc, genes); return box;
}
async function predict(ev) {
  ev.preventDefault(); clearError(); $("predictions").replaceChildren();
  try {
    const data = await api("/api/predict", {sequence: $("dna").value, k: 5});
    data.records.forEach(r => $("predictions").append(prediction(r)));
    marks = [];
    data.records.forEach(r => { marks.push({x: r.x, y: r.y, kind: "query"});
                                r.genes.forEach(g => marks.push({x: g.x, y: g.y, kind: "hit"})); });
    drawMap();
  } catch (e) { showError(e.message); }
}
function readFile() {
  const f = $("fasta-file").files[0]; if (!f) return;
  const limit = window.BIOTALK_LIMITS ? window.BIOTALK_LIMITS.max_body_bytes : 2000000;
  if (f.size > limit) { showError("file is " + f.size.toLocaleString() + " bytes; at most " + limit.toLocaleString()); return; }
  const reader = new FileReader(); reader.onload = () => { $("dna").value = reader.result; }; reader.readAsText(f);
}
function drawMap() {
  const c = $("map"), ctx = c.getContext("2d"); ctx.clearRect(0, 0, c.width, c.height);
  if (!mapData || !mapData.x.length) return;
  const xs = mapData.x.concat(marks.map(m => m.x)), ys = mapData.y.concat(marks.map(m => m.y));
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys), pad = 12;
  const sx = v => pad + (v - x0) / ((x1 - x0) || 1) * (c.width - 2 * pad);
  const sy = v => c.height - pad - (v - y0) / ((y1 - y0) || 1) * (c.height - 2 * pad);
  ctx.globalAlpha = 0.55;
  mapData.x.forEach((x, i) => { ctx.fillStyle = COLORS[mapData.ec_class[i]] || "#aaa";
    ctx.fillRect(sx(x) - 1.5, sy(mapData.y[i]) - 1.5, 3, 3); });
  ctx.globalAlpha = 1; ctx.lineWidth = 2;
  marks.forEach(m => { ctx.strokeStyle = m.kind === "query" ? "#d00" : "#000"; ctx.beginPath();
    if (m.kind === "query") { ctx.moveTo(sx(m.x) - 8, sy(m.y) - 8); ctx.lineTo(sx(m.x) + 8, sy(m.y) + 8);
      ctx.moveTo(sx(m.x) + 8, sy(m.y) - 8); ctx.lineTo(sx(m.x) - 8, sy(m.y) + 8); }
    else ctx.arc(sx(m.x), sy(m.y), 6, 0, 2 * Math.PI);
    ctx.stroke(); });
}
async function start() {
  $("search-form").addEventListener("submit", search); $("dna-form").addEventListener("submit", predict);
  $("fasta-file").addEventListener("change", readFile);
  try {
    const h = await api("/api/health"); window.BIOTALK_LIMITS = h.limits;
    if (!h.ready) { $("status").textContent = "Not ready."; showError(h.problem); return; }
    const src = h.index.source || {};
    $("status").textContent = h.index.n.toLocaleString() + " genes indexed (" + (src.name || "") + ", " +
      h.index.kind + " search), " + h.index.candidates.toLocaleString() + " candidate ECs; model " + h.model;
    mapData = await api("/api/map");
    const legend = $("legend"); legend.replaceChildren();
    Object.entries(mapData.classes).forEach(([c, name]) => { const s = el("span"); const sw = el("span", "", "swatch");
      sw.style.background = COLORS[c] || "#aaa"; s.append(sw, document.createTextNode((c ? "EC " + c + " " : "") + name));
      legend.append(s); });
    if (mapData.shown < mapData.n) $("map-note").textContent += " Showing " + mapData.shown.toLocaleString() +
      " of " + mapData.n.toLocaleString() + " genes.";
    drawMap();
  } catch (e) { $("status").textContent = "Not ready."; showError(e.message); }
}
start();
</script></body></html>
"""
