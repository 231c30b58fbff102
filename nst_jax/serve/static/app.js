// nst-serve's page: plain JavaScript over the JSON API (no build step).
"use strict";

const $ = (id) => document.getElementById(id);
let token = localStorage.getItem("nst_token") || "";
let current = null;      // the job shown in the live view
let events = null;       // its EventSource
let options = null;      // GET /api/options
let weightTouched = false;

const PRESETS = {
  balanced: {size: 256, iterations: 300, colour: "none", style_stat: "gram"},
  quick: {size: 128, iterations: 100, colour: "none", style_stat: "gram"},
  colors: {size: 256, iterations: 300, colour: "original_colors", style_stat: "gram"},
  swd: {size: 256, iterations: 300, colour: "none", style_stat: "swd"},
  large: {size: 512, iterations: 300, colour: "none", style_stat: "gram"},
  // the methods beyond Gatys run their own schedules (nst-stylize --method)
  strotss: {size: 256, method: "strotss"},
  nnst: {size: 256, method: "nnst"},
};
let method = "gatys";

function withToken(url) {
  return token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url;
}

async function api(path, init = {}) {
  const headers = Object.assign({}, init.headers || {});
  if (token) headers["Authorization"] = "Bearer " + token;
  const response = await fetch(path, Object.assign({}, init, {headers}));
  if (response.status === 401) {
    const given = prompt("This server needs its token:");
    if (given) {
      token = given.trim();
      localStorage.setItem("nst_token", token);
      return api(path, init);
    }
  }
  return response;
}

async function errorText(response) {
  try {
    const body = await response.json();
    return body.error || body.detail || response.statusText;
  } catch (e) {
    return response.status + " " + response.statusText;
  }
}

function show(el, yes) { el.hidden = !yes; }

function fmtSeconds(s) {
  if (s === null || s === undefined || !isFinite(s)) return "–";
  s = Math.max(0, Math.round(s));
  return s >= 60 ? Math.floor(s / 60) + " min " + (s % 60) + " s" : s + " s";
}

function fmtLoss(v) {
  return v === null || v === undefined ? "–" : Number(v).toPrecision(4);
}

// --- the form -------------------------------------------------------------

function syncOutputs() {
  $("size-out").textContent = $("size").value + " px";
  $("iterations-out").textContent = $("iterations").value;
  $("style-weight-out").textContent = weightTouched
    ? Number(Math.pow(10, $("style_weight").value).toPrecision(2)).toString()
    : "auto";
}

function applyPreset(name) {
  const p = PRESETS[name];
  method = p.method || "gatys";
  document.querySelectorAll(".gatys-only").forEach((el) => show(el, method === "gatys"));
  $("size").value = Math.min(p.size, Number($("size").max));
  weightTouched = false;
  if (method === "gatys") {
    $("iterations").value = Math.min(p.iterations, Number($("iterations").max));
    $("colour").value = p.colour;
    if ([...$("style_stat").options].some((o) => o.value === p.style_stat)) $("style_stat").value = p.style_stat;
  }
  syncOutputs();
}

function fill(select, names, chosen) {
  select.innerHTML = "";
  for (const name of names) {
    const option = document.createElement("option");
    option.value = option.textContent = name;
    select.appendChild(option);
  }
  if (chosen) select.value = chosen;
}

function bindDrop(id) {
  const drop = $(id + "-drop");
  const input = $(id);
  const img = drop.querySelector("img");
  const hint = drop.querySelector(".hint");
  const label = hint.innerHTML;
  input.addEventListener("change", () => {
    const files = [...input.files];
    drop.classList.toggle("filled", files.length > 0);
    if (files.length) {
      img.src = URL.createObjectURL(files[0]);
      hint.textContent = files.length > 1 ? files.length + " images" : files[0].name;
    } else {
      hint.innerHTML = label;
    }
    show(img, files.length > 0);
  });
  ["dragenter", "dragover"].forEach((e) => drop.addEventListener(e, () => drop.classList.add("over")));
  ["dragleave", "drop"].forEach((e) => drop.addEventListener(e, () => drop.classList.remove("over")));
}

function params() {
  let p = {size: Number($("size").value)};
  if (method !== "gatys") {
    p.method = method;   // its own iterations, levels and weights
  } else {
    Object.assign(p, {iterations: Number($("iterations").value),
                      style_stat: $("style_stat").value, optimizer: $("optimizer").value});
    const colour = $("colour").value;
    if (colour === "original_colors") p.original_colors = true;
    else if (colour !== "none") p.color_transfer = colour;
    if (weightTouched) p.style_weight = Number(Math.pow(10, $("style_weight").value).toPrecision(3));
  }
  const extra = $("extra").value.trim();
  if (extra) Object.assign(p, JSON.parse(extra));
  return p;
}

async function start(event) {
  event.preventDefault();
  const error = $("form-error");
  show(error, false);
  let body;
  try {
    body = new FormData();
    body.append("content", $("content").files[0]);
    for (const f of $("style").files) body.append("style", f);
    body.append("params", JSON.stringify(params()));
  } catch (e) {
    error.textContent = "More parameters: " + e.message;
    show(error, true);
    return;
  }
  $("start").disabled = true;
  try {
    const response = await api("/api/jobs", {method: "POST", body});
    if (response.status !== 201) {
      error.textContent = await errorText(response);
      show(error, true);
      return;
    }
    const job = await response.json();
    watch(job.job || {id: job.id, state: "queued"});
    refreshJobs();
  } finally {
    $("start").disabled = false;
  }
}

// --- the live view --------------------------------------------------------

