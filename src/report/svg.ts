// Minimal SVG line charts: no dependencies, readable in any browser.

export interface Series {
  name: string;
  points: [number, number][];
}

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

function niceTicks(lo: number, hi: number, n = 4): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) out.push(+v.toPrecision(6));
  return out;
}

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);

/** One chart: several series against a shared x axis (steps). */
export function lineChart(title: string, series: Series[], width = 420, height = 220): string {
  const pad = { l: 48, r: 12, t: 24, b: 28 };
  const pts = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y));
  if (!pts.length) return `<svg width="${width}" height="${height}" xmlns="http://www.w3.org/2000/svg"><text x="8" y="16" font-size="13">${esc(title)}: no data</text></svg>`;
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (x0 === x1) x1 = x0 + 1;
  if (y0 === y1) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const X = (x: number) => pad.l + ((x - x0) / (x1 - x0)) * (width - pad.l - pad.r);
  const Y = (y: number) => height - pad.b - ((y - y0) / (y1 - y0)) * (height - pad.t - pad.b);
  const parts: string[] = [
    `<svg width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif">`,
    `<text x="${pad.l}" y="15" font-size="13" font-weight="bold">${esc(title)}</text>`,
  ];
  for (const t of niceTicks(y0, y1)) {
    parts.push(`<line x1="${pad.l}" x2="${width - pad.r}" y1="${Y(t)}" y2="${Y(t)}" stroke="#eee"/>`);
    parts.push(`<text x="${pad.l - 4}" y="${Y(t) + 4}" font-size="10" text-anchor="end">${t}</text>`);
  }
  for (const t of niceTicks(x0, x1, 5)) parts.push(`<text x="${X(t)}" y="${height - 10}" font-size="10" text-anchor="middle">${t}</text>`);
  parts.push(`<rect x="${pad.l}" y="${pad.t}" width="${width - pad.l - pad.r}" height="${height - pad.t - pad.b}" fill="none" stroke="#999"/>`);
  series.forEach((s, i) => {
    const p = s.points.filter(([, y]) => Number.isFinite(y));
    if (!p.length) return;
    const color = COLORS[i % COLORS.length];
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.6" points="${p.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(" ")}"/>`);
    if (p.length === 1) parts.push(`<circle cx="${X(p[0][0])}" cy="${Y(p[0][1])}" r="2.5" fill="${color}"/>`);
    parts.push(`<text x="${width - pad.r - 4}" y="${pad.t + 12 + 12 * i}" font-size="10" text-anchor="end" fill="${color}">${esc(s.name)}</text>`);
  });
  parts.push("</svg>");
  return parts.join("");
}
