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
$("#audio").addEventListener("change", () => { recorded = null; showPreviews(); });

// ---- voice question recorded in the browser (MediaRecorder) ------------------------------
let recorded = null; // a Blob once a recording has stopped
let recorder = null;

async function toggleRecording() {
  const button = $("#record-btn");
  if (recorder && recorder.state === "recording") {
    recorder.stop();
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
    recorder.onstop = () => {
      stream.getTracks().forEach((t) => t.stop());
      recorded = new Blob(chunks, { type: recorder.mimeType || "audio/webm" });
      $("#audio").value = "";
      button.setAttribute("aria-pressed", "false");
      button.textContent = "\u25CF Record";
      showPreviews();
      const box = $("#previews");
      box.append(el("span", { id: "recorded-note", class: "muted" },
        `recorded ${(recorded.size / 1024).toFixed(0)} KB — it will be sent with the question`));
      box.append(el("audio", { id: "recorded-audio", src: URL.createObjectURL(recorded), controls: "" }));
    };
    recorder.start();
    button.setAttribute("aria-pressed", "true");
    button.textContent = "\u25A0 Stop";
    status("recording… press Stop when done");
  } catch (err) {
    status(`cannot record: ${err.message || err}`, true);
  }
}
$("#record-btn").addEventListener("click", toggleRecording);
if (!(navigator.mediaDevices && window.MediaRecorder)) $("#record-btn").hidden = true;

async function queryBody() {
  const body = { k: Number($("#k").value) || 5, mode: $("#mode").value };
  const text = $("#q").value.trim();
  if (text) body.query = text;
  if ($("#image").files[0]) body.image_base64 = await readBase64($("#image").files[0]);
  if ($("#audio").files[0]) body.audio_base64 = await readBase64($("#audio").files[0]);
  else if (recorded) body.audio_base64 = await readBase64(recorded);
  return body;
}

// What the question said beyond its typed text: read in the photo, heard in the voice clip.
function renderQueryTexts(data) {
  const texts = { ...(data.query_texts || {}) };
  if (data.heard) texts.audio = data.heard;
  const box = $("#query-texts");
  box.replaceChildren();
  if (texts.audio) box.append(el("p", { id: "heard" }, el("b", {}, "heard: "), `“${texts.audio}”`));
  if (texts.image) box.append(el("p", { id: "read" }, el("b", {}, "read in the photo: "), `“${texts.image}”`));
  box.hidden = !box.childElementCount;
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

function sourceLink(source, label, passage) {
  const link = el("a", { href: fileUrl(source), target: "_blank", rel: "noopener" }, label);
  // Items (hits, citations) open a preview of the exact passage; documents open the original.
  link.addEventListener("click", source.id
    ? (event) => { event.preventDefault(); openPreview(source, passage); }
    : openAuthenticated);
  return link;
}

// ---- citation preview: the exact page / second / image ------------------------------------
async function blobUrl(path) {
  return URL.createObjectURL(await (await api(path)).blob());
}

async function openPreview(source, passage) {
  const dialog = $("#preview");
  const body = $("#preview-body");
  body.replaceChildren(el("p", { class: "muted" }, "loading…"));
  $("#preview-title").textContent = source.source.split(/[\\/]/).pop() + where(source);
  const open = $("#preview-open");
  open.href = fileUrl(source);
  open.onclick = openAuthenticated;
  if (!dialog.open) dialog.showModal();
  try {
    const query = passage ? `?passage=${encodeURIComponent(passage.slice(0, 4000))}` : "";
    const p = await (await api(`/items/${encodeURIComponent(source.id)}/preview${query}`)).json();
    body.replaceChildren(...(await previewContent(p, passage)));
    dialog.dataset.kind = p.kind;
  } catch (err) {
    body.replaceChildren(el("p", { class: "error" }, String(err.message || err)));
  }
}

async function previewContent(p, passage) {
  if (p.kind === "pdf-page") {
    const view = el("div", { class: "page-view" }, el("img", { alt: `page ${p.page}`, src: await blobUrl(p.page_image) }));
    for (const b of p.highlights) {
      view.append(el("div", { class: "mark", style:
        `left:${b.x * 100}%;top:${b.y * 100}%;width:${b.w * 100}%;height:${b.h * 100}%` }));
    }
    return [view, el("p", { class: "muted" }, `page ${p.page}: the cited passage is highlighted`)];
  }
  if (p.kind === "audio" || p.kind === "video") {
    const start = p.t_start || 0;
    const player = el(p.kind, { id: "preview-player", controls: "", preload: "metadata" });
    if (p.file) {
      player.src = await blobUrl(p.file);
      player.addEventListener("loadedmetadata", () => { player.currentTime = start; }, { once: true });
    }
    const play = el("button", { type: "button", class: "secondary", onclick: () => {
      player.currentTime = start;
      player.play().catch(() => {});
    } }, `\u25B6 Play from ${start.toFixed(1)} s`);
    return [player, el("div", { class: "row" }, play),
      el("p", { class: "muted" }, "transcript of this part:"), el("p", { class: "item-text" }, p.text)];
  }
  if (p.kind === "image") {
    const src = p.file ? await blobUrl(p.file) : await blobUrl(p.thumbnail);
    return [el("img", { id: "preview-image", src, alt: p.source }),
      el("p", { class: "muted" }, "read and recognised in the image:"),
      el("p", { class: "ocr-text" }, p.text || "(no text found)")];
  }
  return [markPassage(p.text, passage)];
}

function markPassage(text, passage) {
  const box = el("p", { class: "item-text" });
  const at = passage ? text.indexOf(passage) : -1;
  if (at < 0) box.append(text);
  else box.append(text.slice(0, at), el("mark", {}, passage), text.slice(at + passage.length));
  return box;
}

$("#preview-close").addEventListener("click", () => {
  for (const media of $("#preview-body").querySelectorAll("audio, video")) media.pause();
  $("#preview").close();
});

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
        el("div", { class: "section" }, (s.metadata && s.metadata.section) || ""),
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
      const link = sourceLink(target, part, target.snippet);
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
      sourceLink(c, c.source.split(/[\\/]/).pop() + where(c), c.snippet), ` — ${c.snippet}`));
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
  renderQueryTexts(data);
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
  $("#query-texts").hidden = true;
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
      renderQueryTexts(event);
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