function drawCurve(points) {
  const path = $("curve").querySelector("path");
  if (!points || points.length < 2) { path.setAttribute("d", ""); return; }
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => Math.log10(Math.max(p[1], 1e-12)));
  const x0 = Math.min(...xs), x1 = Math.max(...xs) || 1;
  const y0 = Math.min(...ys), y1 = Math.max(...ys);
  const sx = (x) => (x1 > x0 ? (x - x0) / (x1 - x0) : 0) * 296 + 2;
  const sy = (y) => 78 - (y1 > y0 ? (y - y0) / (y1 - y0) : 0.5) * 74;
  path.setAttribute("d", points.map((p, i) => (i ? "L" : "M") + sx(xs[i]).toFixed(1) + " " + sy(ys[i]).toFixed(1)).join(" "));
}

function render(job) {
  if (!current || job.id !== current.id) return;
  const previous = current;
  current = job;
  $("live-title").textContent = "Job " + job.id + (job.size ? " · " + job.size + " px" : "");
  const state = $("state");
  state.textContent = job.state;
  state.className = "badge " + job.state;
  $("iteration").textContent = job.iterations ? job.iteration + " / " + job.iterations : "–";
  $("loss").textContent = fmtLoss(job.loss);
  $("eta").textContent = job.state === "running" ? fmtSeconds(job.eta_seconds) : (job.state === "done" ? "done" : "–");
  $("bar").style.width = (job.iterations ? 100 * job.iteration / job.iterations : 0) + "%";
  if (job.curve) drawCurve(job.curve);
  const finished = ["done", "cancelled"].includes(job.state);
  const img = $("preview");
  if (finished) {
    const src = withToken("/api/jobs/" + job.id + "/result.png");
    if (!img.src.endsWith(src) || previous.state !== job.state) img.src = src;
    show(img, true);
  } else if (job.preview > 0 && (job.preview !== previous.preview || img.hidden || !img.src.includes(job.id))) {
    img.src = withToken("/api/jobs/" + job.id + "/preview.png?v=" + job.preview);
    show(img, true);
  }
  img.dataset.version = job.preview;
  show($("placeholder"), img.hidden);
  if (img.hidden) $("placeholder").textContent = job.state === "queued" ? "Waiting in the queue…" : "Compiling the first steps…";
  show($("cancel"), ["queued", "running"].includes(job.state));
  for (const [id, name] of [["download", "result.png"], ["record", "record.json"]]) {
    $(id).href = withToken("/api/jobs/" + job.id + "/" + name);
    show($(id), finished);
  }
  $("job-error").textContent = job.error || "";
  show($("job-error"), Boolean(job.error));
  document.querySelectorAll(".jobs li").forEach((li) => li.classList.toggle("current", li.dataset.id === job.id));
}

function watch(job) {
  if (events) events.close();
  current = Object.assign({preview: 0, curve: []}, job);
  $("preview").removeAttribute("src");
  show($("preview"), false);
  render(job);
  events = new EventSource(withToken("/api/jobs/" + job.id + "/events"));
  events.addEventListener("job", (e) => {
    const data = JSON.parse(e.data);
    render(data);
    if (["done", "failed", "cancelled"].includes(data.state)) {
      events.close();
      events = null;
      refreshJobs();
    }
  });
}

async function cancel() {
  if (!current) return;
  const response = await api("/api/jobs/" + current.id, {method: "DELETE"});
  if (response.ok) render(await response.json());
}

// --- past jobs ------------------------------------------------------------

async function refreshJobs() {
  const response = await api("/api/jobs");
  if (!response.ok) return;
  const jobs = (await response.json()).jobs;
  const list = $("jobs");
  list.innerHTML = "";
  show($("no-jobs"), jobs.length === 0);
  for (const job of jobs) {
    const li = document.createElement("li");
    li.dataset.id = job.id;
    li.title = job.id + ": " + job.state;
    const thumb = document.createElement("div");
    thumb.className = "thumb";
    const name = ["done", "cancelled"].includes(job.state) ? "result.png" : (job.preview > 0 ? "preview.png" : null);
    if (name) {
      const img = document.createElement("img");
      img.loading = "lazy";
      img.alt = job.state + " job " + job.id;
      img.src = withToken("/api/jobs/" + job.id + "/" + name + "?v=" + job.preview);
      thumb.appendChild(img);
    } else {
      thumb.textContent = job.state;
    }
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.innerHTML = "<span></span><span></span>";
    meta.children[0].textContent = job.size ? job.size + " px" : "";
    meta.children[1].textContent = job.state;
    meta.children[1].className = job.state;
    li.append(thumb, meta);
    li.addEventListener("click", () => watch(job));
    if (current && current.id === job.id) li.classList.add("current");
    list.appendChild(li);
  }
  return jobs;
}

async function init() {
  bindDrop("content");
  bindDrop("style");
  $("form").addEventListener("submit", start);
  $("cancel").addEventListener("click", cancel);
  $("preset").addEventListener("change", (e) => applyPreset(e.target.value));
  $("style_weight").addEventListener("input", () => { weightTouched = true; syncOutputs(); });
  ["size", "iterations"].forEach((id) => $(id).addEventListener("input", syncOutputs));
  const response = await api("/api/options");
  if (response.ok) {
    options = await response.json();
    const p = options.params;
    fill($("style_stat"), p.style_stat.choices, p.style_stat.default);
    fill($("optimizer"), p.optimizer.choices, p.optimizer.default);
    $("size").max = Math.min(1024, options.max_size);
    $("iterations").max = Math.min(1000, options.max_iterations);
  }
  applyPreset($("preset").value in PRESETS ? $("preset").value : "balanced");   // a reload keeps the choice
  const jobs = await refreshJobs();
  const live = (jobs || []).find((j) => ["running", "queued"].includes(j.state));
  if (live) watch(live);
  setInterval(refreshJobs, 10000);
}

init();
