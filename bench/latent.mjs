// Latent ODE benchmark (issue 6): one training iteration with torchdiffeq's examples/latent_ode.py
// defaults (1000 spirals × 100 observations, latent 4, hidden 20, RNN hidden 25, full batch as one
// joint solve, dopri5 rtol 1e-7 atol 1e-9, backprop through the solver), float64 and float32,
// against shared/reference/torchdiffeq_peer.json section d_latent_ode; plus the RNN baseline.
// Note: our encoder is a GRU (3 gates) where torchdiffeq's example uses a plain tanh RNN.
import { LatentODE, RNNBaseline, spirals } from '../dist/index.js';
import { summarize, round } from './stats.mjs';

export async function runLatent({ peer, quick = false }) {
  const data = spirals({ n: 1000, seed: 0 }).observed;
  const iters = quick ? 3 : 12;
  const rows = [];
  for (const dtype of ['float64', 'float32']) {
    const m = new LatentODE({ obsDim: 2, latentDim: 4, hidden: 20, rnnHidden: 25, obsStd: 0.3, seed: 0, dtype });
    const times = [], nfeF = [], nfeB = [];
    let last = performance.now();
    await m.fit(data, {
      iterations: iters + 1, lr: 0.01, shardSize: 1000,
      onProgress: (p) => {
        const now = performance.now();
        if (p.iteration > 1) { times.push(now - last); nfeF.push(p.nfeForward); nfeB.push(p.nfeBackward); } // first = warm-up
        last = now;
      },
    });
    m.dispose();
    const ref = peer.d_latent_ode.find((r) => r.dtype === dtype && r.threads === '1' && r.mode === 'odeint');
    const s = summarize(times);
    rows.push({
      model: 'latent ODE', dtype, ...s, nfeForward: nfeF.join('/'), nfeBackward: nfeB.join('/'),
      torchdiffeqMs: ref?.iter_ms_first20, torchdiffeqNfe: ref?.nfe_fwd_first20,
      speedupVsTorchdiffeq: ref ? round(ref.iter_ms_first20 / s.medianMs, 3) : undefined,
    });
  }
  const r = new RNNBaseline({ obsDim: 2, hidden: 25, seed: 0 });
  const times = [];
  let last = performance.now();
  await r.fit(data, { iterations: iters + 1, shardSize: 1000, onProgress: (p) => { const now = performance.now(); if (p.iteration > 1) times.push(now - last); last = now; } });
  r.dispose();
  rows.push({ model: 'RNN baseline', dtype: 'float64', ...summarize(times), torchdiffeqMs: 'peer RNN 28-30 (MODELS_PEER.md)' });
  return rows;
}
