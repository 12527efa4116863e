// Training and kernel benchmarks (issue 1 and the gemm roofline, TOOLCHAIN.md §3).
// - train: torchdiffeq's examples/ode_demo.py iteration (MLP 2→50→2 tanh with input cube, 20
//   windows of 10 points solved jointly, dopri5 default tolerances, L1 loss, RMSprop) per
//   gradient mode and dtype: ms per iteration measured as torchdiffeq's reference was (iterations
//   2-51 from the initialisation) and after continued training, NFE forward/backward per
//   iteration and peak core memory, beside torchdiffeq's figures from shared/reference.
// - gemm: GFLOP/s of a 256×256×256 product through a core field (linear 256→256 on a batch of
//   256, evaluated inside a fixed-step solve, so it includes the weight transpose and the bias)
//   against the simd128 roofline.
import { fitTrajectory, memoryStats, nn, odeint, random, resetPeakMemory } from '../dist/index.js';
import { round, summarize } from './stats.mjs';

const A = [[-0.1, 2], [-2, -0.1]];
const spiral = (_t, y, dy) => { const a = y[0] ** 3, b = y[1] ** 3; dy[0] = a * A[0][0] + b * A[1][0]; dy[1] = a * A[0][1] + b * A[1][1]; };

export function odeDemoField(dtype, seed = 0) {
  const field = nn.mlp({ dims: [2, 50, 2], activation: 'tanh', inputCube: true, seed: 0, dtype });
  // ode_demo.py: weights ~ N(0, 0.1²), biases 0 (W1[50][2], b1[50], W2[2][50], b2[2])
  const normal = random('normal', field.numParams, { seed, stream: 1e9 });
  const p = field.params;
  for (let i = 0; i < p.length; i++) p[i] = (i >= 100 && i < 150) || i >= 250 ? 0 : 0.1 * normal[i];
  return field;
}

/** Columns of the train table (run.mjs). */
export const TRAIN_COLUMNS = ['grad', 'dtype', 'msPerIter', 'nfeForward', 'nfeBackward', 'torchdiffeqMs', 'torchdiffeqNfe', 'speedupVsTorchdiffeqRef', 'msPerIterTrained', 'nfeForwardTrained', 'nfeBackwardTrained', 'peakCoreBytes'];

const sum = (a) => a.reduce((s, v) => s + v, 0);

/** The ode_demo iteration as torchdiffeq's examples/ode_demo.py runs it, for one grad mode. */
function odeDemoFit(t, truth, grad) {
  return (field, n, seed, onProgress) => fitTrajectory(field, { t, y: truth }, { iterations: n, batchTime: 10, batchSize: 20, lr: 1e-3, grad, seed, onProgress });
}

/** The spiral truth the iteration trains on (1000 points on [0, 25]). */
export function odeDemoData() {
  const t = Array.from({ length: 1000 }, (_, i) => (25 * i) / 999);
  return { t, truth: odeint(spiral, [2, 0], t).ys };
}

/**
 * torchdiffeq's protocol for the reference figures, after a JIT warm-up on a scratch field:
 * from the ode_demo initialisation, 1 warm-up iteration, then the median of 50 single-iteration
 * times (per-iteration time stamps through onProgress), over `blocks` fresh fields; NFE are
 * means over those iterations (torchdiffeq reports the median NFE). `seed` picks the initial
 * weights and the windows.
 */
export async function timeOdeDemo({ t, truth }, { dtype, grad, blocks, quick = false, seed = 0 }) {
  const fit = odeDemoFit(t, truth, grad);
  // JIT steady state first: V8 starts wasm in its baseline compiler and moves a function to
  // the optimising one only after it has run for a while, and this iteration is made of
  // ~100 short core calls. 20 warm-up iterations left part of the timed ones in baseline code
  // (f32 backprop: 0.45 ms median vs 0.19 ms after 2000; with --no-liftoff, 0.195).
  const warm = odeDemoField(dtype);
  await fit(warm, grad === 'adjoint' ? (quick ? 100 : 1000) : (quick ? 300 : 2000), 1000);
  warm.dispose();
  const perIter = [];
  let nfeF = 0, nfeB = 0, n = 0, peak = 0;
  for (let b = 0; b < blocks; b++) {
    const field = odeDemoField(dtype, seed);
    const live = memoryStats().liveBytes;
    resetPeakMemory();
    let last = 0;
    const h = await fit(field, 51, 100 * seed + b, (p) => {
      const now = performance.now();
      if (p.iteration >= 2) perIter.push(now - last);
      last = now;
    });
    peak = Math.max(peak, memoryStats().peakBytes - live);
    nfeF += sum(h.nfeForward.slice(1));
    nfeB += sum(h.nfeBackward.slice(1));
    n += 50;
    field.dispose();
  }
  const s = summarize(perIter);
  return { msPerIter: s.medianMs, minMs: s.minMs, maxMs: s.maxMs, iterations: s.reps, nfeForward: round(nfeF / n, 4), nfeBackward: round(nfeB / n, 4), peakCoreBytes: peak };
}

