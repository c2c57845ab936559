// edgerag web page: plain JS, no build step. Talks to the JSON API of the same origin.
"use strict";

const $ = (sel) => document.querySelector(sel);
const keyInput = $("#api-key");
keyInput.value = localStorage.getItem("edgerag-key") || "";
keyInput.addEventListener("change", () => localStorage.setItem("edgerag-key", keyInput.value.trim()));

function headers(extra = {}) {
  const key = keyInput.value.trim();
  return key ? { ...extra, "X-API-Key": key } : extra;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers || {}) });
  if (!response.ok) throw new Error(await errorText(response));
  return response;
}

async function errorText(response) {
  try {
    const body = await response.json();
    return `${response.status} ${body.error.type}: ${body.error.message}`;
  } catch (_) {
    return `${response.status} ${response.statusText}`;
  }
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function status(text, isError = false, target = "#status") {
  const box = $(target);
  box.textContent = text;
  box.classList.toggle("error", isError);
}

// ---- tabs -----------------------------------------------------------------------------
for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t === tab);
    for (const p of document.querySelectorAll(".panel")) p.hidden = p.id !== `panel-${tab.dataset.tab}`;
    if (tab.dataset.tab === "ingest") loadDocuments();
    if (tab.dataset.tab === "fleet") loadFleet();
  });
}

// ---- media inputs -----------------------------------------------------------------------
function readBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function showPreviews() {
  const box = $("#previews");
  box.replaceChildren();
  const image = $("#image").files[0];
  if (image) box.append(el("img", { src: URL.createObjectURL(image), alt: image.name, id: "image-preview" }));
  const audio = $("#audio").files[0];
  if (audio) box.append(el("audio", { src: URL.createObjectURL(audio), controls: "" }));
}
$("#image").addEventListener("change", showPreviews);
$("#audio").addEventListener("change", showPreviews);

async function queryBody() {
  const body = { k: Number($("#k").value) || 5, mode: $("#mode").value };
  const text = $("#q").value.trim();
  if (text) body.query = text;
  if ($("#image").files[0]) body.image_base64 = await readBase64($("#image").files[0]);
  if ($("#audio").files[0]) body.audio_base64 = await readBase64($("#audio").files[0]);
  return body;
}

// ---- links to the cited page / time ------------------------------------------------------
function fileUrl(source) {
  let url = `/files/${encodeURIComponent(source.doc_id)}`;
  if (source.page) url += `#page=${source.page}`;
  else if (source.t_start !== null && source.t_start !== undefined) {
    url += `#t=${source.t_start}` + (source.t_end ? `,${source.t_end}` : "");
  }
  return url;
}

async function openAuthenticated(event) {
  // Links can't carry the key header: fetch the file, then open it with the same fragment.
  if (!keyInput.value.trim()) return;
  event.preventDefault();
  const [path, fragment] = event.currentTarget.getAttribute("href").split("#");
  try {
    const blob = await (await api(path)).blob();
    window.open(URL.createObjectURL(blob) + (fragment ? `#${fragment}` : ""), "_blank");
  } catch (err) {
    status(String(err.message || err), true);
  }
}

function sourceLink(source, label) {
  return el("a", { href: fileUrl(source), target: "_blank", rel: "noopener", onclick: openAuthenticated }, label);
}

function where(source) {
  if (source.page) return ` p.${source.page}`;
  if (source.t_start !== null && source.t_start !== undefined) {
    return ` ${source.t_start.toFixed(1)}–${(source.t_end ?? source.t_start).toFixed(1)} s`;
  }
  return "";
}

async function loadThumbnail(img, source) {
  try {
    const blob = await (await api(`/items/${encodeURIComponent(source.id)}/thumbnail`)).blob();
    img.src = URL.createObjectURL(blob);
    img.hidden = false;
  } catch (_) {
    img.remove(); // text items have no thumbnail
  }
}

