// remote-executors web UI: plain DOM, no build step. Untrusted text goes in as textContent.
"use strict";
const TOKEN = document.querySelector('meta[name="rx-token"]').content;

function api(method, path, body, signal) {
  const init = { method, headers: { Authorization: "Bearer " + TOKEN }, signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return fetch("/api" + path, init);
}

async function failure(response) {
  try { return (await response.json()).error || response.statusText; }
  catch (e) { return response.statusText; }
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

// -- settings ---------------------------------------------------------------
async function currentExecutors() {
  const response = await api("GET", "/settings/remote-executors");
  if (!response.ok) throw new Error(await failure(response));
  return response.json();
}

async function saveExecutors(names, status) {
  const response = await api("PUT", "/settings/remote-executors", names);
  if (!response.ok) { status.textContent = await failure(response); return false; }
  location.reload();
  return true;
}

async function testConnection(item) {
  const steps = item.querySelector(".steps");
  const button = item.querySelector(".check");
  steps.replaceChildren(el("li", { class: "pending" }, "Testing…"));
  button.disabled = true;
  try {
    const response = await api("POST", "/executors/" + encodeURIComponent(item.dataset.name) + "/check");
    if (!response.ok) { steps.replaceChildren(el("li", { class: "fail" }, await failure(response))); return; }
    steps.replaceChildren();
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = pending.indexOf("\n")) >= 0) {
        const line = JSON.parse(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
        if (line.done) {
          steps.append(el("li", { class: "summary " + (line.ok ? "ok" : "fail") },
            line.ok ? "Ready for sessions." : "Not ready: see the failed steps."));
        } else {
          steps.append(el("li", { class: "step " + line.status, "data-step": line.step },
            el("span", { class: "status" }, line.status), " ",
            el("strong", {}, line.title), line.detail ? ": " + line.detail : "",
            line.hint ? el("div", { class: "hint" }, "Fix: " + line.hint) : null));
        }
      }
    }
  } finally { button.disabled = false; }
}

function settingsPage() {
  for (const item of document.querySelectorAll("#executors .executor")) {
    item.querySelector(".check").addEventListener("click", () => testConnection(item));
    item.querySelector(".remove").addEventListener("click", async () => {
      const names = (await currentExecutors()).filter((n) => n !== item.dataset.name);
      await saveExecutors(names, document.querySelector("#add-executor .status"));
    });
  }
  const form = document.getElementById("add-executor");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = form.elements.name.value.trim();
    const status = form.querySelector(".status");
    try { await saveExecutors([...(await currentExecutors()), name], status); }
    catch (e) { status.textContent = String(e.message || e); }
  });
}

// -- the directory picker: completes a path on the chosen executor's host ----
const COMPLETE_AFTER_MS = 200;  // debounce: one request per pause in typing

