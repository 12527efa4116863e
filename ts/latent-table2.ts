/**
 * The paper's Table 2 on spirals (MODELS_PEER.md protocol): train a latent ODE and the RNN
 * baseline on 1000 noisy 100-point windows, then predict the 100 noise-free points after the
 * observation window of 100 held-out spirals from n ∈ {30, 50, 100} random observations, and
 * score the RMSE. Shared by examples/latent-ode and `neurode demo latent`.
 */
import { LatentODE, RNNBaseline, type TimeSeriesBatch } from './latent.js';
import { linePlot } from './report/svg.js';
import { spirals, type Spirals } from './spirals.js';
import { random } from './train.js';
import type { Dtype } from './odeint.js';

export interface Table2Options {
  /** Stage 1 (dense): iterations on all 100 points of every window, latent ODE and RNN. */
  iterations: number;
  rnnIterations: number;
  /** Stage 2 (sparse), both models: each window cut to a random subsampleMin..100 of its points
   *  per iteration (the latent ODE still scores all 100), so sparse test inputs are familiar. */
  sparseIterations: number;
  /** Stage 3, both models: sparse as stage 2 with the learning rate 0.01 → 0.001, to settle. */
  fineIterations: number;
  subsampleMin: number;
  seed: number;
  dtype: Dtype;
  obsStd: number;
  /** Evaluate on the test set every this many iterations (0 = only at the end). */
  evalEvery: number;
  counts: number[];
  log: (line: string) => void;
  progress?: (done: number, total: number, info: string) => void;
}

export interface Table2Result {
  protocol: Record<string, unknown>;
  latentODE: { rmse: number[]; observationWindowRmse: number[]; iterations: number; seconds: number; msPerIteration: number; nfeForwardMean: number; nfeBackwardMean: number; finalLoss: number; checkpoints: Array<{ iteration: number; rmse: number[] }> };
  rnn: { rmse: number[]; iterations: number; seconds: number; msPerIteration: number; finalLoss: number };
  paper: { rnn: number[]; latentODE: number[] };
  peerTorchdiffeq: { rnn: number[]; latentODE: number[] };
  svg: string;
  /** The trained models (toJSON), for re-evaluation. */
  models: { latentODE: object; rnn: object };
}

/** Test inputs with n random observations among the first 100 points of each test window. */
function subsampled(test: Spirals, n: number, seed: number): TimeSeriesBatch & { mask: Uint8Array } {
  const rows = test.observed.batch, T = test.observed.times.length / rows;
  const mask = new Uint8Array(rows * T);
  for (let b = 0; b < rows; b++) {
    const pick = random('choice', n, { seed, stream: 7_000_000 + n, start: b * 1024, range: T });
    for (const k of pick) mask[b * T + k] = 1;
  }
  return { times: test.observed.times, values: test.observed.values, mask, batch: rows };
}

function rmse(pred: Float64Array, truth: Float64Array, rows: number, Q: number, offset: number, total: number): number {
  let s = 0;
  for (let b = 0; b < rows; b++) for (let q = 0; q < Q; q++) for (let c = 0; c < 2; c++) {
    const e = pred[(b * Q + q) * 2 + c]! - truth[(b * total + offset + q) * 2 + c]!;
    s += e * e;
  }
  return (s / (rows * Q * 2)) ** 0.5;
}

/** The held-out spirals (seed + 1000) and their n-point encoder inputs, one per count. */
function testSet(seed: number, counts: number[]) {
  const test = spirals({ n: 100, ntotal: 500, nsample: 100, nextra: 100, noise: 0.1, seed: seed + 1000 });
  const tsAll = test.truth.times; // 200 window times
  const inputs = counts.map((n) => subsampled(test, n, seed));
  const tsExt = tsAll.slice(100);
  const extrapolation = (m: LatentODE) => inputs.map((inp) => rmse(m.predict(inp, tsExt, { samples: 0 }), test.truth.values, 100, 100, 100, 200));
  return { test, tsAll, inputs, tsExt, tsObs: tsAll.slice(0, 100), extrapolation };
}

/**
 * Scores trained models on the held-out spirals: extrapolation RMSE per count for both models,
 * the latent ODE's observation-window RMSE, and the Fig. 8 panels (first count).
 */
