// goalrl serve: the page. Talks to the JSON API of goalrl/serve/server.py; no libraries.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  selected: null,        // gallery goal id
  galleryVersion: -1,
  lastJob: null,         // id of the job whose result is shown
  busy: false,
  status: null,
};
// Frame statistics, read by the benchmark and tests: every distinct camera frame shown.
window.goalrl = { framesShown: 0, frameTimes: [], lastSeq: -1 };

function showMessage(text, kind = "error") {
  const box = $("message");
  box.textContent = text;
  box.className = kind;
  box.hidden = !text;
}

async function api(method, path, body, headers = {}) {
  const init = { method, headers: { ...headers }, cache: "no-store" };
  if (body !== undefined) {
    if (body instanceof Blob) {
      init.body = body;
    } else {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
  }
  const response = await fetch(path, init);
  let data = {};
  try { data = await response.json(); } catch (e) { data = {}; }
  if (!response.ok) {
    const error = new Error(data.error || `${method} ${path}: HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

// ---- live camera: long-poll /api/frame.jpg for the next frame ---------------------------
async function frameLoop() {
  const img = $("camera");
  let url = null;
  for (;;) {
    try {
      const r = await fetch(`/api/frame.jpg?after=${window.goalrl.lastSeq}`, { cache: "no-store" });
      if (!r.ok) { await sleep(500); continue; }
      const seq = parseInt(r.headers.get("X-Frame-Seq"), 10);
      const blob = await r.blob();
      if (seq !== window.goalrl.lastSeq) {
        const next = URL.createObjectURL(blob);
        await new Promise((resolve) => { img.onload = resolve; img.onerror = resolve; img.src = next; });
        if (url) URL.revokeObjectURL(url);
        url = next;
        window.goalrl.lastSeq = seq;
        window.goalrl.framesShown += 1;
        const now = performance.now();
        window.goalrl.frameTimes.push(now);
        if (window.goalrl.frameTimes.length > 600) window.goalrl.frameTimes.shift();
        updateFps(now);
      }
    } catch (e) {
      await sleep(1000);  // server restarting or gone: keep trying
    }
  }
}

function updateFps(now) {
  const recent = window.goalrl.frameTimes.filter((t) => now - t < 2000);
  $("fps").textContent = `${(recent.length / 2).toFixed(1)} new frames/s`;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- gallery ------------------------------------------------------------------------------
async function loadGallery() {
  const data = await api("GET", "/api/goals");
  const box = $("gallery");
  box.replaceChildren();
  for (const goal of data.goals) {
    const item = document.createElement("button");
    item.type = "button";
    item.className = "thumb";
    item.setAttribute("role", "option");
    item.dataset.goal = goal.id;
    item.setAttribute("data-testid", `goal-${goal.id}`);
    item.setAttribute("aria-selected", String(goal.id === state.selected));
    item.title = [goal.name, goal.state_known ? "scene state known" : "picture only",
      ...goal.notes].join("\n");
    const img = document.createElement("img");
    img.src = goal.url;
    img.alt = goal.name;
    const label = document.createElement("div");
    label.textContent = `${goal.id}: ${goal.name}`;
    item.append(img, label);
    item.addEventListener("click", () => select(goal.id));
    box.append(item);
  }
  updateButtons();
}

function select(id) {
  state.selected = id;
  for (const el of $("gallery").children) {
    el.setAttribute("aria-selected", String(el.dataset.goal === id));
  }
  updateButtons();
}

function updateButtons() {
  $("command").disabled = state.busy || !state.selected;
  $("stop").disabled = !state.busy;
  $("reset").disabled = state.busy;
  $("checkpoint-load").disabled = state.busy;
}

// ---- status polling, progress and result ------------------------------------------------
async function pollStatus() {
  for (;;) {
    try {
      const s = await api("GET", "/api/status");
      state.status = s;
      state.busy = s.busy;
      $("scene-info").textContent =
        `scene ${s.env} · ${s.image_size}px camera · up to ${s.max_steps} steps per command` +
        (s.realtime ? " · real-time pace" : "");
      $("checkpoint-info").textContent = `${s.checkpoint} (${s.agent}, step ${s.step})`;
      if (s.gallery_version !== state.galleryVersion) {
        state.galleryVersion = s.gallery_version;
        await loadGallery();
      }
      showJob(s.job);
      updateButtons();
    } catch (e) {
      $("scene-info").textContent = `server unreachable (${e.message}); retrying…`;
    }
    await sleep(state.busy ? 250 : 1000);
  }
}

function showJob(job) {
  if (!job) return;
  const progress = $("progress");
  progress.max = Math.max(1, job.max_steps);
  progress.value = job.step;
  const q = job.q_values.length ? job.q_values[job.q_values.length - 1].toFixed(3) : "–";
  const dist = job.distance == null ? "" : ` · distance ${job.distance.toFixed(3)} m`;
  $("progress-text").textContent =
    `${job.id} → ${job.goal}: ${job.state}, step ${job.step} / ${job.max_steps} · Q ${q}${dist}`;
  drawQ(job.q_values, job.max_steps);
  if (["done", "stopped", "failed"].includes(job.state) && state.lastJob !== job.id) {
    state.lastJob = job.id;
    showResult(job);
  }
}

function showResult(job) {
  if ($("message").className === "info") showMessage("");  // "moving toward ..." is over
  const box = $("result");
  box.replaceChildren();
  box.dataset.state = job.state;
  box.dataset.job = job.id;
  if (job.state === "failed") {
    box.textContent = `${job.id} failed: ${job.error}`;
    return;
  }
  const r = job.result;
  const verdict = document.createElement("p");
  const tag = document.createElement("span");
  if (r.success === null) {
    tag.textContent = "goal is a picture only: success unknown";
  } else {
    tag.textContent = r.success ? `success (reached at step ${r.reached_at})` : "not reached";
    tag.className = r.success ? "ok" : "bad";
  }
  verdict.append(`${job.id} ${job.state}: `, tag);
  const figures = document.createElement("p");
  figures.className = "small";
  const parts = [`${r.steps} steps in ${job.seconds} s`];
  if (r.final_distance !== null) {
    parts.push(`distance ${r.start_distance.toFixed(3)} → ${r.final_distance.toFixed(3)} m`);
  }
  parts.push(`image distance ${r.start_image_distance.toFixed(3)} → ${r.image_distance.toFixed(3)}`);
  if (r.final_q !== null) parts.push(`final Q ${r.final_q.toFixed(3)}`);
  figures.textContent = parts.join(" · ");
  box.append(verdict, figures);
  for (const note of r.notes) {
    const p = document.createElement("p");
    p.className = "small";
    p.textContent = `note: ${note}`;
    box.append(p);
  }
  const video = $("result-video");
  video.src = `${job.video}?job=${job.id}`;
  video.hidden = false;
}

function drawQ(values, maxSteps) {
  const svg = $("qplot");
  const W = 320, H = 140, left = 34, right = 8, top = 8, bottom = 24;
  const x = (i) => left + (i / Math.max(1, maxSteps)) * (W - left - right);
  const y = (q) => top + (1 - Math.min(1, Math.max(0, q))) * (H - top - bottom);
  const ns = "http://www.w3.org/2000/svg";
  const el = (name, attrs, text) => {
    const e = document.createElementNS(ns, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  svg.replaceChildren();
  for (const q of [0, 0.5, 1]) {
    svg.append(el("line", { x1: left, x2: W - right, y1: y(q), y2: y(q), stroke: "#ddd" }));
    svg.append(el("text", { x: 4, y: y(q) + 4, "font-size": 10 }, q.toFixed(1)));
  }
  svg.append(el("text", { x: W / 2, y: H - 6, "font-size": 10 }, "step"));
  svg.append(el("text", { x: left + 4, y: top + 10, "font-size": 10 }, "Q"));
  if (values.length) {
    const pts = values.map((q, i) => `${x(i + 1).toFixed(1)},${y(q).toFixed(1)}`).join(" ");
    svg.append(el("polyline", { points: pts, fill: "none", stroke: "#1f9d55", "stroke-width": 2 }));
  }
}

// ---- actions --------------------------------------------------------------------------------
async function run(action) {
  try {
    await action();
  } catch (e) {
    showMessage(e.message, "error");
  }
}

function seedValue(id) {
  const raw = $(id).value.trim();
  return raw === "" ? null : parseInt(raw, 10);
}

$("command").addEventListener("click", () => run(async () => {
  const data = await api("POST", "/api/command", { goal: state.selected });
  state.busy = true;
  updateButtons();
  showMessage(`Command ${data.job.id}: moving toward ${state.selected}.`, "info");
}));

$("stop").addEventListener("click", () => run(async () => {
  await api("POST", "/api/stop", {});
}));

$("reset").addEventListener("click", () => run(async () => {
  const data = await api("POST", "/api/reset", { seed: seedValue("reset-seed") });
  showMessage(`Scene reset to the start of episode ${data.seed}.`, "info");
}));

$("capture").addEventListener("click", () => run(async () => {
  const data = await api("POST", "/api/capture", { seed: seedValue("capture-seed") });
  await loadGallery();
  select(data.goal.id);
  showMessage(`Captured ${data.goal.id}: the goal of episode ${data.goal.seed}.`, "info");
}));

$("upload").addEventListener("change", (event) => run(async () => {
  const file = event.target.files[0];
  if (!file) return;
  const data = await api("POST", "/api/goals", file, {
    "Content-Type": file.type || "application/octet-stream",
    "X-Goal-Name": encodeURIComponent(file.name),
  });
  event.target.value = "";
  await loadGallery();
  select(data.goal.id);
  const notes = data.goal.notes.length ? ` (${data.goal.notes.join("; ")})` : "";
  showMessage(`Uploaded ${file.name} as ${data.goal.id}${notes}.`, "info");
}));

$("checkpoint-load").addEventListener("click", () => run(async () => {
  const data = await api("POST", "/api/checkpoint", { path: $("checkpoint-path").value });
  showMessage(`Loaded ${data.checkpoint} (step ${data.step}).`, "info");
}));

drawQ([], 1);
frameLoop();
pollStatus();
