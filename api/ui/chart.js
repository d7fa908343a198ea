// A line chart as inline SVG: one series of {step, value} points, min/max labels on both
// axes. data-points says how many points are plotted (the browser test counts them).
const SVG = "http://www.w3.org/2000/svg";
const W = 640, H = 220, PAD = { left: 56, right: 12, top: 12, bottom: 28 };

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmt(value) {
  const abs = Math.abs(value);
  if (abs !== 0 && (abs >= 1e5 || abs < 1e-3)) return value.toExponential(2);
  return Number(value.toPrecision(4)).toString();
}

export function renderChart(svg, points, label) {
  const shown = points.filter((p) => p.value !== null && Number.isFinite(p.value));
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${label}: ${shown.length} points`);
  svg.dataset.points = String(shown.length);
  svg.dataset.series = label;
  const x0 = PAD.left, x1 = W - PAD.right, y0 = H - PAD.bottom, y1 = PAD.top;
  svg.append(el("rect", { x: x0, y: y1, width: x1 - x0, height: y0 - y1, class: "plot" }));
  if (!shown.length) {
    svg.append(el("text", { x: (x0 + x1) / 2, y: (y0 + y1) / 2, class: "empty" }, `${label}: no points yet`));
    return;
  }
  const steps = shown.map((p) => p.step), values = shown.map((p) => p.value);
  let [sMin, sMax] = [Math.min(...steps), Math.max(...steps)];
  let [vMin, vMax] = [Math.min(...values), Math.max(...values)];
  if (sMin === sMax) { sMin -= 1; sMax += 1; }
  if (vMin === vMax) { const d = Math.abs(vMin) * 0.05 || 1; vMin -= d; vMax += d; }
  const x = (s) => x0 + ((s - sMin) / (sMax - sMin)) * (x1 - x0);
  const y = (v) => y0 - ((v - vMin) / (vMax - vMin)) * (y0 - y1);
  const path = shown.map((p) => `${x(p.step).toFixed(1)},${y(p.value).toFixed(1)}`).join(" ");
  svg.append(el("polyline", { points: path, class: "line" }));
  if (shown.length < 60) {
    for (const p of shown) svg.append(el("circle", { cx: x(p.step), cy: y(p.value), r: 2.5, class: "dot" }));
  }
  svg.append(
    el("text", { x: x0 - 6, y: y1 + 10, class: "tick end" }, fmt(vMax)),
    el("text", { x: x0 - 6, y: y0, class: "tick end" }, fmt(vMin)),
    el("text", { x: x0, y: H - 8, class: "tick" }, `step ${sMin}`),
    el("text", { x: x1, y: H - 8, class: "tick end" }, `step ${sMax}`),
    el("text", { x: x0 + 8, y: y1 + 16, class: "title" }, `${label} (last ${fmt(values.at(-1))})`),
  );
}
