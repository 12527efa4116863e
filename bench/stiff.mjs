// Stiff problems (issue 10): neurode's kvaerno5 against SciPy's Radau and BDF on this machine.
// SciPy runs in a separate Python process (bench/stiff_scipy.py) with the same tolerances and
// finite-difference Jacobians; its figures are stored beside ours, labelled as SciPy's.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { odeint } from '../dist/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const ref = JSON.parse(readFileSync(path.join(here, '..', 'test', 'fixtures', 'stiff_reference.json'), 'utf8'));

const robertson = (_t, y, dy) => {
  dy[0] = -0.04 * y[0] + 1e4 * y[1] * y[2];
  dy[2] = 3e7 * y[1] * y[1];
  dy[1] = -dy[0] - dy[2];
};
const MU = 1000;
const vdp = (_t, y, dy) => { dy[0] = y[1]; dy[1] = MU * (1 - y[0] * y[0]) * y[1] - y[0]; };

const PROBLEMS = [
  { name: 'robertson', f: robertson, span: [0, 1e5], y0: [1, 0, 0], rtol: 1e-6, atol: [1e-12, 1e-16, 1e-12], truth: ref.robertson.ys.at(-1) },
  { name: 'vanDerPol1000', f: vdp, span: [0, 3000], y0: [2, 0], rtol: 1e-6, atol: 1e-8 },
];

function median(xs) { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; }

function relErr(truth, y) {
  if (!truth) return null;
  let m = 0;
  for (let i = 0; i < truth.length; i++) if (truth[i] !== 0) m = Math.max(m, Math.abs((y[i] - truth[i]) / truth[i]));
  return m;
}

function scipyFigures(reps) {
  const py = process.env.NEURODE_PYTHON ?? 'python3';
  const r = spawnSync(py, [path.join(here, 'stiff_scipy.py'), String(reps)], { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) return { unavailable: (r.stderr || String(r.error ?? 'failed')).trim().split('\n').at(-1) };
  return JSON.parse(r.stdout);
}

export function runStiff({ quick = false } = {}) {
  const reps = quick ? 3 : 7;
  const rows = [];
  for (const p of PROBLEMS) {
    const opts = { method: 'kvaerno5', rtol: p.rtol, atol: p.atol };
    let sol;
    const times = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      sol = odeint(p.f, p.y0, p.span, opts);
      times.push(performance.now() - t0);
    }
    const yEnd = Array.from(sol.ys.slice(p.y0.length));
    let dopri5;
    try {
      const d = odeint(p.f, p.y0, p.span, { method: 'dopri5', rtol: p.rtol, atol: p.atol, maxSteps: 100_000 });
      dopri5 = `${d.stats.steps} steps`;
    } catch (e) { dopri5 = e.code ?? String(e); }
    rows.push({ who: 'neurode kvaerno5', problem: p.name, nfe: sol.stats.nfe, newton: sol.stats.newton, jacobians: sol.stats.jacobians, steps: sol.stats.steps, rejected: sol.stats.rejected,
      relErrEnd: relErr(p.truth, yEnd), medianMs: +median(times).toFixed(2), minMs: +Math.min(...times).toFixed(2), maxMs: +Math.max(...times).toFixed(2), reps, dopri5WithMaxSteps1e5: dopri5 });
  }
  const scipy = scipyFigures(reps);
  if (scipy.rows) {
    for (const r of scipy.rows) {
      const truth = r.problem === 'robertson' ? ref.robertson.ys.at(-1) : null;
      rows.push({ who: `SciPy ${scipy.scipy} ${r.method} (separate process, FD Jacobian)`, problem: r.problem, nfe: r.nfe, jacobians: r.njev, lu: r.nlu, steps: r.steps,
        relErrEnd: relErr(truth, r.yEnd), medianMs: +r.medianMs.toFixed(2), minMs: +r.minMs.toFixed(2), maxMs: +r.maxMs.toFixed(2), reps: r.reps });
    }
  }
  return { rows, scipy: scipy.rows ? { version: scipy.scipy, python: scipy.python } : scipy, note: 'nfe: neurode counts f evaluations incl. Jacobian columns; SciPy nfev likewise includes its finite-difference Jacobian evaluations' };
}
