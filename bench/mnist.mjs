// MNIST / ODE-Net benchmark (issue 4): time per training batch (batch 128) of the conv ODE-Net,
// with a worker pool when the package has one, and convolution throughput (GFLOP/s) of the
// core's kernels against the wasm SIMD peak of this CPU (TOOLCHAIN.md: ~29.6 f64 / ~60 f32).
import { readFileSync } from 'node:fs';
import * as neurode from '../dist/index.js';
import { summarize, round } from './stats.mjs';

const PEAK = { float64: 29.6, float32: 60 };

/** A private instance of the core, to call its convolution benchmark hook directly. */
async function convCore() {
  const bytes = readFileSync(new URL('../pkg/neurode.wasm', import.meta.url));
  const { instance } = await WebAssembly.instantiate(bytes, { env: { nd_js_rhs: () => 1, nd_js_vjp: () => 1, nd_panic: () => {} } });
  instance.exports.nd_init();
  return instance.exports;
}

const CONVS = [
  { name: 'ODE block ConcatConv2d 65→64 3×3 at 6×6', spec: [64, 64, 3, 1, 1, 1, 1, 128, 6, 6] },
  { name: 'downsampling Conv2d 64→64 4×4/2 26→13', spec: [64, 64, 4, 2, 1, 1, 0, 128, 26, 26] },
  { name: 'first Conv2d 1→64 3×3 28→26', spec: [1, 64, 3, 1, 0, 1, 0, 128, 28, 28] },
];

function convFlops([ci, co, k, stride, pad, , time, b, h, w]) {
  const oh = Math.floor((h + 2 * pad - k) / stride) + 1, ow = Math.floor((w + 2 * pad - k) / stride) + 1;
  return 2 * b * oh * ow * co * k * k * (ci + time);
}

export async function runConvThroughput({ quick = false } = {}) {
  const x = await convCore();
  const sp = x.nd_alloc(40);
  const rows = [];
  // mode 0 im2col + gemm forward, 2 backward (weights + input: twice the forward's flops), 1 direct loops
  for (const c of CONVS) {
    for (const dtype of ['float32', 'float64']) {
      for (const [mode, what, mult] of [[0, 'forward im2col+gemm', 1], [2, 'backward (dW + dx)', 2], [1, 'forward direct loops', 1]]) {
        if (mode === 1 && !c.name.startsWith('ODE')) continue;
        new Uint32Array(x.memory.buffer, sp, 10).set(c.spec);
        const reps = mode === 1 ? 1 : quick ? 2 : 5;
        const times = [];
        for (let r = 0; r < (quick ? 2 : 3); r++) {
          // the hook fills its inputs once per call: time two repetition counts, keep the difference
          let t0 = performance.now();
          if (x.nd_conv_run(dtype === 'float32' ? 1 : 0, sp, mode, 1) !== 0) throw new Error('nd_conv_run failed');
          const one = performance.now() - t0;
          t0 = performance.now();
          x.nd_conv_run(dtype === 'float32' ? 1 : 0, sp, mode, reps + 1);
          times.push((performance.now() - t0 - one) / reps);
        }
        const t = summarize(times);
        const gf = (mult * convFlops(c.spec)) / t.medianMs / 1e6;
        rows.push({ conv: c.name, dtype, what, gflop: round(mult * convFlops(c.spec) / 1e9, 3), ...t, gflops: round(gf, 3), peakGflops: PEAK[dtype], ofPeak: round(gf / PEAK[dtype], 2) });
      }
    }
  }
  return rows;
}

export async function runOdeNetBatch({ quick = false } = {}) {
  const data = await neurode.mnist();
  const x = data.train.x.subarray(0, 128 * 784), y = data.train.y.subarray(0, 128);
  const out = [];
  const pools = [undefined];
  if (typeof neurode.WorkerPool?.create === 'function') pools.push(await neurode.WorkerPool.create({ size: 2 }));
  for (const pool of pools) {
    const m = new neurode.ODENetClassifier({ inputShape: [1, 28, 28], classes: 10, arch: 'conv', seed: 0 });
    const times = [], nfe = [];
    let last = performance.now();
    await m.fit(x, y, { iterations: quick ? 2 : 4, batchSize: 128, shardSize: 64, optimizer: 'sgd', pool, onProgress: (p) => {
      const now = performance.now(); times.push(now - last); last = now; nfe.push([p.nfeForward, p.nfeBackward]);
    } });
    const step = m.lossGrad(x, y);
    out.push({ model: 'ODE-Net (conv, adjoint, dopri5 1e-3, float32)', workers: pool ? pool.size : 1, batch: 128, shards: 2, ...summarize(times), nfeForward: nfe.map((v) => v[0]), nfeBackward: nfe.map((v) => v[1]), memoryBytes: step.memoryBytes, depthBytes: step.depthBytes, params: m.numParams });
    m.dispose();
    if (pool) await pool.terminate();
  }
  if (pools.length === 1) out.push({ model: 'worker pool', note: 'not available in this build (WorkerPool not exported): 1-worker figure only' });
  return out;
}
