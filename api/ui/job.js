// One job's page: header and actions, live loss and eval curves, base vs final evaluation,
// log tail, checkpoints and overlays.
import { ApiError, blobUrl, download, getJson, request, sendJson } from "./api.js";
import { renderChart } from "./chart.js";
import { bytes, duration, errorBox, h, number, stateBadge } from "./dom.js";
import { LOSS, MetricStore, isEval } from "./metrics.js";
import { follow } from "./sse.js";

const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
const LOG_TAIL_BYTES = 16 * 1024;
const LOG_POLL_MS = 3000;

function section(title, id, ...children) {
  return h("section", { id }, h("h3", {}, title), ...children);
}

function evaluationTable(evaluation) {
  if (!evaluation) return h("p", { className: "muted" }, "no evaluation yet (train jobs with a validation set)");
  const { base = {}, final = {}, delta = {} } = evaluation;
  const names = [...new Set([...Object.keys(base), ...Object.keys(final)])].sort();
  return h("table", { className: "evaluation", id: "evaluation-table" },
    h("thead", {}, h("tr", {}, ["metric", "base", "final", "Δ"].map((t) => h("th", {}, t)))),
    h("tbody", {}, names.map((name) => h("tr", {},
      h("td", {}, name), h("td", {}, number(base[name])), h("td", {}, number(final[name])),
      h("td", { className: delta[name] > 0 ? "up" : delta[name] < 0 ? "down" : "" }, number(delta[name]))))));
}

