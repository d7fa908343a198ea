// Small DOM helpers: h() builds elements (text is always set as text, never as HTML).
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node && key !== "list") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function number(value) {
  if (value === null || value === undefined) return "–";
  return Math.abs(value) >= 1e5 || (value !== 0 && Math.abs(value) < 1e-3)
    ? value.toExponential(3) : Number(value.toPrecision(5)).toString();
}

export function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

export function stateBadge(state) {
  return h("span", { className: `state state-${state}` }, state);
}

// One error as a line: "field: problem" with the field highlighted.
export function problemLine(text) {
  const match = /^([\w.[\]\-/ ]+?): (.*)$/s.exec(text);
  if (!match) return h("li", {}, text);
  return h("li", {}, h("code", { className: "field" }, match[1]), ": ", match[2]);
}

// The message of an ApiError (or any error) and its field problems, for an error box.
export function errorBox(err) {
  const problems = err.errors && err.errors.length ? err.errors : [];
  return h("div", { className: "error", role: "alert" },
    h("p", {}, err.detail ? `${err.status ? `${err.status}: ` : ""}${err.detail}` : String(err.message || err)),
    problems.length ? h("ul", { className: "problems" }, problems.map(problemLine)) : null);
}