/**
 * One row per (grad mode, dtype), two protocols:
 * - torchdiffeq's (the reference figures): `timeOdeDemo`;
 * - continued training (the field keeps learning, its dynamics and NFE grow): mean time per
 *   iteration of timed blocks after a 30-100 iteration warm-up, median over blocks:
 *   msPerIterTrained and its NFE.
 */
export async function runTrain({ peer, quick = false }) {
  const data = odeDemoData();
  const rows = [];
  const blocks = quick ? 3 : 7;
  for (const dtype of ['float64', 'float32']) {
    for (const grad of ['backprop', 'checkpoint', 'adjoint']) {
      const fit = odeDemoFit(data.t, data.truth, grad);
      const r = await timeOdeDemo(data, { dtype, grad, blocks, quick });
      // continued training
      const iters = grad === 'adjoint' ? (quick ? 10 : 30) : (quick ? 30 : 100);
      const field = odeDemoField(dtype);
      await fit(field, iters, 1000);
      const times = [];
      let tF = 0, tB = 0, tn = 0;
      for (let b = 0; b < blocks; b++) {
        const t0 = performance.now();
        const h = await fit(field, iters, b);
        times.push((performance.now() - t0) / iters);
        tF += sum(h.nfeForward);
        tB += sum(h.nfeBackward);
        tn += iters;
      }
      field.dispose();
      const st = summarize(times);
      const ref = peer?.b_ode_demo_train_iter?.find((x) => x.dtype === dtype && x.threads === '1' && x.mode === (grad === 'adjoint' ? 'adjoint' : 'odeint'));
      rows.push({
        grad, dtype, ...r,
        torchdiffeqMs: ref?.iter_ms, torchdiffeqNfe: ref ? `${ref.nfe_fwd[0]}/${ref.nfe_bwd[0]}` : undefined,
        speedupVsTorchdiffeqRef: ref ? round(ref.iter_ms / r.msPerIter, 3) : undefined,
        msPerIterTrained: st.medianMs, blocksTrained: st.reps, itersPerBlockTrained: iters,
        nfeForwardTrained: round(tF / tn, 4), nfeBackwardTrained: round(tB / tn, 4),
      });
    }
  }
  return rows;
}

/** GFLOP/s of m = n = k = 256 products (median over repeated solves) vs the roofline. */
export function runGemm({ quick = false }) {
  const roofline = { float64: 29.6, float32: 60 };
  const size = 256, steps = 8;
  const rows = [];
  for (const dtype of ['float64', 'float32']) {
    const f = nn.sequential([nn.linear(size, size)], { seed: 1, dtype });
    // keep the state bounded over the steps: small weights
    const p = f.params;
    for (let i = 0; i < p.length; i++) p[i] *= 0.05;
    const y0 = random('uniform', size * size, { seed: 2, stream: 0 });
    const run = () => odeint(f, y0, [0, 1], { method: 'euler', stepSize: 1 / steps, dtype });
    for (let i = 0; i < 3; i++) run();
    const times = [];
    for (let i = 0; i < (quick ? 7 : 21); i++) {
      const t0 = performance.now();
      run();
      times.push(performance.now() - t0);
    }
    f.dispose();
    const s = summarize(times);
    const flops = 2 * size * size * size * steps;
    const gflops = flops / (s.minMs * 1e6);
    rows.push({
      kernel: `linear ${size}→${size}, batch ${size} (gemm ${size}³ + transpose + bias)`, dtype,
      medianMs: s.medianMs, minMs: s.minMs, gflopsAtMin: round(gflops, 3), gflopsAtMedian: round(flops / (s.medianMs * 1e6), 3),
      roofline: roofline[dtype], fractionOfRoofline: round(gflops / roofline[dtype], 3),
    });
  }
  return rows;
}
