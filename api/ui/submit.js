// The submit form: kind, optional name, the config as JSON. The server's field errors
// are listed next to the form, one per line, field name highlighted.
import { ApiError, sendJson } from "./api.js";
import { errorBox, h } from "./dom.js";

// The examples of POST /jobs in the OpenAPI document (public, like /docs).
async function examples() {
  const doc = await (await fetch("/openapi.json")).json();
  return doc.paths["/jobs"].post.requestBody.content["application/json"].examples || {};
}

export function submitView(root) {
  const kind = h("select", { name: "kind", id: "submit-kind" },
    ["train", "eval", "predict"].map((k) => h("option", { value: k }, k)));
  const name = h("input", { name: "name", id: "submit-name", placeholder: "optional", maxLength: 200 });
  const gpus = h("input", { name: "gpus", id: "submit-gpus", type: "number", min: 0, max: 64, placeholder: "from config" });
  const config = h("textarea", { name: "config", id: "submit-config", rows: 18, spellcheck: false,
                                 placeholder: '{"data": {"train": "synthetic", "val": "synthetic-val"}, "max_steps": 20}' });
  const errors = h("div", { id: "submit-errors", "aria-live": "polite" });
  const button = h("button", { type: "submit", id: "submit-button" }, "Submit");

  async function fillExample() {
    try {
      const example = (await examples())[kind.value];
      if (example) config.value = JSON.stringify(example.value.config, null, 2);
    } catch (err) {
      errors.replaceChildren(errorBox(new ApiError(0, `examples: ${err.message}`)));
    }
  }

  async function submit(event) {
    event.preventDefault();
    errors.replaceChildren();
    let parsed;
    try {
      parsed = JSON.parse(config.value || "{}");
    } catch (err) {
      errors.replaceChildren(errorBox(new ApiError(0, "config is not valid JSON", [`config: ${err.message}`])));
      return;
    }
    const body = { kind: kind.value, config: parsed };
    if (name.value.trim()) body.name = name.value.trim();
    if (gpus.value !== "") body.gpus = Number(gpus.value);
    button.disabled = true;
    try {
      const job = await sendJson("/jobs", "POST", body);
      location.hash = `#/jobs/${job.id}`;
    } catch (err) {
      errors.replaceChildren(errorBox(err));
    } finally {
      button.disabled = false;
    }
  }

  root.replaceChildren(
    h("h2", {}, "Submit a job"),
    h("div", { className: "split" },
      h("form", { id: "submit-form", onsubmit: submit },
        h("label", {}, "kind ", kind),
        h("label", {}, "name ", name),
        h("label", {}, "gpus ", gpus),
        h("label", { className: "block" }, "config (JSON) ", config),
        h("div", { className: "toolbar" }, button,
          h("button", { type: "button", id: "submit-example", onclick: fillExample }, "Fill example"))),
      h("aside", {}, h("h3", {}, "Server response"), errors)));
}
