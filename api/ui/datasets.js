// Datasets: the list with state and counts, a preview of each valid one's first video,
// and an upload (a tar/zip archive sent as the PUT body).
import { ApiError, blobUrl, getJson, request } from "./api.js";
import { errorBox, h } from "./dom.js";

const POLL_MS = 3000;
const FIRST_VIDEO_ID = 1; // native datasets number videos from 1 (the synthetic ones do)

function previewCell(dataset, urls) {
  const cell = h("td", { className: "preview" });
  if (dataset.state !== "valid") return cell;
  blobUrl(`/datasets/${encodeURIComponent(dataset.name)}/preview/${FIRST_VIDEO_ID}.png`)
    .then((url) => { urls.push(url); cell.append(h("img", { src: url, alt: `${dataset.name} preview` })); })
    .catch((err) => cell.append(h("span", { className: "muted" }, err.detail || err.message)));
  return cell;
}

export function datasetsView(root) {
  const body = h("tbody");
  const errors = h("div");
  const uploadErrors = h("div", { id: "upload-errors" });
  const name = h("input", { id: "upload-name", placeholder: "dataset name", required: true });
  const file = h("input", { id: "upload-file", type: "file", accept: ".tar,.tgz,.tar.gz,.tar.bz2,.tar.xz,.zip", required: true });
  const replace = h("input", { id: "upload-replace", type: "checkbox" });
  const urls = [];
  let timer = null, stopped = false, shown = "";

  async function refresh() {
    clearTimeout(timer);
    try {
      const list = await getJson("/datasets");
      if (stopped) return;
      const key = JSON.stringify(list.items.map((d) => [d.name, d.state, d.version]));
      if (key !== shown) { // redraw (and re-fetch previews) only when something changed
        shown = key;
        urls.splice(0).forEach((u) => URL.revokeObjectURL(u));
        body.replaceChildren(...list.items.map((d) => h("tr", { dataset: { dataset: d.name, state: d.state } },
          h("td", {}, d.name), h("td", {}, d.owner), h("td", {}, h("span", { className: `state state-${d.state}` }, d.state)),
          h("td", {}, d.videos ?? "–"), h("td", {}, d.frames ?? "–"), h("td", {}, d.phrases ?? "–"),
          h("td", {}, d.problems.length ? h("ul", { className: "problems" }, d.problems.map((p) => h("li", {}, p))) : ""),
          previewCell(d, urls))));
      }
      errors.replaceChildren();
      if (list.items.some((d) => d.state === "validating")) timer = setTimeout(refresh, POLL_MS);
    } catch (err) {
      if (!stopped) errors.replaceChildren(errorBox(err));
    }
  }

  async function upload(event) {
    event.preventDefault();
    uploadErrors.replaceChildren();
    const chosen = file.files[0];
    if (!chosen) {
      uploadErrors.replaceChildren(errorBox(new ApiError(0, "choose an archive", ["file: no file chosen"])));
      return;
    }
    try {
      const query = replace.checked ? "?replace=true" : "";
      await request(`/datasets/${encodeURIComponent(name.value.trim())}${query}`, {
        method: "PUT", body: chosen, headers: { "Content-Type": "application/octet-stream" } });
      uploadErrors.replaceChildren(h("p", { className: "ok" }, `uploaded ${chosen.name}; validating…`));
      refresh();
    } catch (err) {
      uploadErrors.replaceChildren(errorBox(err));
    }
  }

  root.replaceChildren(
    h("h2", {}, "Datasets"),
    errors,
    h("table", { className: "datasets", id: "datasets-table" },
      h("thead", {}, h("tr", {}, ["name", "owner", "state", "videos", "frames", "phrases", "problems", "preview"]
        .map((t) => h("th", {}, t)))),
      body),
    h("h3", {}, "Upload"),
    h("form", { id: "upload-form", className: "toolbar", onsubmit: upload },
      name, file, h("label", {}, replace, " replace"), h("button", { type: "submit" }, "Upload")),
    uploadErrors);
  refresh();
  return () => { stopped = true; clearTimeout(timer); urls.forEach((u) => URL.revokeObjectURL(u)); };
}