// ---- results -----------------------------------------------------------------------------
function timingText(timings) {
  return Object.entries(timings || {}).map(([k, v]) => `${k} ${Number(v).toFixed(1)}`).join(" · ") + " ms";
}

function renderSources(sources, timings) {
  const list = $("#results");
  list.replaceChildren();
  sources.forEach((s, i) => {
    const img = el("img", { class: "thumb", alt: `thumbnail of ${s.source}`, hidden: "" });
    if (s.modality !== "text") loadThumbnail(img, s);
    const scores = Object.entries(s.scores || {}).map(([k, v]) => `${k} ${Number(v).toFixed(3)}`).join(", ");
    const name = s.source.split(/[\\/]/).pop();
    list.append(el("li", { class: "hit", "data-modality": s.modality },
      img,
      el("div", {},
        el("div", {}, el("b", {}, `[${i + 1}] `), sourceLink(s, name + where(s)), " ",
          el("span", { class: `badge ${s.modality}` }, s.modality),
          el("span", { class: "scores" }, ` score ${Number(s.score).toFixed(4)} (${scores})`)),
        el("p", { class: "snippet" }, s.text.length > 300 ? s.text.slice(0, 300) + "…" : s.text))));
  });
  $("#timings").textContent = timings ? timingText(timings) : "";
  $("#results-box").hidden = false;
}

function renderAnswer(answer, citations, sources) {
  const byN = new Map(citations.map((c) => [c.n, c]));
  const box = $("#answer-text");
  box.replaceChildren();
  // Split on [n] markers and turn each one into a link to the cited page or time.
  for (const part of answer.split(/(\[\d+\])/)) {
    const m = part.match(/^\[(\d+)\]$/);
    const target = m && (byN.get(Number(m[1])) || sources[Number(m[1]) - 1]);
    if (target) {
      const link = sourceLink(target, part);
      link.classList.add("cite");
      box.append(link);
    } else {
      box.append(part);
    }
  }
  const list = $("#citations");
  list.replaceChildren();
  for (const c of citations) {
    list.append(el("li", { value: c.n, class: "citation" },
      sourceLink(c, c.source.split(/[\\/]/).pop() + where(c)), ` — ${c.snippet}`));
  }
  $("#answer").hidden = false;
}

// ---- search / ask ------------------------------------------------------------------------
async function doSearch() {
  const body = await queryBody();
  const data = await (await api("/search", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  })).json();
  $("#answer").hidden = true;
  renderSources(data.hits, data.timings_ms);
  status(`${data.hits.length} results (${data.plan})`);
}

async function doAsk() {
  const body = await queryBody();
  const stream = $("#stream").checked;
  const response = await api("/ask", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: stream ? "text/event-stream" : "application/json" },
    body: JSON.stringify({ ...body, stream }),
  });
  $("#answer").hidden = true;
  if (!stream) {
    const data = await response.json();
    finishAnswer(data, data.sources);
    return;
  }
  let sources = [];
  let text = "";
  for await (const event of sseEvents(response)) {
    if (event.type === "sources") {
      sources = event.sources;
      showHeard(event.heard);
      renderSources(sources, null);
      $("#answer-text").textContent = "";
      $("#citations").replaceChildren();
      $("#answer").hidden = false;
      status("generating…");
    } else if (event.type === "token") {
      text += event.text;
      $("#answer-text").textContent = text;
    } else if (event.type === "done") {
      finishAnswer(event, sources);
    } else if (event.type === "error") {
      throw new Error(`${event.error.type}: ${event.error.message}`);
    }
  }
}

// The transcript of a spoken question, above the answer (one element, made on first use).
function showHeard(heard) {
  let el = $("#heard");
  if (!el) {
    el = Object.assign(document.createElement("p"), { id: "heard", className: "muted" });
    $("#answer-text").before(el);
  }
  el.textContent = heard ? `heard: ${heard}` : "";
  el.hidden = !heard;
}

