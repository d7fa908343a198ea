// The job list: state, kind, name, progress and ETA, filtered by state and kind, polled.
import { getJson } from "./api.js";
import { duration, errorBox, h, stateBadge } from "./dom.js";

const STATES = ["", "queued", "running", "cancelling", "succeeded", "failed", "cancelled"];
const KINDS = ["", "train", "eval", "predict"];
const POLL_MS = 3000;

function progressCell(progress) {
  const { step, max_steps: max, fraction } = progress;
  const percent = fraction === null || fraction === undefined ? null : Math.round(fraction * 100);
  return h("td", { className: "progress" },
    h("progress", { max: 100, value: percent ?? 0 }),
    ` ${step}/${max ?? "?"}${percent === null ? "" : ` (${percent}%)`}`);
}

function row(job) {
  return h("tr", { dataset: { jobId: job.id, state: job.state } },
    h("td", {}, h("a", { href: `#/jobs/${job.id}` }, `#${job.id}`)),
    h("td", {}, h("a", { href: `#/jobs/${job.id}` }, job.name || "(no name)")),
    h("td", {}, job.kind),
    h("td", {}, stateBadge(job.state)),
    progressCell(job.progress),
    h("td", {}, job.state === "running" ? duration(job.progress.eta_seconds) : "–"),
    h("td", {}, job.owner),
    h("td", {}, new Date(job.created_at).toLocaleString()));
}

function select(name, values, current) {
  return h("select", { name, id: `filter-${name}` },
    values.map((v) => h("option", { value: v, selected: v === current }, v || `any ${name}`)));
}

export function jobsView(root, params) {
  const filters = { state: params.get("state") || "", kind: params.get("kind") || "" };
  const body = h("tbody");
  const status = h("p", { className: "muted", id: "jobs-status" });
  const errors = h("div");
  const stateSelect = select("state", STATES, filters.state);
  const kindSelect = select("kind", KINDS, filters.kind);
  let timer = null, stopped = false;

  async function refresh() {
    clearTimeout(timer);
    const query = new URLSearchParams({ limit: "100" });
    if (filters.state) query.set("state", filters.state);
    if (filters.kind) query.set("kind", filters.kind);
    try {
      const page = await getJson(`/jobs?${query}`);
      if (stopped) return;
      body.replaceChildren(...page.items.map(row));
      if (!page.items.length) body.append(h("tr", {}, h("td", { colSpan: 8, className: "muted" }, "no jobs")));
      status.textContent = `${page.items.length} job(s)${page.next_cursor ? " (newest 100 shown)" : ""}, ` +
        `updated ${new Date().toLocaleTimeString()}`;
      errors.replaceChildren();
    } catch (err) {
      if (stopped) return;
      errors.replaceChildren(errorBox(err));
    }
    if (!stopped) timer = setTimeout(refresh, POLL_MS);
  }

  function onFilter() {
    filters.state = stateSelect.value;
    filters.kind = kindSelect.value;
    const query = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
    history.replaceState(null, "", `#/jobs${query.size ? `?${query}` : ""}`);
    refresh();
  }
  stateSelect.addEventListener("change", onFilter);
  kindSelect.addEventListener("change", onFilter);

  root.replaceChildren(
    h("h2", {}, "Jobs"),
    h("div", { className: "toolbar" }, stateSelect, kindSelect,
      h("button", { type: "button", id: "jobs-refresh", onclick: refresh }, "Refresh"),
      h("a", { href: "#/submit", className: "button" }, "New job")),
    errors,
    h("table", { className: "jobs", id: "jobs-table" },
      h("thead", {}, h("tr", {}, ["id", "name", "kind", "state", "progress", "ETA", "owner", "created"]
        .map((t) => h("th", {}, t)))),
      body),
    status);
  refresh();
  return () => { stopped = true; clearTimeout(timer); };
}
