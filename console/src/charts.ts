// Two small hand-drawn SVG charts (24 columns, a handful of bars): a chart
// library would be a hundred times the size of what it draws here.

import { h, s, fmt } from "./dom";

/// Vertical columns, one per value, with a text summary for screen readers.
export function columns(values: number[], labels: string[], title: string): HTMLElement {
  const w = 480, hgt = 120, pad = 18;
  const max = Math.max(1, ...values);
  const bw = (w - pad) / values.length;
  const svg = s("svg", { viewBox: `0 0 ${w} ${hgt + pad}`, class: "chart", role: "img", "aria-label": title });
  values.forEach((v, i) => {
    const bh = Math.round((v / max) * hgt);
    const rect = s("rect", { x: pad + i * bw + 1, y: hgt - bh, width: Math.max(1, bw - 2), height: bh, class: "bar" });
    rect.appendChild(s("title", {}, `${labels[i]}: ${fmt(v)}`));
    svg.appendChild(rect);
  });
  svg.appendChild(s("line", { x1: pad, y1: hgt, x2: w, y2: hgt, class: "axis" }));
  svg.appendChild(s("text", { x: 0, y: 10, class: "tick" }, fmt(max)));
  svg.appendChild(s("text", { x: pad, y: hgt + 14, class: "tick" }, labels[0] ?? ""));
  svg.appendChild(s("text", { x: w, y: hgt + 14, class: "tick", "text-anchor": "end" }, labels[labels.length - 1] ?? ""));
  return h("figure", {}, svg, h("figcaption", {}, title));
}

/// Horizontal bars with their labels and values.
export function bars(items: { label: string; value: number }[], title: string): HTMLElement {
  const max = Math.max(1, ...items.map((i) => i.value));
  return h(
    "figure",
    { class: "hbars", role: "img", "aria-label": title },
    items.map((i) =>
      h(
        "div",
        { class: "hbar" },
        h("span", { class: "hbar-label" }, i.label),
        h("span", { class: "hbar-track" }, h("span", { class: "hbar-fill", style: `width:${((i.value / max) * 100).toFixed(1)}%` })),
        h("span", { class: "hbar-value" }, fmt(i.value)),
      ),
    ),
    h("figcaption", {}, title),
  );
}

/// A share of a budget as a labelled gauge.
export function gauge(used: number, budget: number, label: string): HTMLElement {
  const share = Math.min(1, used / budget);
  const level = share >= 0.5 ? "high" : share >= 0.25 ? "mid" : "low";
  return h(
    "div",
    { class: "gauge" },
    h("span", {
      class: `gauge-track ${level}`,
      role: "meter",
      "aria-valuemin": 0,
      "aria-valuemax": budget,
      "aria-valuenow": used,
      "aria-label": label,
    }, h("span", { class: "gauge-fill", style: `width:${Math.max(share * 100, used > 0 ? 0.5 : 0).toFixed(3)}%` })),
    h("span", { class: "gauge-text" }, `${(share * 100).toFixed(share < 0.01 ? 4 : 2)} %`),
  );
}