function finishAnswer(data, sources) {
  showHeard(data.heard);
  renderSources(sources, null);
  renderAnswer(data.answer, data.citations, sources);
  $("#generator").textContent = data.generator ? `(${data.generator}${data.partial ? ", partial" : ""})` : "";
  $("#answer-timings").textContent = timingText(data.timings_ms);
  status(`answered with ${data.citations.length} citation(s)`);
}

async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (data) yield JSON.parse(data);
    }
  }
}

$("#query-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const action = event.submitter ? event.submitter.dataset.action : "ask";
  status(action === "ask" ? "asking…" : "searching…");
  try {
    await (action === "ask" ? doAsk() : doSearch());
  } catch (err) {
    status(String(err.message || err), true);
  }
});

// ---- documents ---------------------------------------------------------------------------
async function loadDocuments() {
  try {
    const docs = await (await api("/documents?limit=200")).json();
    const body = $("#documents tbody");
    body.replaceChildren();
    for (const d of docs) {
      const del = el("button", { type: "button", onclick: () => removeDocument(d.doc_id) }, "delete");
      body.append(el("tr", {}, el("td", {}, sourceLink(d, d.source.split(/[\\/]/).pop())),
        el("td", {}, d.modality), el("td", {}, String(d.items)), el("td", {}, del)));
    }
  } catch (err) {
    status(String(err.message || err), true, "#ingest-status");
  }
}

async function removeDocument(docId) {
  if (!confirm(`Delete ${docId}?`)) return;
  try {
    await api(`/documents/${encodeURIComponent(docId)}`, { method: "DELETE" });
    status(`deleted ${docId}`, false, "#ingest-status");
    loadDocuments();
  } catch (err) {
    status(String(err.message || err), true, "#ingest-status");
  }
}

$("#ingest-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData();
  for (const file of $("#files").files) form.append("files", file, file.name);
  const tags = $("#tags").value.split(",").map((t) => t.trim()).filter(Boolean);
  if (tags.length) form.append("metadata", JSON.stringify({ tags }));
  status("uploading…", false, "#ingest-status");
  try {
    const r = await (await api("/ingest", { method: "POST", body: form })).json();
    const errors = r.errors.map((e) => `${e.input}: ${e.reason}`).join("; ");
    status(`${r.added.length} added, ${r.unchanged.length} unchanged, ${r.items} items` +
      (errors ? `; errors: ${errors}` : ""), Boolean(errors), "#ingest-status");
    loadDocuments();
    loadStats();
  } catch (err) {
    status(String(err.message || err), true, "#ingest-status");
  }
});

// ---- stats and fleet -----------------------------------------------------------------------
async function loadStats() {
  try {
    const s = await (await api("/stats")).json();
    const items = Object.entries(s.items).map(([m, n]) => `${n} ${m}`).join(", ") || "no items";
    $("#collection").textContent = `${s.documents} documents (${items}), LSN ${s.lsn}`;
  } catch (_) {
    $("#collection").textContent = "";
  }
}

function table(rows) {
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const fmt = (v) => (v !== null && typeof v === "object" ? JSON.stringify(v) : String(v ?? ""));
  return el("table", {}, el("thead", {}, el("tr", {}, ...cols.map((c) => el("th", {}, c)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, ...cols.map((c) => el("td", {}, fmt(r[c])))))));
}

function renderFleet(data) {
  const box = $("#fleet");
  box.replaceChildren();
  for (const [name, value] of Object.entries(data)) {
    box.append(el("h2", {}, name));
    if (Array.isArray(value) && value.every((v) => v && typeof v === "object")) box.append(table(value));
    else if (value && typeof value === "object") box.append(table(Object.entries(value).map(([k, v]) => ({ name: k, ...(typeof v === "object" ? v : { value: v }) }))));
    else box.append(el("p", {}, String(value)));
  }
}

async function loadFleet() {
  try {
    const response = await fetch("/fleet/status", { headers: headers() });
    if (response.status !== 200) return false;
    renderFleet(await response.json());
    $("#tab-fleet").hidden = false;
    return true;
  } catch (_) {
    return false;
  }
}

loadStats();
loadFleet();
