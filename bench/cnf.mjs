// CNF training-iteration benchmark (issue 5): the setup of torchdiffeq's (c) row in
// shared/reference/torchdiffeq_peer.json — two circles, batch 512, [z, t] → 64 → 64 → 2 tanh
// (4546 parameters), exact trace, dopri5 rtol = atol = 1e-5, t from 10 to 0, adjoint, Adam
// lr 1e-3, base N(0, 0.1 I) — in float64 and float32, plus the Hutchinson estimator, with NFE
// forward/backward beside the timing medians.
import { CNF, nn, twoCircles } from '../dist/index.js';
import { summarize, round } from './stats.mjs';

/** The (c) row's model: `seed` sets the initial weights. */
export function cnfRowModel({ dtype, trace = 'exact', seed = 0 }) {
  const layers = [nn.concatLinear(2, 64), nn.tanh(), nn.linear(64, 64), nn.tanh(), nn.linear(64, 2)];
  return new CNF({ dim: 2, layers, t1: 10, baseStd: Math.sqrt(0.1), rtol: 1e-5, atol: 1e-5, trace, grad: 'adjoint', dtype, seed });
}

/**
 * The (c) row's data: "fresh samples each iteration" as a pool of n points that batches of 512
 * are drawn from; torchdiffeq's example uses make_circles without FFJORD's ×3 scaling, so scaled
 * back to radii 1 and 0.5.
 */
export function cnfRowData(n, seed = 0) {
  return twoCircles(n, 1 + seed).map((v) => v / 3);
}

/** torchdiffeq's one-thread (c) row of the reference file for this dtype. */
export function cnfPeerRow(peer, dtype) {
  return peer?.c_cnf2d_train_iter?.find((r) => r.model === 'mlp' && r.dtype === dtype && r.threads === '1' && r.mode === 'adjoint');
}

export async function timeTraining({ dtype, trace, shardSize, iterations, warmup, seed = 0 }) {
  const f = cnfRowModel({ dtype, trace, seed });
  const data = cnfRowData(512 * 64, seed);
  const times = [], nfeF = [], nfeB = [], loss = [];
  let last = performance.now();
  const h = await f.fit(data, {
    iterations: warmup + iterations, batchSize: 512, shardSize, lr: 1e-3, seed,
    onProgress: (p) => {
      const now = performance.now();
      if (p.iteration > warmup) { times.push(now - last); nfeF.push(p.nfeForward); nfeB.push(p.nfeBackward); }
      loss.push(p.loss);
      last = now;
    },
  });
  f.dispose();
  const shards = 512 / shardSize;
  const med = (a) => summarize(a).medianMs;
  return {
    dtype, trace, shardSize, shards, params: f.numParams, ...summarize(times),
    nfeForward: med(nfeF), nfeBackward: med(nfeB),
    nfeForwardPerShard: round(med(nfeF) / shards, 3), nfeBackwardPerShard: round(med(nfeB) / shards, 3),
    lossFirst: round(h.loss[0], 5), lossLast: round(h.loss[h.loss.length - 1], 5),
  };
}

export async function runCnf({ peer, quick = false } = {}) {
  const iterations = quick ? 3 : 20;
  const rows = [];
  for (const dtype of ['float64', 'float32']) {
    for (const [trace, shardSize] of [['exact', 512], ['exact', 64], ['hutchinson', 512]]) {
      if (quick && shardSize === 64) continue;
      const r = await timeTraining({ dtype, trace, shardSize, iterations, warmup: 2 });
      const peerRow = cnfPeerRow(peer, dtype);
      if (peerRow && trace === 'exact') {
        r.torchdiffeqMs = peerRow.iter_ms;
        r.torchdiffeqNfe = `${peerRow.nfe_fwd[0]}/${peerRow.nfe_bwd[0]}`;
        r.speedupVsTorchdiffeq = round(peerRow.iter_ms / r.medianMs, 3);
      }
      rows.push(r);
    }
  }
  return {
    problem: 'CNF training iteration: two circles, batch 512, [z,t]->64->64->2 tanh (4546 params), dopri5 rtol=atol=1e-5, t 10->0, adjoint (seminorm), Adam 1e-3, base N(0, 0.1 I)',
    note: 'NFE are summed over the shards of a batch (each shard is its own adaptive solve); per-shard values beside. Exact trace of this [lin, tanh, lin, tanh, lin] field in closed form, tr(W3 D2 W2 D1 W1) = Σ d2ᵀ(W2 ⊙ W3ᵀW1ᵀ)d1 (one batch gemm instead of D stacked tangents; crates/neurode-core/src/cnf/closed.rs); Hutchinson keeps the stacked tangent. Peer: torchdiffeq 1 thread (shared/reference, same machine kind, not this process).',
    rows,
  };
}

export const CNF_COLUMNS = ['dtype', 'trace', 'shardSize', 'medianMs', 'minMs', 'maxMs', 'nfeForwardPerShard', 'nfeBackwardPerShard', 'torchdiffeqMs', 'torchdiffeqNfe', 'speedupVsTorchdiffeq', 'lossFirst', 'lossLast'];
