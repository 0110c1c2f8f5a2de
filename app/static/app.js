// docproc web page: submit files, follow each task live (long-poll), show results and recent tasks.
// Plain browser JavaScript, no build step; the DOM is built with textContent only (no innerHTML of data).
"use strict";

(() => {
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);
  const LONG_POLL = 25;        // seconds the server may hold GET /api/tasks/<id>?wait=
  const MAX_POLLS = 3;         // browsers allow ~6 connections per host: leave room for other requests
  const KEY_STORAGE = "docproc.apiKey";
  const LOW_CONFIDENCE = 60;   // words and lines under this are marked on the page
  const PREVIEW_WIDTH = 1000;  // pixels of a page preview (the server allows 100..2000)
  const FIELD_TYPES = ["string", "date", "amount", "number", "boolean"];

  const $ = (sel) => document.querySelector(sel);
  const state = {
    files: [],                 // File objects waiting to be submitted
    cards: new Map(),          // task id -> {el, task, name}
    following: new Set(),
    waiting: [],
    recentTimer: null,
    pointer: { x: null, y: null, atScroll: null },  // where the mouse is, and was at the last scroll
  };

  // -- small helpers ------------------------------------------------------------------------
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const shortId = (id) => id.slice(0, 8);
  const humanize = (key) => {
    const text = String(key).replace(/_/g, " ").trim();
    return text.charAt(0).toUpperCase() + text.slice(1);
  };
  const show = (value) => (value !== null && typeof value === "object" ? JSON.stringify(value) : String(value));

  function seconds(from, to) {
    if (!from) return null;
    const end = to ? Date.parse(to) : Date.now();
    return Math.max(0, (end - Date.parse(from)) / 1000);
  }

  function duration(s) {
    if (s === null || s === undefined) return "–";
    if (s < 10) return `${s.toFixed(2)} s`;
    if (s < 60) return `${s.toFixed(1)} s`;
    const m = Math.floor(s / 60);
    return `${m} min ${String(Math.round(s % 60)).padStart(2, "0")} s`;
  }

  function clock(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    const today = new Date().toDateString() === d.toDateString();
    return today ? d.toLocaleTimeString() : d.toLocaleString();
  }

  function size(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  }

  // -- the API -----------------------------------------------------------------------------
  function apiKey() {
    return localStorage.getItem(KEY_STORAGE) || "";
  }

  function authorized(path, options = {}) {
    const headers = new Headers(options.headers || {});
    const key = apiKey();
    if (key) headers.set("Authorization", `Bearer ${key}`);
    return fetch(path, { cache: "no-store", ...options, headers });
  }

  // A binary resource (page image, PDF) fetched with the key, as a blob: URL the page may use.
  async function blobUrl(path) {
    const response = await authorized(path, { cache: "default" });
    if (!response.ok) {
      let message = `HTTP ${response.status}`;
      try {
        const body = await response.json();
        if (body && body.error && body.error.message) message = body.error.message;
      } catch (_) { /* not JSON */ }
      throw new Error(message);
    }
    return URL.createObjectURL(await response.blob());
  }

  async function api(path, options = {}) {
    const response = await authorized(path, options);
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const err = (body && body.error) || {};
      const error = new Error(err.message || `HTTP ${response.status}`);
      error.status = response.status;
      error.code = err.code || "http_error";
      if (response.status === 401) banner("The service needs an API key: enter yours at the top right and press Save.");
      throw error;
    }
    if (body === null) throw new Error("the server did not answer with JSON");
    return body;
  }

  function banner(message) {
    const node = $("#banner");
    node.textContent = message || "";
    node.hidden = !message;
  }

  // -- API key ------------------------------------------------------------------------------
  function setupKey() {
    const input = $("#api-key");
    input.value = apiKey();
    $("#key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (value) localStorage.setItem(KEY_STORAGE, value);
      else localStorage.removeItem(KEY_STORAGE);
      const button = $("#save-key");
      button.textContent = value ? "Saved" : "Cleared";
      setTimeout(() => { button.textContent = "Save"; }, 1500);
      banner("");
      refreshRecent();
    });
  }

  // -- choosing files --------------------------------------------------------------------
  function addFiles(list) {
    for (const file of list) {
      if (!state.files.some((f) => f.name === file.name && f.size === file.size && f.lastModified === file.lastModified)) {
        state.files.push(file);
      }
    }
    renderFiles();
  }

  function renderFiles() {
    const list = $("#file-list");
    list.replaceChildren(...state.files.map((file, i) => el("li", {},
      el("span", { class: "fname", text: file.name, title: file.name }),
      el("span", { class: "fsize", text: size(file.size) }),
      el("button", {
        type: "button", title: `Remove ${file.name}`, "aria-label": `Remove ${file.name}`, text: "×",
        onclick: () => { state.files.splice(i, 1); renderFiles(); },
      }))));
    const n = state.files.length;
    $("#submit").disabled = n === 0;
    $("#submit").textContent = n > 1 ? `Process ${n} files` : "Process";
  }

  function setupDrop() {
    const drop = $("#drop");
    const input = $("#files");
    input.addEventListener("change", () => { addFiles(input.files); input.value = ""; });
    for (const name of ["dragenter", "dragover"]) {
      drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
    }
    for (const name of ["dragleave", "drop"]) {
      drop.addEventListener(name, () => drop.classList.remove("over"));
    }
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) addFiles(event.dataTransfer.files);
    });
    // A file dropped beside the zone must not make the browser navigate away from the page.
    window.addEventListener("dragover", (event) => event.preventDefault());
    window.addEventListener("drop", (event) => event.preventDefault());
  }

  // -- type and library ---------------------------------------------------------------------
  const selectedType = () => document.querySelector("input[name=type]:checked").value;

  function setupTypes() {
    for (const radio of document.querySelectorAll("input[name=type]")) {
      radio.addEventListener("change", () => {
        const filling = selectedType() === "form_filling";
        $("#library").hidden = !filling;
        $("#requested").hidden = filling;
        if (filling) refreshLibrary();
      });
    }
  }

  async function refreshLibrary() {
    const list = $("#library-tasks");
    const checked = new Set([...list.querySelectorAll("input:checked")].map((i) => i.value));
    let tasks;
    try {
      tasks = (await api("/api/tasks?status=completed&limit=100")).tasks;
    } catch (error) {
      list.replaceChildren(el("li", { class: "empty", text: `Could not load tasks: ${error.message}` }));
      return;
    }
    const usable = tasks.filter((t) => t.type === "document" || t.type === "form");
    if (!usable.length) {
      list.replaceChildren(el("li", { class: "empty", text: "No completed documents yet: process one first, or give values as JSON." }));
      return;
    }
    list.replaceChildren(...usable.map((t) => {
      const name = (state.cards.get(t.id) && state.cards.get(t.id).name) || (t.result && t.result.title) || t.type;
      return el("li", {}, el("label", {},
        el("input", { type: "checkbox", value: t.id, checked: checked.has(t.id) }),
        el("span", { text: name }),
        el("code", { text: shortId(t.id) })));
    }));
  }

  function libraryOption() {
    const ids = [...document.querySelectorAll("#library-tasks input:checked")].map((i) => i.value);
    const raw = $("#library-json").value.trim();
    const entries = [...ids];
    if (raw) {
      let value;
      try {
        value = JSON.parse(raw);
      } catch (_) {
        throw new Error("The values are not valid JSON.");
      }
      const items = Array.isArray(value) ? value : [value];
      for (const item of items) {
        if (typeof item === "string") entries.push(item);
        else if (item && typeof item === "object" && !Array.isArray(item)) entries.push(item.kv ? item : { kv: item });
        else throw new Error("Give values as an object like {\"Full Name\": \"Jane Doe\"}.");
      }
    }
    if (!entries.length) throw new Error("Pick at least one completed document, or give values as JSON.");
    return entries;
  }

  // -- requested fields ------------------------------------------------------------------------
  function addFieldRow() {
    const row = el("div", { class: "field-row" },
      el("input", { class: "field-name", placeholder: "name, e.g. invoice_number", maxlength: "64",
        spellcheck: "false", list: "field-names", "aria-label": "field name" }),
      el("select", { class: "field-type", "aria-label": "field type" },
        el("option", { value: "", text: "any type" }), FIELD_TYPES.map((t) => el("option", { value: t, text: t }))),
      el("input", { class: "field-desc", placeholder: "description (optional)", maxlength: "300",
        "aria-label": "field description" }),
      el("button", { type: "button", class: "remove", title: "Remove this field", "aria-label": "Remove this field",
        text: "×", onclick: () => row.remove() }));
    $("#field-rows").append(row);
    row.querySelector(".field-name").focus();
    return row;
  }

  function fieldsOption() {
    const fields = [];
    const seen = new Set();
    for (const row of document.querySelectorAll("#field-rows .field-row")) {
      const name = row.querySelector(".field-name").value.trim();
      const type = row.querySelector(".field-type").value;
      const description = row.querySelector(".field-desc").value.trim();
      if (!name) {
        if (type || description) throw new Error("Every requested field needs a name.");
        continue;
      }
      if (seen.has(name)) throw new Error(`The field ${name} is requested twice.`);
      seen.add(name);
      const spec = { name };
      if (type) spec.type = type;
      if (description) spec.description = description;
      fields.push(spec);
    }
    return fields;
  }

  // -- submitting ----------------------------------------------------------------------------
  function formError(message) {
    const node = $("#form-error");
    node.textContent = message || "";
    node.hidden = !message;
  }

  function setupSubmit() {
    $("#submit-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      formError("");
      const type = selectedType();
      const options = { words: true };  // word boxes and confidences for the page view
      const lang = $("#lang").value.trim();
      if (lang && lang !== "eng") options.lang = lang;
      try {
        if (type === "form_filling") options.library = libraryOption();
        else {
          const fields = fieldsOption();
          if (fields.length) options.fields = fields;
        }
      } catch (error) {
        formError(error.message);
        return;
      }
      const files = state.files.splice(0);
      renderFiles();
      $("#submit").disabled = true;
      await Promise.all(files.map((file) => submitOne(file, type, options)));
      refreshRecent();
    });
  }

  async function submitOne(file, type, options) {
    const form = new FormData();
    form.append("type", type);
    form.append("priority", $("#priority").value);
    form.append("options", JSON.stringify(options));
    form.append("file", file, file.name);
    try {
      const task = await api("/api/tasks", { method: "POST", body: form });
      upsertCard(task, file.name, true);
      follow(task.id);
    } catch (error) {
      showFailedSubmission(file.name, type, error);
    }
  }

  function showFailedSubmission(name, type, error) {
    removePlaceholder();
    const card = el("article", { class: "task", dataset: { status: "failed" } },
      el("div", { class: "task-head" },
        el("span", { class: "task-name", text: name }),
        el("span", { class: "task-type", text: type }),
        el("span", { class: "badge failed", text: "rejected" })),
      el("div", { class: "task-errors" }, el("p", { text: `${error.message} (${error.code || "error"})` })));
    $("#tasks").prepend(card);
  }

  // -- following tasks ------------------------------------------------------------------------
  function follow(id) {
    if (state.following.has(id) || state.waiting.includes(id)) return;
    state.waiting.push(id);
    pump();
  }

  function pump() {
    while (state.following.size < MAX_POLLS && state.waiting.length) {
      const id = state.waiting.shift();
      state.following.add(id);
      poll(id).finally(() => { state.following.delete(id); pump(); });
    }
  }

  async function poll(id) {
    let failures = 0;
    for (;;) {
      const entry = state.cards.get(id);
      if (!entry || TERMINAL.has(entry.task.status)) return;
      try {
        const task = await api(`/api/tasks/${id}?wait=${LONG_POLL}`);
        failures = 0;
        upsertCard(task);
        if (TERMINAL.has(task.status)) { onFinished(); return; }
      } catch (error) {
        failures += 1;
        if (error.status === 404 || error.status === 401 || failures > 30) return;
        await sleep(Math.min(1000 * failures, 10000));
      }
      // More tasks than long-poll slots: take turns, so every card keeps moving.
      if (state.waiting.length) { state.waiting.push(id); return; }
    }
  }

  function onFinished() {
    refreshRecent();
    if (selectedType() === "form_filling") refreshLibrary();
  }

  // -- task cards ---------------------------------------------------------------------------------
  function removePlaceholder() {
    const placeholder = document.querySelector("#tasks .placeholder");
    if (placeholder) placeholder.remove();
  }

  function upsertCard(task, name, isNew) {
    let entry = state.cards.get(task.id);
    if (!entry) {
      removePlaceholder();
      entry = { el: el("article", { class: "task", dataset: { id: task.id } }), task, name: name || "" };
      state.cards.set(task.id, entry);
      $("#tasks").prepend(entry.el);
    } else if (name) {
      entry.name = name;
    }
    const changed = entry.rendered !== `${task.status}|${task.stage}|${task.progress}|${task.updated_at}`;
    entry.task = task;
    if (changed || isNew) renderCard(entry);
    return entry;
  }

  function renderCard(entry) {
    for (const url of entry.urls || []) URL.revokeObjectURL(url);  // images and downloads of the last drawing
    entry.urls = [];
    const t = entry.task;
    entry.rendered = `${t.status}|${t.stage}|${t.progress}|${t.updated_at}`;
    const name = entry.name || (t.result && t.result.title) || `Task ${shortId(t.id)}`;
    const wait = seconds(t.created_at, t.started_at);
    const run = t.started_at ? seconds(t.started_at, t.completed_at) : null;
    const cancellable = !TERMINAL.has(t.status) && !t.cancel_requested;
    const pct = Math.round(t.progress * 100);
    const node = entry.el;
    node.dataset.status = t.status;
    node.replaceChildren(...[
      el("div", { class: "task-head" },
        el("span", { class: "task-name", text: name, title: name }),
        el("span", { class: "task-type", text: t.type.replace("_", " ") }),
        el("span", { class: `badge ${t.status}`, text: t.cancel_requested && !TERMINAL.has(t.status) ? "cancelling" : t.status }),
        el("code", { class: "task-id", text: shortId(t.id), title: t.id }),
        el("span", { class: "spacer" }),
        el("span", { class: "task-meta", text: `wait ${duration(wait)} · run ${duration(run)}` }),
        cancellable && el("button", { type: "button", class: "small ghost", text: "Cancel", onclick: () => cancel(t.id) })),
      el("div", { class: "progress-line" },
        el("progress", { max: "100", value: String(pct), "aria-label": `progress of ${name}` }),
        el("span", { class: "stage", text: `${t.stage || t.status} · ${pct}%` })),
      t.errors && t.errors.length && t.status !== "completed" ? el("div", { class: "task-errors" },
        t.errors.map((e) => el("p", { text: `${e.stage ? e.stage + ": " : ""}${e.message || JSON.stringify(e)}` }))) : null,
      t.status === "completed" && t.result ? renderResult(entry) : null,
    ].filter(Boolean));
  }

  async function cancel(id) {
    try {
      upsertCard(await api(`/api/tasks/${id}`, { method: "DELETE" }));
    } catch (error) {
      banner(`Could not cancel: ${error.message}`);
    }
  }

  function kvTable(entries, headers) {
    return el("table", { class: "kv" },
      headers ? el("thead", {}, el("tr", {}, headers.map((h) => el("th", { text: h })))) : null,
      el("tbody", {}, entries.map(([k, ...cells]) => el("tr", {}, el("th", { text: humanize(k) }), cells.map((c) => el("td", {}, c))))));
  }

  function chips(items, cls) {
    return el("ul", { class: `tags ${cls || ""}` }, items.map((item) => el("li", { text: show(item) })));
  }

  function renderResult(entry) {
    const t = entry.task;
    const r = t.result;
    const pages = Array.isArray(r.pages) ? r.pages : [];
    const doc = documentView(entry, pages);
    const data = el("div", { class: "result-data" });
    if (r.title) data.append(el("h3", { class: "title", text: r.title }));
    if (r.description) data.append(el("p", { class: "description", text: r.description }));
    if (Array.isArray(r.tags) && r.tags.length) data.append(chips(r.tags));
    data.append(downloads(entry));

    if (r.filled && typeof r.filled === "object") {
      const rows = Object.entries(r.filled).map(([field, v]) => {
        const src = v && v.source ? v.source : {};
        const known = src.id && state.cards.get(src.id);
        const from = src.type === "inline" ? "given values"
          : known && known.name ? known.name : `${src.type || "task"} ${src.id ? shortId(src.id) : ""}`;
        return [field, show(v && typeof v === "object" && "value" in v ? v.value : v), el("span", { class: "source", text: from, title: src.id })];
      });
      const total = Array.isArray(r.fields) ? r.fields.length : rows.length + (r.missing || []).length;
      data.append(el("h4", { text: `Filled fields · ${rows.length} of ${total}` }));
      data.append(rows.length ? kvTable(rows, ["Field", "Value", "From"]) : el("p", { class: "empty", text: "Nothing could be filled." }));
    }
    if (Array.isArray(r.missing) && r.missing.length) {
      data.append(el("h4", { text: "Missing" }), chips(r.missing, "missing"));
    }
    if (r.fields_requested && typeof r.fields_requested === "object") {
      const entries = Object.entries(r.fields_requested);
      const found = entries.filter(([, v]) => v && v.value !== null && v.value !== undefined).length;
      data.append(el("h4", { text: `Requested fields · ${found} of ${entries.length} found` }));
      data.append(requestedTable(entries, doc));
    }
    if (r.kv && typeof r.kv === "object") {
      const rows = Object.entries(r.kv).map(([k, v]) => [k, show(v)]);
      data.append(el("h4", { text: "Key facts" }));
      const table = rows.length ? kvTable(rows) : null;
      data.append(table || el("p", { class: "empty", text: "No key facts found." }));
      const provenance = r.provenance && typeof r.provenance === "object" ? r.provenance : {};
      const keys = Object.keys(r.kv);
      if (table) {
        table.querySelectorAll("tbody tr").forEach((row, i) => {
          const where = provenance[keys[i]];
          if (where && where.page && validBox(where.box)) doc.link(row, keys[i], where);
        });
      }
    }
    if (Array.isArray(r.fields) && !r.filled) {
      data.append(el("h4", { text: "Blank fields" }));
      data.append(r.fields.length ? chips(r.fields, "fields") : el("p", { class: "empty", text: "No blank fields found." }));
    }
    const meta = [`extractor ${r.extractor || "?"}`, `${pages.length} page${pages.length === 1 ? "" : "s"}`];
    if (r.cached) meta.push("served from cache");
    if (r.usage && r.usage.total_tokens) meta.push(`${r.usage.total_tokens} tokens`);
    data.append(el("p", { class: "meta-line", text: meta.join(" · ") }));

    const text = el("div", { class: "result-text" }, el("h4", { text: "OCR text" }));
    if (pages.length) {
      for (const p of pages) {
        text.append(el("div", { class: "page-head" },
          el("span", { text: `Page ${p.page}` }),
          el("span", { text: `confidence ${Math.round(p.confidence)}%${p.rotation ? ` · turned ${p.rotation}°` : ""}` })));
        text.append(el("pre", { class: "ocr", text: p.text || "(no text found)" }));
      }
    } else {
      text.append(el("pre", { class: "ocr", text: r.text || "(no text found)" }));
    }
    return el("div", { class: "result" }, data, doc.node, text);
  }

  function fieldValue(v) {
    if (!v || v.value === null || v.value === undefined) return null;
    if (v.type === "amount" && typeof v.value === "number") return `${v.value.toFixed(2)}${v.currency ? ` ${v.currency}` : ""}`;
    if (v.type === "boolean") return v.value ? "yes" : "no";
    return show(v.value);
  }

  function requestedTable(entries, doc) {
    const table = el("table", { class: "kv requested" },
      el("tbody", {}, entries.map(([name, v]) => {
        const value = fieldValue(v);
        const row = el("tr", { dataset: { field: name } },
          el("th", {}, el("span", { text: name }), v && v.type ? el("small", { class: "ftype", text: v.type }) : null),
          el("td", {}, value === null ? el("span", { class: "not-found", text: "not found" }) : value));
        if (v && v.page && validBox(v.box)) doc.link(row, name, { page: v.page, box: v.box });
        return row;
      })));
    return table;
  }

  // -- downloads: the result as JSON, the searchable PDF (fetched with the key, saved from a blob: URL) --
  function downloads(entry) {
    const t = entry.task;
    const json = URL.createObjectURL(new Blob([JSON.stringify(t.result, null, 2)], { type: "application/json" }));
    entry.urls.push(json);
    const note = el("span", { class: "download-note", role: "status" });
    const pdf = el("a", { class: "download pdf", href: `/api/tasks/${t.id}/pdf`, download: `${t.id}.pdf`, text: "Searchable PDF" });
    pdf.addEventListener("click", async (event) => {
      if (pdf.dataset.ready) return;  // the blob: URL is in place: the browser saves it
      event.preventDefault();
      if (pdf.dataset.busy) return;
      pdf.dataset.busy = "1";
      note.textContent = "preparing…";
      try {
        const url = await blobUrl(pdf.getAttribute("href"));
        entry.urls.push(url);
        pdf.href = url;
        pdf.dataset.ready = "1";
        note.textContent = "";
        pdf.click();
      } catch (error) {
        note.textContent = `PDF: ${error.message}`;
      } finally {
        delete pdf.dataset.busy;
      }
    });
    return el("p", { class: "downloads" },
      el("span", { class: "label", text: "Download" }),
      el("a", { class: "download json", href: json, download: `${t.id}.json`, text: "JSON result" }),
      pdf, note);
  }

  // -- the document: each page image with its text lines as boxes ---------------------------------
  const validBox = (b) => Array.isArray(b) && b.length === 4 && b.every(Number.isFinite) && b[2] >= b[0] && b[3] >= b[1];
  const percent = (v, whole) => `${((100 * v) / whole).toFixed(4)}%`;

  // Boxes are pixels of the page image as read (page width x height); placed in percent, they follow
  // the displayed image whatever size the preview or the screen gives it.
  function place(node, box, page) {
    const [l, t, r, b] = box;
    node.style.left = percent(l, page.width);
    node.style.top = percent(t, page.height);
    node.style.width = percent(Math.max(r - l, 1), page.width);
    node.style.height = percent(Math.max(b - t, 1), page.height);
    return node;
  }

  function documentView(entry, pages) {
    const shown = pages.filter((p) => p.width > 0 && p.height > 0);
    const spots = new Map();    // page number -> its highlight
    const sizes = new Map();
    const node = el("div", { class: "result-doc" });
    const doc = { node, pinned: null, link: () => {} };
    if (!shown.length) return doc;
    const facts = [];           // {key, where} of every fact linked to its box
    // The facts read from (mostly) inside a box of page `number`.
    const factsIn = (number, box) => facts.filter((f) => f.where.page === number && share(f.where.box, box) >= 0.5).map((f) => f.key);
    const scroller = el("div", { class: "pages" });
    node.append(el("h4", { text: "Document" }), scroller, el("p", { class: "legend" },
      el("span", { class: "key-line", text: "text line" }),
      el("span", { class: "key-low", text: `confidence under ${LOW_CONFIDENCE}%` }),
      el("span", { class: "key-spot", text: "selected fact" })));
    for (const p of shown) {
      sizes.set(p.page, p);
      const view = pageView(entry, p, factsIn);
      spots.set(p.page, view.spot);
      scroller.append(view.node);
    }

    function highlight(where, key, scroll) {
      for (const spot of spots.values()) spot.hidden = true;
      const spot = where && spots.get(where.page);
      if (!spot || !validBox(where.box)) return;
      place(spot, where.box, sizes.get(where.page));
      spot.dataset.key = key;
      spot.hidden = false;
      if (scroll) spot.scrollIntoView({ behavior: "smooth", block: "center", inline: "nearest" });
      else keepInside(scroller, spot);
    }

    doc.link = (row, key, where) => {
      facts.push({ key, where });
      row.classList.add("located");
      row.tabIndex = 0;
      row.title = `Show where ${key} is on page ${where.page}`;
      const pin = () => {
        const again = doc.pinned && doc.pinned.row === row;
        if (doc.pinned) doc.pinned.row.classList.remove("selected");
        doc.pinned = again ? null : { row, key, where };
        if (doc.pinned) row.classList.add("selected");
        highlight(doc.pinned && where, key, !again);
      };
      row.addEventListener("mouseenter", (event) => { if (pointerMoved(event)) highlight(where, key, false); });
      row.addEventListener("mouseleave", () => highlight(doc.pinned && doc.pinned.where, doc.pinned && doc.pinned.key, false));
      row.addEventListener("click", pin);
      row.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); pin(); }
      });
    };
    return doc;
  }

  // Scroll only the pages' own box so that `child` is in sight (hovering must not move the window).
  function keepInside(scroller, child) {
    const outer = scroller.getBoundingClientRect();
    const inner = child.getBoundingClientRect();
    if (inner.top < outer.top || inner.bottom > outer.bottom) {
      scroller.scrollTop += inner.top - outer.top - (outer.height - inner.height) / 2;
    }
  }

  // The share of box a's area that lies inside box b.
  function share(a, b) {
    const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
    const h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
    const area = (a[2] - a[0]) * (a[3] - a[1]);
    return area > 0 && w > 0 && h > 0 ? (w * h) / area : 0;
  }

  function pageView(entry, p, factsIn) {
    const t = entry.task;
    const describe = (kind, item) => {
      const keys = factsIn(p.page, item.box);
      return `${kind} · “${item.text}” · confidence ${Math.round(item.confidence)}%${keys.length ? ` · gives ${keys.join(", ")}` : ""}`;
    };
    const hint = "Point at a box for its text and confidence; click to keep it here.";
    const info = el("p", { class: "box-info", text: hint });
    let picked = null;
    const box = (cls, kind, item) => {
      const node = place(el("div", { class: `box ${cls}`, title: describe(kind, item) }), item.box, p);
      node.addEventListener("mouseenter", () => { node.title = info.textContent = describe(kind, item); });
      node.addEventListener("mouseleave", () => { info.textContent = picked ? describe(picked.kind, picked.item) : hint; });
      node.addEventListener("click", () => {
        if (picked) picked.node.classList.remove("picked");
        picked = picked && picked.node === node ? null : { node, kind, item };
        if (picked) node.classList.add("picked");
        info.textContent = picked ? describe(kind, item) : hint;
      });
      return node;
    };
    const overlay = el("div", { class: "overlay" });
    (Array.isArray(p.lines) ? p.lines : []).forEach((line, i) => {
      if (!validBox(line.box)) return;
      const low = line.confidence < LOW_CONFIDENCE;
      overlay.append(box(low ? "line low" : "line", `Line ${i + 1}`, line));
    });
    for (const word of Array.isArray(p.words) ? p.words : []) {
      if (validBox(word.box) && word.confidence < LOW_CONFIDENCE) overlay.append(box("word low", "Word", word));
    }
    const spot = el("div", { class: "box spot", hidden: true, "aria-hidden": "true" });
    overlay.append(spot);

    const img = el("img", { class: "page-img", alt: `Page ${p.page} as read`, width: String(p.width), height: String(p.height) });
    const frame = el("div", { class: "page-frame loading" }, img, overlay);
    const width = Math.max(100, Math.min(PREVIEW_WIDTH, p.width));
    blobUrl(`/api/tasks/${t.id}/pages/${p.page}?width=${width}`).then((url) => {
      if (!entry.el.contains(img)) { URL.revokeObjectURL(url); return; }  // the card was drawn again meanwhile
      entry.urls.push(url);
      img.addEventListener("load", () => frame.classList.remove("loading"), { once: true });
      img.src = url;
    }).catch((error) => {
      frame.classList.remove("loading");
      frame.classList.add("broken");
      info.textContent = `The page image could not be loaded: ${error.message}`;
    });

    const notes = [`confidence ${Math.round(p.confidence)}%`];
    if (p.rotation) notes.push(`turned ${p.rotation}°`);
    if (p.deskew) notes.push(`levelled ${p.deskew}°`);
    const node = el("figure", { class: "page-view", dataset: { page: String(p.page) } },
      el("figcaption", { class: "page-head" }, el("span", { text: `Page ${p.page}` }), el("span", { text: notes.join(" · ") })),
      frame, info);
    return { node, spot };
  }

  // -- recent tasks -------------------------------------------------------------------------------
  async function refreshRecent() {
    clearTimeout(state.recentTimer);
    const body = $("#recent tbody");
    let tasks = null;
    try {
      tasks = (await api("/api/tasks?limit=25")).tasks;
    } catch (error) {
      body.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: "6", text: `Could not load tasks: ${error.message}` })));
    }
    if (tasks) {
      body.replaceChildren(...(tasks.length ? tasks.map(recentRow)
        : [el("tr", { class: "empty" }, el("td", { colspan: "6", text: "No tasks yet." }))]));
      // Cards not being long-polled right now still move with the list.
      for (const t of tasks) {
        const entry = state.cards.get(t.id);
        if (entry && !TERMINAL.has(entry.task.status) && !state.following.has(t.id)) {
          upsertCard(t);
          if (!TERMINAL.has(t.status)) follow(t.id);
        }
      }
    }
    const busy = tasks && tasks.some((t) => !TERMINAL.has(t.status));
    state.recentTimer = setTimeout(refreshRecent, busy ? 3000 : 20000);
  }

  function recentRow(t) {
    const entry = state.cards.get(t.id);
    const name = (entry && entry.name) || (t.result && t.result.title) || "";
    const run = t.started_at ? seconds(t.started_at, t.completed_at) : null;
    return el("tr", { dataset: { id: t.id }, title: "Open this task", onclick: () => openTask(t) },
      el("td", {}, name ? el("span", { class: "task-title", text: name }) : null, el("code", { text: shortId(t.id) })),
      el("td", { text: t.type.replace("_", " ") }),
      el("td", {}, el("span", { class: `badge ${t.status}`, text: t.status })),
      el("td", { class: "when", text: clock(t.created_at), title: t.created_at }),
      el("td", { class: "num", text: duration(seconds(t.created_at, t.started_at)) }),
      el("td", { class: "num", text: duration(run) }));
  }

  function openTask(t) {
    const entry = upsertCard(t);
    if (!TERMINAL.has(t.status)) follow(t.id);
    entry.el.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  // -- start --------------------------------------------------------------------------------------
  // A scroll moves rows under a still pointer and the browser reports it as entering them: only a pointer
  // that really moved may show a fact's box (else a click that scrolls to one would be undone at once).
  function trackPointer(event) {
    state.pointer.x = event.clientX;
    state.pointer.y = event.clientY;
  }

  function pointerMoved(event) {
    const at = state.pointer.atScroll;
    return !at || at.x !== event.clientX || at.y !== event.clientY;
  }

  document.addEventListener("DOMContentLoaded", () => {
    window.addEventListener("mouseover", trackPointer, true);
    window.addEventListener("mousemove", trackPointer, true);
    document.addEventListener("scroll", () => { state.pointer.atScroll = { x: state.pointer.x, y: state.pointer.y }; }, true);
    setupKey();
    setupDrop();
    setupTypes();
    setupSubmit();
    $("#add-field").addEventListener("click", addFieldRow);
    $("#refresh").addEventListener("click", refreshRecent);
    refreshRecent();
  });
})();