function directoryPicker(form) {
  const box = document.getElementById("remote-dir");
  const input = form.elements.remote_cwd;
  const list = document.getElementById("remote-cwd-options");
  const hidden = document.getElementById("remote-hidden");
  const status = document.getElementById("remote-cwd-status");
  const select = form.elements.executor;
  const idle = status.textContent;
  let timer = null, controller = null, active = -1;
  let plain = false;  // the host gave no completions: a plain text field until the choice changes

  function close() {
    list.hidden = true;
    list.replaceChildren();
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  }
  function highlight(index) {
    const options = list.querySelectorAll("[role=option]");
    if (!options.length) return;
    active = (index + options.length) % options.length;
    options.forEach((o, i) => o.setAttribute("aria-selected", String(i === active)));
    input.setAttribute("aria-activedescendant", options[active].id);
    options[active].scrollIntoView({ block: "nearest" });
  }
  function choose(path) {
    input.value = path;
    close();
    input.focus();
  }
  function degrade(why) {
    plain = true;
    close();
    box.classList.add("plain");
    status.textContent = "No completion from " + select.value + " (" + why + "). Type the path.";
  }
  function show(entries) {
    close();
    entries.forEach((entry, i) => {
      const option = el("li", { role: "option", id: "remote-cwd-option-" + i, "aria-selected": "false",
        "data-path": entry.path }, entry.path);
      if (entry.has_sessions) {
        option.append(" ", el("span", { class: "mark mark-sessions", "aria-label": "has Claude sessions" }, "sessions"));
      }
      // mousedown, not click: the input keeps its focus (no blur closes the list first).
      option.addEventListener("mousedown", (event) => { event.preventDefault(); choose(entry.path); });
      list.append(option);
    });
    if (entries.length) { list.hidden = false; input.setAttribute("aria-expanded", "true"); }
    status.textContent = entries.length ? entries.length + " directories on " + select.value
      : "No directory there starts so.";
  }
  async function complete() {
    const value = input.value.trim();
    if (plain || box.hidden || !value) { close(); if (!plain) status.textContent = idle; return; }
    if (controller) controller.abort();
    controller = new AbortController();
    const query = new URLSearchParams({ path: value, complete: "1" });
    if (hidden.checked) query.set("hidden", "1");
    let response;
    try {
      response = await api("GET", "/executors/" + encodeURIComponent(select.value) + "/directories?" + query,
        undefined, controller.signal);
    } catch (error) {
      if (error.name !== "AbortError") degrade(String(error.message || error));
      return;
    }
    if (!response.ok) { degrade(await failure(response)); return; }
    let data;
    try { data = await response.json(); } catch (error) { degrade("not a directory listing"); return; }
    if (input.value.trim() !== value || !Array.isArray(data.entries)) return;  // typed on meanwhile
    show(data.entries);
  }
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(complete, COMPLETE_AFTER_MS);
  }
  function executorChanged() {
    plain = false;
    box.classList.remove("plain");
    box.hidden = !select.selectedOptions[0].hasAttribute("data-picks-directory");
    status.textContent = idle;
    close();
  }

  input.addEventListener("input", schedule);
  hidden.addEventListener("change", () => { input.focus(); schedule(); });
  select.addEventListener("change", executorChanged);
  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      if (list.hidden) { schedule(); return; }
      highlight(active + (event.key === "ArrowDown" ? 1 : -1));
    } else if (event.key === "Enter" && !list.hidden && active >= 0) {
      event.preventDefault();  // picks the directory; a second Enter submits
      choose(list.querySelectorAll("[role=option]")[active].dataset.path);
    } else if (event.key === "Escape" && !list.hidden) {
      event.preventDefault();
      close();
    }
  });
  input.addEventListener("blur", () => setTimeout(close, 150));
  executorChanged();  // the select may show another choice than the page was made with
  return () => (box.hidden ? "" : input.value.trim());
}

// -- new session ------------------------------------------------------------
function sessionsPage() {
  const form = document.getElementById("new-session");
  if (!form) return;
  const remoteCwd = directoryPicker(form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = form.querySelector(".status");
    const button = form.querySelector("button");
    button.disabled = true;
    status.textContent = "Starting on " + form.elements.executor.value + "…";
    try {
      const body = { prompt: form.elements.prompt.value, cwd: form.dataset.cwd, executor: form.elements.executor.value };
      if (remoteCwd()) body.remote_cwd = remoteCwd();
      const response = await api("POST", "/sessions", body);
      if (!response.ok) { status.textContent = await failure(response); return; }
      const started = await response.json();
      location.href = "/sessions/" + started.session_id;
    } finally { button.disabled = false; }
  });
}

// -- one session --------------------------------------------------------------
function blockText(block) {
  if (typeof block === "string") return block;
  if (Array.isArray(block)) return block.map(blockText).join("\n");
  if (block && typeof block.text === "string") return block.text;
  return JSON.stringify(block);
}

function renderEntry(entry) {
  const message = entry.message || {};
  const role = entry.type;
  const item = el("li", { class: "entry " + role + (entry.live ? " live" : ""), "data-uuid": entry.uuid || "" });
  const content = typeof message.content === "string" ? [{ type: "text", text: message.content }] : (message.content || []);
  for (const block of content) {
    if (block.type === "text") {
      item.append(el("div", { class: "text" }, el("span", { class: "who" }, role === "user" ? "You" : "Claude"), " ", block.text));
    } else if (block.type === "tool_use") {
      item.append(el("div", { class: "tool-use" }, el("span", { class: "who" }, "Tool " + block.name),
        el("pre", {}, JSON.stringify(block.input, null, 1))));
    } else if (block.type === "tool_result") {
      item.append(el("div", { class: "tool-result" + (block.is_error ? " error" : "") },
        el("span", { class: "who" }, block.is_error ? "Tool error" : "Tool result"),
        el("pre", {}, blockText(block.content))));
    } else if (block.type === "thinking") {
      item.append(el("details", {}, el("summary", {}, "Thinking"), el("p", {}, block.thinking)));
    }
  }
  return item.childElementCount ? item : null;
}