function finishAnswer(data, sources) {
  if (data.query_texts || data.heard) renderQueryTexts(data);
  renderSources(sources, null);
  renderAnswer(data.answer, data.citations, sources);
  $("#generator").textContent = data.generator ? `(${data.generator}${data.partial ? ", partial" : ""})` : "";
  // A wordless photo's answer is a visual match, not words found: say so beside it.
  $("#photo-match").hidden = data.matched_by !== "photo";
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
      body.append(el("tr", {}, el("td", {}, sourceLink({ ...d, id: null }, d.source.split(/[\\/]/).pop())),
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

// ---- fleet dashboard ----------------------------------------------------------------------
function ago(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds < 1) return "just now";
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

const stateClass = (state) => `state-${String(state || "unreachable").replace(/[^a-z_]/g, "")}`;

function meter(label, value, budget, unit, digits) {
  const ratio = budget ? Math.min(value / budget, 1) : 0;
  const over = budget ? value > budget : false;
  return el("div", { class: "meter" + (over ? " over" : "") },
    el("span", {}, label),
    el("div", { class: "bar" + (over ? " over" : ""), title: `${value} / ${budget} ${unit}` },
      el("span", { style: `width:${(ratio * 100).toFixed(1)}%` })),
    el("span", {}, `${Number(value).toFixed(digits)} / ${budget} ${unit}`));
}

function renderFleet(data) {
  const box = $("#fleet");
  const nodes = Object.keys(data.nodes || {});
  const policies = (data.config && data.config.policies) || {};
  const verdict = el("p", {},
    el("span", { class: `verdict ${data.green ? "green" : "red"}`, id: "fleet-verdict" },
      data.green ? "GREEN" : "NOT GREEN"),
    ` collection ${data.collection} · ${nodes.length} nodes · ${data.config.shards} shards × ` +
    `${data.config.replicas} replicas · checked ${new Date(data.ts * 1000).toLocaleTimeString()}`);
  const problems = el("ul", { class: "problems" }, ...(data.problems || []).map((p) => el("li", {}, p)));

  const cards = el("div", { class: "cards", id: "fleet-nodes" }, ...nodes.map((name) => {
    const n = data.nodes[name];
    return el("div", { class: `card node ${stateClass(n.state)}`, "data-node": name, "data-state": n.state },
      el("b", {}, name), el("div", {}, n.state.replace("_", " ")),
      el("div", { class: "muted" }, `heartbeat ${ago(n.heartbeat_age_s)}`),
      el("div", { class: "muted" }, n.lsn === null || n.lsn === undefined ? "" : `LSN ${n.lsn}`));
  }));

  const shardIds = Object.keys(data.shards || {}).sort((a, b) => a - b);
  const grid = el("table", { class: "grid", id: "fleet-grid" },
    el("thead", {}, el("tr", {}, el("th", {}, "shard"), ...nodes.map((n) => el("th", {}, n)))),
    el("tbody", {}, ...shardIds.map((id) => {
      const shard = data.shards[id];
      return el("tr", {}, el("th", {}, `${id} (${shard.serving}/${data.config.replicas})`),
        ...nodes.map((n) => {
          const r = shard.replicas[n];
          if (!r) return el("td", { class: "cell none" }, "–");
          return el("td", { class: `cell ${stateClass(r.state)}`, title: r.reason || r.state, "data-state": r.state },
            r.state.replace("_", " "));
        }));
    })));

  const lag = el("div", { id: "fleet-lag" });
  for (const id of shardIds) {
    for (const [node, r] of Object.entries(data.shards[id].replicas)) {
      for (const [modality, m] of Object.entries(r.modalities || {})) {
        const policy = policies[modality] || {};
        lag.append(el("h3", { class: "muted" }, `shard ${id} on ${node} · ${modality}`));
        lag.append(meter("lag", m.lag_s || 0, policy.max_lag_s, "s", 1));
        if (m.drift !== null && m.drift !== undefined) {
          lag.append(meter("drift", m.drift, policy.drift_threshold, "", 3));
        } else {
          lag.append(el("div", { class: "meter" }, el("span", {}, "drift"), el("span", { class: "muted" }, "not sampled yet")));
        }
      }
    }
  }
  box.replaceChildren(verdict, problems,
    el("h2", {}, "Nodes"), cards,
    el("h2", {}, "Shards × replicas"), el("div", { class: "scroll-x" }, grid),
    el("h2", {}, "Lag and drift against each modality's policy"), lag);
}

let fleetTimer = null;

async function loadFleet() {
  try {
    const response = await fetch("/fleet/status", { headers: headers() });
    if (response.status !== 200) return false;
    renderFleet(await response.json());
    $("#tab-fleet").hidden = false;
    // refresh while the fleet tab is open
    if (!fleetTimer) {
      fleetTimer = setInterval(() => { if (!$("#panel-fleet").hidden) loadFleet(); }, 5000);
    }
    return true;
  } catch (_) {
    return false;
  }
}

loadStats();
loadFleet();
