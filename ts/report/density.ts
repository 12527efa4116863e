/** SVG panels of 2-D densities and point clouds (CNF figures). Presentation only. */

export interface Panel {
  title: string;
  /** A density on an nx × ny grid (row i = x index, column j = y index), drawn as a heatmap. */
  density?: { values: ArrayLike<number>; nx: number; ny: number };
  /** Points (n × 2, row-major), drawn as dots. */
  points?: ArrayLike<number>;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Colour for u ∈ [0, 1]: white → blue → dark purple (linear interpolation between stops). */
function colour(u: number): string {
  const stops = [[255, 255, 255], [158, 202, 225], [49, 130, 189], [8, 48, 107], [40, 10, 60]];
  const x = Math.min(1, Math.max(0, u)) * (stops.length - 1);
  const k = Math.min(stops.length - 2, Math.floor(x));
  const f = x - k;
  const c = stops[k]!.map((a, i) => Math.round(a + (stops[k + 1]![i]! - a) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/**
 * Square panels side by side over the same extent [lo, hi]². Densities are scaled to their own
 * maximum; points are drawn on top.
 */
export function densityPanels(panels: Panel[], o: { lo: number; hi: number; size?: number; title?: string }): string {
  const S = o.size ?? 220, pad = 8, top = o.title ? 44 : 24;
  const W = panels.length * (S + pad) + pad, H = S + top + pad;
  const span = o.hi - o.lo;
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`, `<rect width="${W}" height="${H}" fill="white"/>`];
  if (o.title) parts.push(`<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">${esc(o.title)}</text>`);
  panels.forEach((p, k) => {
    const x0 = pad + k * (S + pad), y0 = top;
    parts.push(`<text x="${x0 + S / 2}" y="${top - 6}" text-anchor="middle">${esc(p.title)}</text>`);
    parts.push(`<g><rect x="${x0}" y="${y0}" width="${S}" height="${S}" fill="white" stroke="#888"/>`);
    if (p.density) {
      const { values, nx, ny } = p.density;
      let max = 0;
      for (let i = 0; i < values.length; i++) max = Math.max(max, values[i]!);
      const cw = S / nx, ch = S / ny;
      for (let i = 0; i < nx; i++) {
        for (let j = 0; j < ny; j++) {
          const v = max > 0 ? values[i * ny + j]! / max : 0;
          if (v < 0.01) continue;
          parts.push(`<rect x="${(x0 + i * cw).toFixed(2)}" y="${(y0 + S - (j + 1) * ch).toFixed(2)}" width="${(cw + 0.3).toFixed(2)}" height="${(ch + 0.3).toFixed(2)}" fill="${colour(v)}"/>`);
        }
      }
    }
    if (p.points) {
      const pts = p.points;
      for (let i = 0; i + 1 < pts.length; i += 2) {
        const px = x0 + ((pts[i]! - o.lo) / span) * S, py = y0 + S - ((pts[i + 1]! - o.lo) / span) * S;
        if (px < x0 || px > x0 + S || py < y0 || py > y0 + S) continue;
        parts.push(`<circle cx="${px.toFixed(1)}" cy="${py.toFixed(1)}" r="1.2" fill="#d62728" fill-opacity="0.6"/>`);
      }
    }
    parts.push('</g>');
  });
  parts.push('</svg>');
  return parts.join('\n');
}
