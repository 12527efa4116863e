// Timing helpers for benchmarks: repeated runs, median/min/max (the machine is shared and noisy).
export function timeIt(fn, { warmup = 3, reps = 21, minMs = 0 } = {}) {
  for (let i = 0; i < warmup; i++) fn();
  const times = [];
  const start = performance.now();
  while (times.length < reps || performance.now() - start < minMs) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
    if (times.length > 100000) break;
  }
  return summarize(times);
}

export function summarize(times) {
  const s = [...times].sort((a, b) => a - b);
  const median = s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { medianMs: round(median), minMs: round(s[0]), maxMs: round(s[s.length - 1]), reps: s.length };
}

export function round(x, digits = 4) {
  if (!Number.isFinite(x)) return x;
  const p = 10 ** (digits - 1 - Math.floor(Math.log10(Math.abs(x) || 1)));
  return Math.round(x * p) / p;
}

/** Interleaves two functions run by run so that machine noise hits both alike. */
export function timePair(a, b, opts = {}) {
  const reps = opts.reps ?? 41;
  for (let i = 0; i < (opts.warmup ?? 3); i++) { a(); b(); }
  const ta = [], tb = [];
  for (let i = 0; i < reps; i++) {
    let t0 = performance.now(); a(); ta.push(performance.now() - t0);
    t0 = performance.now(); b(); tb.push(performance.now() - t0);
  }
  return [summarize(ta), summarize(tb)];
}

export function table(rows, columns) {
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? '').length)));
  const line = (cells) => cells.map((c, i) => String(c ?? '').padEnd(widths[i])).join('  ');
  return [line(columns), line(widths.map((w) => '-'.repeat(w))), ...rows.map((r) => line(columns.map((c) => r[c])))].join('\n');
}
