/** Minimal SVG line/scatter plots for reports (no native dependencies). Presentation only. */

export interface Series {
  label: string;
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  color?: string;
  dashed?: boolean;
  points?: boolean;
  /** Join the points (default: yes, unless there are 50 or more markers); false for scattered samples. */
  line?: boolean;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];

function extent(values: ArrayLike<number>[], padding = 0.05): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) for (let i = 0; i < v.length; i++) { const x = v[i]!; if (Number.isFinite(x)) { if (x < lo) lo = x; if (x > hi) hi = x; } }
  if (!(hi > lo)) { lo -= 1; hi += 1; }
  const pad = (hi - lo) * padding;
  return [lo - pad, hi + pad];
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (v: number) => (Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : String(+v.toFixed(2)));

/** A plot of several series in one frame; `equal` keeps the aspect ratio 1 (phase portraits). */
export function linePlot(series: Series[], o: { title: string; xlabel?: string; ylabel?: string; width?: number; height?: number; equal?: boolean; logY?: boolean }): string {
  const W = o.width ?? 520, H = o.height ?? 420, L = 60, R = 20, T = 36, B = 48;
  const ys = series.map((s) => (o.logY ? Array.from(s.y, (v) => Math.log10(v)) : s.y));
  let [x0, x1] = extent(series.map((s) => s.x), o.equal ? 0.05 : 0);
  let [y0, y1] = extent(ys);
  if (o.equal) {
    const span = Math.max(x1 - x0, y1 - y0);
    const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
    [x0, x1, y0, y1] = [cx - span / 2, cx + span / 2, cy - span / 2, cy + span / 2];
  }
  const px = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const py = (y: number) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(o.title)}</text>`);
  parts.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#888"/>`);
  for (let i = 0; i <= 4; i++) {
    const xv = x0 + ((x1 - x0) * i) / 4;
    parts.push(`<text x="${px(xv)}" y="${H - B + 16}" text-anchor="middle">${fmt(xv)}</text>`);
  }
  // y ticks: decades on a log axis, five even steps otherwise
  const yticks: number[] = [];
  if (o.logY) for (let d = Math.ceil(y0); d <= Math.floor(y1); d++) yticks.push(d);
  if (yticks.length < 2) for (let i = 0; i <= 4; i++) yticks.push(y0 + ((y1 - y0) * i) / 4);
  for (const yv of yticks) {
    parts.push(`<text x="${L - 6}" y="${py(yv) + 4}" text-anchor="end">${o.logY ? (Number.isInteger(yv) ? '1e' + yv : fmt(10 ** yv)) : fmt(yv)}</text>`);
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${py(yv)}" y2="${py(yv)}" stroke="#eee"/>`);
  }
  if (o.xlabel) parts.push(`<text x="${(L + W - R) / 2}" y="${H - 10}" text-anchor="middle">${esc(o.xlabel)}</text>`);
  if (o.ylabel) parts.push(`<text x="14" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 14 ${(T + H - B) / 2})">${esc(o.ylabel)}</text>`);
  series.forEach((s, k) => {
    const color = s.color ?? PALETTE[k % PALETTE.length]!;
    const yv = ys[k]!;
    if (s.points) {
      for (let i = 0; i < s.x.length; i++) parts.push(`<circle cx="${px(s.x[i]!).toFixed(1)}" cy="${py(yv[i]!).toFixed(1)}" r="3.5" fill="${color}"/>`);
    }
    if (s.line ?? (!s.points || s.x.length < 50)) {
      let d = '';
      for (let i = 0; i < s.x.length; i++) d += `${i ? 'L' : 'M'}${px(s.x[i]!).toFixed(1)},${py(yv[i]!).toFixed(1)}`;
      parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.5"${s.dashed ? ' stroke-dasharray="5,3"' : ''}/>`);
    }
    parts.push(`<rect x="${L + 10}" y="${T + 8 + 16 * k}" width="12" height="3" fill="${color}"/><text x="${L + 28}" y="${T + 13 + 16 * k}">${esc(s.label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