function sessionPage() {
  const list = document.getElementById("transcript");
  const sid = list.dataset.session;
  const seen = new Map();  // uuid -> element
  const stateLine = document.getElementById("run-state");
  const permissions = document.getElementById("permissions");
  const form = document.getElementById("send");
  const status = form.querySelector(".status");

  function add(entries) {
    for (const entry of entries) {
      if (entry.type !== "user" && entry.type !== "assistant") continue;
      const node = renderEntry(entry);
      if (!node) continue;
      const old = entry.uuid ? seen.get(entry.uuid) : null;
      if (old) { if (!entry.live) { old.replaceWith(node); seen.set(entry.uuid, node); } continue; }
      if (entry.uuid) seen.set(entry.uuid, node);
      list.append(node);
      node.dataset.shownAt = String(performance.timeOrigin + performance.now());
    }
  }

  const notices = document.getElementById("notices");
  // Each open prompt says how long it waits; the server denies it then (and says so).
  function tick() {
    for (const left of permissions.querySelectorAll(".expires")) {
      const seconds = Math.max(0, Math.round((Number(left.dataset.expiresAt) * 1000 - Date.now()) / 1000));
      left.textContent = seconds > 0
        ? "Denied automatically in " + (seconds >= 60 ? Math.floor(seconds / 60) + " min " : "") + (seconds % 60) + " s without an answer."
        : "No answer: denying…";
    }
  }
  const clock = setInterval(tick, 1000);
  window.addEventListener("pagehide", () => clearInterval(clock));

  function showState(run) {
    stateLine.textContent = run.state + " on " + run.executor + (run.error ? " — " + run.error : "");
    const said = new Set([...notices.children].map((n) => n.textContent));
    for (const text of run.notices || []) {
      if (!said.has(text)) notices.append(el("li", { class: "notice" }, text));
    }
    document.getElementById("interrupt").disabled = run.state !== "running";
    const open = new Set(run.permissions.map((p) => p.id));
    for (const card of permissions.querySelectorAll(".permission")) {
      if (!open.has(card.dataset.id)) card.remove();
    }
    for (const prompt of run.permissions) {
      if (permissions.querySelector('[data-id="' + prompt.id + '"]')) continue;
      const reason = el("input", { id: "deny-" + prompt.id, type: "text" });
      const allow = el("button", { type: "button", class: "allow" }, "Allow");
      const deny = el("button", { type: "button", class: "deny" }, "Deny");
      const card = el("div", { class: "permission", role: "group", "data-id": prompt.id, "aria-label": "Permission for " + prompt.tool },
        el("p", {}, "Claude wants to use ", el("strong", {}, prompt.tool)),
        el("pre", {}, JSON.stringify(prompt.input, null, 1)),
        el("p", { class: "expires", "aria-live": "off", "data-expires-at": String(prompt.expires_at) }),
        el("label", { for: "deny-" + prompt.id }, "Reason if denied"), reason,
        el("div", { class: "row" }, allow, deny));
      const answer = async (decision) => {
        const response = await api("POST", "/sessions/" + sid + "/permissions/" + prompt.id,
          { decision, message: reason.value });
        if (response.ok) card.remove(); else status.textContent = await failure(response);
      };
      allow.addEventListener("click", () => answer("allow"));
      deny.addEventListener("click", () => answer("deny"));
      permissions.append(card);
      allow.focus();
    }
    tick();
  }

  async function load() {
    const response = await api("GET", "/sessions/" + sid);
    if (!response.ok) { status.textContent = await failure(response); return; }
    const data = await response.json();
    add(data.entries);
    if (data.run) showState(data.run);
    else {
      stateLine.textContent = "idle · ran on " + data.executor;
      document.getElementById("interrupt").disabled = true;
    }
    const events = new EventSource("/api/sessions/" + sid + "/events?offset=" + data.offset);
    events.addEventListener("entries", (e) => add(JSON.parse(e.data)));
    events.addEventListener("live", (e) => add(JSON.parse(e.data)));
    events.addEventListener("state", (e) => showState(JSON.parse(e.data)));
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const response = await api("POST", "/sessions/" + sid + "/messages", { prompt: form.elements.prompt.value });
    if (response.ok) { form.elements.prompt.value = ""; status.textContent = "Sent."; }
    else status.textContent = await failure(response);
  });
  document.getElementById("interrupt").addEventListener("click", async () => {
    const response = await api("POST", "/sessions/" + sid + "/interrupt");
    status.textContent = response.ok ? "Interrupted." : await failure(response);
  });
  load();
}

const page = document.body.dataset.page;
if (page === "settings") settingsPage();
else if (page === "sessions") sessionsPage();
else if (page === "session") sessionPage();