export function scoreTable2(latent: LatentODE, rnn: RNNBaseline, seed: number, counts: number[]): { latentRmse: number[]; windowRmse: number[]; rnnRmse: number[]; svg: string } {
  const { test, tsAll, inputs, tsExt, tsObs, extrapolation } = testSet(seed, counts);
  const latentRmse = extrapolation(latent);
  const windowRmse = inputs.map((inp) => rmse(latent.predict(inp, tsObs, { samples: 0 }), test.truth.values, 100, 100, 0, 200));
  const rnnRmse = inputs.map((inp) => rmse(rnn.predict(inp, tsExt), test.truth.values, 100, 100, 100, 200));
  // Fig. 8: observed points, reconstruction and extrapolation of a few test spirals
  const inp = inputs[0]!;
  const tsPlot = Float64Array.from({ length: 200 }, (_, i) => tsAll[0]! + ((tsAll[199]! - tsAll[0]!) * i) / 199);
  const pred = latent.predict(inp, tsPlot, { samples: 0 });
  const panels: string[] = [];
  for (const b of [0, 1, 2, 3]) {
    const obsX: number[] = [], obsY: number[] = [];
    for (let k = 0; k < 100; k++) if (inp.mask[b * 100 + k]) { obsX.push(test.observed.values[(b * 100 + k) * 2]!); obsY.push(test.observed.values[(b * 100 + k) * 2 + 1]!); }
    const col = (arr: Float64Array, off: number, stride: number, from: number, to: number, c: number) => Array.from({ length: to - from }, (_, i) => arr[(off + from + i) * stride + c]!);
    panels.push(linePlot([
      { label: 'truth', x: col(test.truth.values, b * 200, 2, 0, 200, 0), y: col(test.truth.values, b * 200, 2, 0, 200, 1), color: '#999', dashed: true },
      { label: 'reconstruction', x: col(pred, b * 200, 2, 0, 100, 0), y: col(pred, b * 200, 2, 0, 100, 1), color: '#1f77b4' },
      { label: 'extrapolation', x: col(pred, b * 200, 2, 99, 200, 0), y: col(pred, b * 200, 2, 99, 200, 1), color: '#d62728' },
      { label: `observed (n = ${counts[0]})`, x: obsX, y: obsY, color: '#2ca02c', points: true, line: false },
    ], { title: `test spiral ${b} (${test.clockwise[b] ? 'clockwise' : 'counter-clockwise'})`, equal: true, width: 420, height: 380 }));
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="840" height="760">` +
    panels.map((p, i) => p.replace('<svg ', `<svg x="${(i % 2) * 420}" y="${Math.floor(i / 2) * 380}" `)).join('') + '</svg>';
  return { latentRmse, windowRmse, rnnRmse, svg };
}

export async function runTable2(o: Table2Options): Promise<Table2Result> {
  const train = spirals({ n: 1000, ntotal: 500, nsample: 100, noise: 0.1, seed: o.seed });
  const evalLatent = testSet(o.seed, o.counts).extrapolation;
  const latent = new LatentODE({ obsDim: 2, latentDim: 4, hidden: 20, rnnHidden: 25, obsStd: o.obsStd, seed: o.seed, dtype: o.dtype });
  const rnn = new RNNBaseline({ obsDim: 2, hidden: 25, seed: o.seed, dtype: o.dtype });
  try {
    const checkpoints: Array<{ iteration: number; rmse: number[] }> = [];
    const latentTotal = o.iterations + o.sparseIterations + o.fineIterations, rnnTotal = o.rnnIterations + o.sparseIterations + o.fineIterations;
    const total = latentTotal + rnnTotal;
    const sparse = { min: o.subsampleMin, max: 100 };
    // the dense stage first (the dynamics form much faster from whole windows), then the sparse
    // ones; each stage is its own fit (fresh Adam state)
    const stages = (n: number) => [
      { iterations: n, lr: 0.01, subsample: undefined, from: 0 },
      { iterations: o.sparseIterations, lr: 0.01, subsample: sparse, from: n },
      { iterations: o.fineIterations, lr: 0.001, subsample: sparse, from: n + o.sparseIterations },
    ].filter((st) => st.iterations > 0);
    let t0 = performance.now();
    const h = { loss: [] as number[], nfeForward: [] as number[], nfeBackward: [] as number[] };
    for (const st of stages(o.iterations)) {
      const hs = await latent.fit(train.observed, {
        iterations: st.iterations, lr: st.lr, seed: o.seed, shardSize: 1000, subsample: st.subsample,
        onProgress: (p) => {
          const it = st.from + p.iteration;
          o.progress?.(it, total, `latent ODE loss ${p.loss.toFixed(1)}`);
          if (o.evalEvery > 0 && it % o.evalEvery === 0 && it < latentTotal) {
            const r = evalLatent(latent);
            checkpoints.push({ iteration: it, rmse: r });
            o.log(`latent ODE iteration ${it}${st.subsample ? ` (sparse, lr ${st.lr})` : ''}: loss ${p.loss.toFixed(2)}, nfe ${p.nfeForward}/${p.nfeBackward}, extrapolation RMSE ${r.map((v) => v.toFixed(4)).join(' / ')}, ${(p.elapsedMs / 1000).toFixed(0)} s`);
          }
        },
      });
      h.loss.push(...hs.loss); h.nfeForward.push(...hs.nfeForward); h.nfeBackward.push(...hs.nfeBackward);
    }
    const latentSec = (performance.now() - t0) / 1000;
    t0 = performance.now();
    const hr = { loss: [] as number[] };
    for (const st of stages(o.rnnIterations)) {
      const hs = await rnn.fit(train.observed, {
        iterations: st.iterations, lr: st.lr, seed: o.seed, shardSize: 1000, subsample: st.subsample,
        onProgress: (p) => {
          const it = st.from + p.iteration;
          o.progress?.(latentTotal + it, total, `RNN loss ${p.loss.toFixed(4)}`);
          if (o.evalEvery > 0 && it % o.evalEvery === 0) o.log(`RNN iteration ${it}${st.subsample ? ` (sparse, lr ${st.lr})` : ''}: loss ${p.loss.toFixed(4)}`);
        },
      });
      hr.loss.push(...hs.loss);
    }
    const rnnSec = (performance.now() - t0) / 1000;
    const { latentRmse, windowRmse, rnnRmse, svg } = scoreTable2(latent, rnn, o.seed, o.counts);
    checkpoints.push({ iteration: latentTotal, rmse: latentRmse });
    const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / Math.max(1, a.length);
    return {
      protocol: {
        train: '1000 spirals × 100 noisy points (noise 0.1), windows start in [100, 399] of 500 points on [0, 6π]',
        test: '100 spirals, 200-point windows starting in [100, 299]; encoder gets n random points of the first 100 (noisy); RMSE over the next 100 noise-free points',
        model: `latent 4, hidden 20, GRU encoder 25 (time gaps), obsStd ${o.obsStd}, Adam lr 0.01, full batch, dopri5 rtol 1e-7 atol 1e-9, backprop; ${o.dtype}`,
        rnn: 'GRU hidden 25 with time gaps, next-step MSE, Adam lr 0.01, full batch',
        training: `${o.iterations} (latent ODE) / ${o.rnnIterations} (RNN) iterations on whole windows, then ${o.sparseIterations} each on random ${o.subsampleMin}..100-point subsets, then ${o.fineIterations} more at lr 0.001 (fresh Adam state per stage)`,
        seed: o.seed,
      },
      latentODE: {
        rmse: latentRmse, observationWindowRmse: windowRmse, iterations: latentTotal, seconds: +latentSec.toFixed(1),
        msPerIteration: +((1000 * latentSec) / Math.max(1, latentTotal)).toFixed(1), nfeForwardMean: +mean(h.nfeForward).toFixed(1), nfeBackwardMean: +mean(h.nfeBackward).toFixed(1),
        finalLoss: h.loss[h.loss.length - 1]!, checkpoints,
      },
      rnn: { rmse: rnnRmse, iterations: rnnTotal, seconds: +rnnSec.toFixed(1), msPerIteration: +((1000 * rnnSec) / Math.max(1, rnnTotal)).toFixed(1), finalLoss: hr.loss[hr.loss.length - 1] ?? NaN },
      paper: { rnn: [0.3937, 0.3202, 0.1813], latentODE: [0.1642, 0.1502, 0.1346] },
      peerTorchdiffeq: { rnn: [0.498, 0.472, 0.437], latentODE: [0.247, 0.211, 0.199] },
      svg,
      models: { latentODE: latent.toJSON(), rnn: rnn.toJSON() },
    };
  } finally {
    latent.dispose();
    rnn.dispose();
  }
}