export function jobView(root, jobId) {
  let job = null, stopped = false, stopEvents = () => {}, logTimer = null;
  let logOffset = null, logAttempt = null, logText = "";
  const overlayUrls = [];

  const header = h("div", { id: "job-header" });
  const actions = h("div", { className: "toolbar", id: "job-actions" });
  const messages = h("div", { id: "job-messages" });
  const live = h("span", { className: "muted", id: "live-status" }, "connecting…");
  const lossSvg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  lossSvg.id = "loss-chart";
  const evalSvg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  evalSvg.id = "eval-chart";
  const evalSelect = h("select", { id: "eval-metric", onchange: () => drawCharts() });
  const evaluationBox = h("div");
  const logBox = h("pre", { id: "log-tail", className: "log" });
  const checkpointBox = h("div", { id: "checkpoints" });
  const overlayBox = h("div", { id: "overlays" });

  const store = new MetricStore(jobId, drawCharts, (err) => showError(err));

  function showError(err) {
    if (stopped || err.name === "AbortError") return;
    messages.replaceChildren(errorBox(err));
  }

  function drawCharts() {
    renderChart(lossSvg, store.series.get(LOSS) || [], LOSS);
    const evalNames = store.names().filter(isEval);
    const chosen = evalSelect.value || (evalNames.includes("val/j_and_f") ? "val/j_and_f" : evalNames[0]);
    if (evalSelect.options.length !== evalNames.length) {
      evalSelect.replaceChildren(...evalNames.map((n) => h("option", { value: n, selected: n === chosen }, n)));
    }
    evalSelect.hidden = !evalNames.length;
    renderChart(evalSvg, chosen ? store.series.get(chosen) || [] : [], chosen || "val/* (no validation set, or none run yet)");
  }

  function renderHeader() {
    const p = job.progress;
    const percent = p.fraction === null ? "" : ` (${Math.round(p.fraction * 100)}%)`;
    header.replaceChildren(...[
      h("h2", {}, `#${job.id} ${job.name || ""} `, stateBadge(job.state)),
      h("p", { id: "job-progress" },
        `${job.kind} · step ${p.step}/${p.max_steps ?? "?"}${percent} · ETA ${job.state === "running" ? duration(p.eta_seconds) : "–"}` +
        ` · attempt ${job.attempt}/${job.max_attempts} · ${job.gpus} GPU(s) · owner ${job.owner}`),
      job.failure ? h("p", { className: "error" }, `${job.failure.kind || "failed"}: ${job.failure.message || ""}`) : null,
    ].filter(Boolean));
    header.dataset.state = job.state;
    const active = !FINISHED.has(job.state);
    actions.replaceChildren(
      h("button", { type: "button", id: "cancel-job", disabled: !["queued", "running"].includes(job.state), onclick: () => act("cancel") }, "Cancel"),
      h("button", { type: "button", id: "retry-job", disabled: !["failed", "cancelled"].includes(job.state), onclick: () => act("retry") }, "Retry"),
      h("button", { type: "button", id: "delete-job", className: "danger", disabled: active, onclick: () => act("delete") }, "Delete"),
      h("details", {}, h("summary", {}, "config"), h("pre", {}, JSON.stringify(job.config, null, 2))));
    evaluationBox.replaceChildren(evaluationTable(job.evaluation));
  }

  async function act(action) {
    try {
      if (action === "delete") {
        if (!confirm(`Delete job #${jobId}, its run directory and checkpoints?`)) return;
        await request(`/jobs/${jobId}`, { method: "DELETE" });
        location.hash = "#/jobs";
        return;
      }
      job = await sendJson(`/jobs/${jobId}/${action}`, "POST", {});
      messages.replaceChildren();
      renderHeader();
      if (action === "retry") { startFollowing(); pollLog(); } // the old stream ended with the job
    } catch (err) {
      showError(err);
    }
  }

  let refreshTimer = null;
  function refreshSoon() { // state/checkpoint events come in bursts: one GET per second
    if (refreshTimer) return;
    refreshTimer = setTimeout(async () => {
      refreshTimer = null;
      await refreshJob();
      loadCheckpoints();
      pollLog(); // once more after the job finished: its last lines
      if (job && job.kind === "predict" && job.state === "succeeded") loadOverlays();
    }, 1000);
  }

  async function refreshJob() {
    try {
      job = await getJson(`/jobs/${jobId}`);
      if (!stopped) renderHeader();
    } catch (err) {
      showError(err);
    }
  }

  let logRun = Promise.resolve();
  function pollLog() { logRun = logRun.then(readLog); } // one read at a time: offsets stay in order

  async function readLog() {
    clearTimeout(logTimer);
    if (stopped) return;
    try {
      if (job.attempt < 1) {
        logBox.textContent = "(no attempt started yet)";
      } else {
        if (logAttempt !== job.attempt) { // start near the end of the current attempt's log
          const probe = await getJson(`/jobs/${jobId}/logs?limit=1`);
          logAttempt = probe.attempt;
          logOffset = Math.max(0, probe.size - LOG_TAIL_BYTES);
          logText = "";
        }
        const chunk = await getJson(`/jobs/${jobId}/logs?attempt=${logAttempt}&offset=${logOffset}&limit=${LOG_TAIL_BYTES}`);
        logOffset = chunk.next_offset;
        logText = (logText + chunk.text).slice(-LOG_TAIL_BYTES);
        const atBottom = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 4;
        logBox.textContent = logText || "(empty log)";
        if (atBottom) logBox.scrollTop = logBox.scrollHeight;
      }
    } catch (err) {
      showError(err);
    }
    if (!stopped && !FINISHED.has(job.state)) logTimer = setTimeout(pollLog, LOG_POLL_MS);
  }

  async function loadCheckpoints() {
    try {
      const list = await getJson(`/jobs/${jobId}/checkpoints`);
      checkpointBox.replaceChildren(list.checkpoints.length ? h("ul", {}, list.checkpoints.map((c) => h("li", {},
        c.available
          ? h("button", { type: "button", className: "link", onclick: () => download(c.url, c.name).catch(showError) }, c.name)
          : h("span", { className: "muted" }, `${c.name} (pruned)`),
        ` · step ${c.step} · ${bytes(c.size_bytes)}`))) : h("p", { className: "muted" }, "no checkpoints yet"));
    } catch (err) {
      showError(err);
    }
  }

  async function loadOverlays() {
    try {
      const list = await getJson(`/jobs/${jobId}/overlays`);
      overlayUrls.splice(0).forEach((u) => URL.revokeObjectURL(u));
      const items = await Promise.all(list.overlays.map(async (o, i) => {
        const url = await blobUrl(o.url);
        overlayUrls.push(url);
        const media = o.name.endsWith(".mp4")
          ? h("video", { src: url, controls: true, loop: true, muted: true, className: "overlay", id: `overlay-${i}` })
          : h("img", { src: url, alt: o.name, className: "overlay", id: `overlay-${i}` });
        return h("figure", {}, media, h("figcaption", {}, `${o.name} · ${bytes(o.size_bytes)}`));
      }));
      overlayBox.replaceChildren(...items);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        overlayBox.replaceChildren(h("p", { className: "muted" }, err.detail));
      } else {
        showError(err);
      }
    }
  }

  function startFollowing() {
    stopEvents();
    stopEvents = follow(`/jobs/${jobId}/events`, {
      onEvent,
      onStatus: (text) => { live.textContent = `events: ${text}`; },
      isFinished: () => job && FINISHED.has(job.state),
    });
  }

  function onEvent(kind, data) {
    if (stopped) return;
    if (kind === "metrics") store.noteEvent(data);
    else if (kind === "progress" && job) {
      job.progress = { ...job.progress, step: data.step, max_steps: data.max_steps, eta_seconds: data.eta_seconds,
                       fraction: data.max_steps ? data.step / data.max_steps : null };
      renderHeader();
    } else if (kind === "state" || kind === "checkpoint") {
      if (kind === "state" && job) { job.state = data.state; renderHeader(); }
      refreshSoon();
    }
  }

  root.replaceChildren(
    h("p", {}, h("a", { href: "#/jobs" }, "← all jobs"), " ", live),
    header, actions, messages,
    section("Loss", "loss", lossSvg),
    section("Evaluation curves", "eval", h("div", { className: "toolbar" }, evalSelect), evalSvg),
    section("Base vs final evaluation", "evaluation", evaluationBox),
    section("Log tail", "logs", logBox),
    section("Checkpoints", "checkpoints-section", checkpointBox),
    section("Overlays", "overlays-section", overlayBox));

  (async () => {
    await refreshJob();
    if (!job || stopped) return;
    const predict = job.kind === "predict"; // predict jobs have overlays, not curves
    for (const box of [lossSvg, evalSvg, evaluationBox, checkpointBox]) box.closest("section").hidden = predict;
    drawCharts();
    try {
      if (!predict) await store.load(Object.keys(job.last_metrics || {}));
    } catch (err) {
      showError(err);
    }
    if (stopped) return;
    startFollowing();
    pollLog();
    loadCheckpoints();
    loadOverlays(); // eval jobs, and training jobs' final evaluation, draw prediction vs truth
  })();

  return () => {
    stopped = true;
    stopEvents();
    clearTimeout(logTimer);
    clearTimeout(refreshTimer);
    overlayUrls.forEach((u) => URL.revokeObjectURL(u));
  };
}
