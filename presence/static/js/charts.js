// charts.js: the wallboard's small SVG charts, drawn here (no library, no
// CDN): columns per time interval (one or more series side by side, an
// optional target line) and horizontal bars by category. Every chart is an
// <svg role="img"> named by its title, each bar with its own title (value
// and label, a tooltip and what a screen reader can reach); colours come
// from CSS classes (series-0, series-1 ...), sizes from the viewBox, so the
// big-screen mode only restyles them.

const NS = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** The top of an axis of four steps: each step 1, 2 or 5 x 10^n (whole numbers
 *  only with `integer`), so the gridlines read 0, 5, 10, 15, 20. */
export function niceMax(max, integer = false) {
  if (!(max > 0)) return integer ? 4 : 1;
  const raw = max / 4;
  const p = 10 ** Math.floor(Math.log10(raw));
  let step = 10 * p;
  for (const m of [1, 2, 5]) {
    if (m * p >= raw) {
      step = m * p;
      break;
    }
  }
  return 4 * (integer ? Math.max(1, Math.ceil(step)) : step);
}

/**
 * Columns per interval.
 *   labels: the intervals' names (x axis; every `every`-th is written)
 *   series: [{name, values: [number|null]}], drawn side by side
 *   max: the y axis' top (default: a round number above the data)
 *   target: a value drawn as a dashed line (e.g. the service-level goal)
 *   format: a value as text (axis and tooltips)
 *   integer: counts (whole steps on the axis)
 */
export function columnChart(svg, { title, labels, series, max, target, format = String, every = 4, integer = false }) {
  const W = 480;
  const H = 210;
  const left = 52;
  const right = 8;
  const top = 12;
  const bottom = 34;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const dataMax = Math.max(0, ...series.flatMap((s) => s.values.filter((v) => typeof v === "number")));
  const yMax = max || niceMax(dataMax, integer);
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  svg.append(el("title", {}, title));
  const y = (v) => top + plotH - (Math.min(v, yMax) / yMax) * plotH;
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    svg.append(el("line", { class: "grid", x1: left, x2: W - right, y1: y(v), y2: y(v) }));
    svg.append(el("text", { class: "axis", x: left - 6, y: y(v) + 4, "text-anchor": "end" }, format(v)));
  }
  const n = Math.max(1, labels.length);
  const slot = plotW / n;
  const gap = Math.min(2, slot * 0.15);
  const barW = Math.max(1, (slot - gap * 2) / Math.max(1, series.length));
  // about eight labels across, on whole multiples of `every` (hours for quarter hours)
  const step = every * Math.max(1, Math.ceil(n / every / 8));
  labels.forEach((label, i) => {
    const x0 = left + i * slot + gap;
    series.forEach((s, k) => {
      const v = s.values[i];
      if (typeof v !== "number") return;
      const yy = y(v);
      const bar = el("rect", {
        class: `bar series-${k}`,
        x: x0 + k * barW,
        y: yy,
        width: Math.max(0.5, barW - 0.5),
        height: Math.max(0, top + plotH - yy),
        "data-i": i,
        "data-series": k,
        "data-v": v,
      });
      bar.append(el("title", {}, `${label} · ${s.name}: ${format(v)}`));
      svg.append(bar);
    });
    if (i % step === 0) {
      svg.append(el("text", { class: "axis", x: left + i * slot, y: H - bottom + 16 }, label));
    }
  });
  if (typeof target === "number") {
    svg.append(el("line", { class: "target", x1: left, x2: W - right, y1: y(target), y2: y(target) }));
  }
  svg.append(el("line", { class: "axis-line", x1: left, x2: W - right, y1: top + plotH, y2: top + plotH }));
  return svg;
}

/** Horizontal bars, largest first: rows [{label, value}], at most `limit`. */
export function barChart(svg, { title, rows, limit = 8, format = String }) {
  const shown = [...rows].sort((a, b) => b.value - a.value).slice(0, limit);
  const W = 360;
  const rowH = 26;
  const H = Math.max(1, shown.length) * rowH + 8;
  const labelW = 130;
  const max = niceMax(Math.max(0, ...shown.map((r) => r.value)), true);
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  svg.append(el("title", {}, title));
  shown.forEach((r, i) => {
    const yy = 4 + i * rowH;
    const w = ((W - labelW - 48) * r.value) / max;
    const label = el("text", { class: "label", x: labelW - 6, y: yy + 17, "text-anchor": "end" }, clip(r.label, 18));
    svg.append(label);
    fit(label, r.label, labelW - 10);
    const bar = el("rect", { class: "bar series-0", x: labelW, y: yy + 4, width: Math.max(1, w), height: rowH - 8, "data-label": r.label, "data-v": r.value });
    bar.append(el("title", {}, `${r.label}: ${format(r.value)}`));
    svg.append(bar);
    svg.append(el("text", { class: "value", x: labelW + w + 6, y: yy + 17 }, format(r.value)));
  });
  return svg;
}

/** Shorten a label until it fits `width` (user units) as drawn: 18 characters
 *  of Latin text fit, 18 of Japanese or the big screen's larger text ran off
 *  the chart's left edge. A chart not drawn yet measures 0 and keeps its 18. */
function fit(node, full, width) {
  let n = Math.min(18, [...String(full)].length);
  while (n > 4 && node.getComputedTextLength() > width) {
    n -= 1;
    node.textContent = clip(full, n);
  }
}

function clip(s, n) {
  const chars = [...String(s)];
  return chars.length > n ? `${chars.slice(0, n - 1).join("")}…` : chars.join("");
}
