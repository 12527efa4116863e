// Plain ODE benchmark (issue 2): the problems of shared/reference/torchdiffeq_peer.json, each
// method and tolerance, float64 and float32, with NFE and errors beside timing medians; the
// spiral also against a plain-JavaScript dopri5 run in the same process.
import { odeint } from '../dist/index.js';
import { dopri5 } from './plain-js-dopri5.mjs';
import { timeIt, timePair, round } from './stats.mjs';

const A = [[-0.1, 2], [-2, -0.1]];
const spiral = (_t, y, dy) => { const a = y[0] ** 3, b = y[1] ** 3; dy[0] = a * A[0][0] + b * A[1][0]; dy[1] = a * A[0][1] + b * A[1][1]; };
const vdp = (_t, y, dy) => { dy[0] = y[1]; dy[1] = (1 - y[0] * y[0]) * y[1] - y[0]; };
const decay = (_t, y, dy) => { dy[0] = -y[0]; };

export function plainProblems(truth) {
  return {
    exp_decay: { f: decay, y0: [1], t: [0, 10], last: [Math.exp(-10)] },
    spiral: { f: spiral, y0: [2, 0], t: truth.t, last: truth.y[truth.y.length - 1], all: truth.y.flat() },
    vdp_mu1: { f: vdp, y0: [2, 0], t: [0, 20], last: truth.vdp_mu1.y[truth.vdp_mu1.y.length - 1] },
  };
}

const maxAbs = (a, b) => { let m = 0; for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i] - b[i])); return m; };

export function runPlain({ truth, peer, quick = false }) {
  const problems = plainProblems(truth);
  const peerRows = peer.a_plain_ode;
  const rows = [];
  for (const [name, p] of Object.entries(problems)) {
    for (const method of ['dopri5', 'tsit5', 'bosh3', 'dopri8']) {
      for (const tol of [1e-3, 1e-6, 1e-9]) {
        for (const dtype of ['float64', 'float32']) {
          if (dtype === 'float32' && tol < 1e-6) continue; // below float32 resolution
          const opts = { method, rtol: tol, atol: tol, dtype };
          const sol = odeint(p.f, p.y0, p.t, opts);
          const n = p.y0.length;
          const timing = timeIt(() => odeint(p.f, p.y0, p.t, opts), { reps: quick ? 5 : 21 });
          const td = peerRows.find((r) => r.problem === name && r.method === method && r.tol === tol && r.lib === 'torchdiffeq');
          const row = {
            problem: name, method, tol, dtype, nfe: sol.stats.nfe, steps: sol.stats.steps, rejected: sol.stats.rejected,
            finalErr: round(maxAbs(sol.ys.subarray(sol.ys.length - n), p.last), 3),
            ...(p.all ? { maxErrAllOutputs: round(maxAbs(sol.ys, p.all), 3) } : {}),
            ...timing,
            torchdiffeqNfe: td?.nfe, torchdiffeqMs: td?.ms_median_1T,
          };
          if (td && dtype === 'float64') row.speedupVsTorchdiffeqRef = round(td.ms_median_1T / timing.medianMs, 3);
          rows.push(row);
        }
      }
    }
  }
  return rows;
}

/** The headline: spiral at 1e-9 (1000 outputs), neurode vs plain JS in this process. */
export function runSpiralHeadline({ truth, peer, quick = false }) {
  const p = plainProblems(truth).spiral;
  const ours = odeint(p.f, p.y0, p.t, { rtol: 1e-9, atol: 1e-9 });
  const js = dopri5(p.f, p.y0, p.t, 1e-9, 1e-9);
  const [tOurs, tJs] = timePair(() => odeint(p.f, p.y0, p.t, { rtol: 1e-9, atol: 1e-9 }), () => dopri5(p.f, p.y0, p.t, 1e-9, 1e-9), { reps: quick ? 11 : 101 });
  const rk45 = peer.a_plain_ode.find((r) => r.problem === 'spiral' && r.tol === 1e-9 && r.method === 'scipy.RK45');
  const td = peer.a_plain_ode.find((r) => r.problem === 'spiral' && r.tol === 1e-9 && r.method === 'dopri5' && r.lib === 'torchdiffeq');
  return {
    problem: 'spiral, dopri5, rtol = atol = 1e-9, 1000 outputs, JavaScript right-hand side',
    neurode: { nfe: ours.stats.nfe, maxErr: round(maxAbs(ours.ys, p.all), 3), ...tOurs },
    plainJs: { nfe: js.nfe, maxErr: round(maxAbs(js.ys, p.all), 3), ...tJs },
    ratioPlainJsOverNeurode: round(tJs.medianMs / tOurs.medianMs, 3),
    reference: {
      scipyRK45: { ms: rk45.ms_median_1T, nfe: rk45.nfe, speedup: round(rk45.ms_median_1T / tOurs.medianMs, 3), target: 25 },
      torchdiffeq: { ms: td.ms_median_1T, nfe: td.nfe, speedup: round(td.ms_median_1T / tOurs.medianMs, 3), target: 150, nfeDiff: round((ours.stats.nfe - td.nfe) / td.nfe, 3) },
      note: 'peer times come from shared/reference (same machine kind, not this process)',
    },
  };
}
