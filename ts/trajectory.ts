/**
 * Fitting a vector field to observed trajectories (torchdiffeq's examples/ode_demo.py): each
 * iteration draws windows of `batchTime` points starting at random indices of a trajectory,
 * solves from each window's first point, and minimises the mean |prediction − observation|.
 */
import { invalid } from './errors.js';
import { type GradMode, GRAD_MODES } from './grad.js';
import { nn, VectorField } from './nn.js';
import { ADAPTIVE_METHODS, METHODS, type Method } from './odeint.js';
import { optim } from './optim.js';
import {
  fitSharded, fitOptions, random, registerShardKernel, shardRanges,
  type FitOptions, type History, type ShardJob, type ShardModel, type ShardResult,
} from './train.js';
import { callCore, core, Scratch } from './wasm.js';
import { finiteArray, oneOf, positiveInteger, timeGrid } from './validate.js';

export interface TrajectoryData {
  /** Observation times, length T (increasing). */
  t: ArrayLike<number>;
  /** Observations, T × dim (one trajectory), row-major. */
  y: ArrayLike<number>;
}

export interface TrajectoryFitOptions extends FitOptions {
  /** Points per window (default 10). */
  batchTime?: number;
  /** Windows per iteration (default 20). */
  batchSize?: number;
  /** Windows per shard (fixed: results do not depend on the pool). Default 32. */
  shardSize?: number;
  grad?: GradMode;
  method?: Method;
  rtol?: number;
  atol?: number;
  loss?: 'l1' | 'mse';
  optimizer?: 'rmsprop' | 'adam';
}

const KERNEL = 'trajectory-loss';

/**
 * One shard: windows solved jointly (torchdiffeq's batch semantics), loss and dL/dθ, in one core
 * call (forward, loss, backward; no dL/dts). The payload was validated by fitTrajectory.
 */
function trajectoryShard(model: ShardModel, p: Record<string, unknown>): ShardResult {
  const field = model as VectorField;
  const f32 = field.dtype === 'float32';
  const y0 = p.y0 as Float64Array, ts = p.ts as Float64Array, target = p.target as Float64Array;
  const np = field.numParams, n = y0.length, el = f32 ? 4 : 8;
  const handle = field.coreHandle();
  const x = core().exports;
  const s = new Scratch(x);
  try {
    // one block: [cfg 5][ts][info 7][grad np] f64, then [y0][target] in the field's dtype
    const nf64 = 5 + ts.length + 7 + np;
    const base = s.alloc(nf64 * 8 + (n + target.length) * el);
    const f = s.f64(base, nf64);
    f[0] = GRAD_MODES.indexOf(p.grad as GradMode);
    f[1] = METHODS.indexOf(p.method as Method);
    f[2] = p.rtol as number;
    f[3] = p.atol as number;
    f[4] = p.loss === 'l1' ? 0 : 1;
    f.set(ts, 5);
    const tsp = base + 5 * 8, infop = tsp + ts.length * 8, gp = infop + 7 * 8, y0p = gp + np * 8, tp = y0p + n * el;
    const v = f32 ? s.f32(y0p, n + target.length) : s.f64(y0p, n + target.length);
    v.set(y0);
    v.set(target, n);
    callCore((c) => c.nd_traj_shard(f32 ? 1 : 0, handle, base, y0p, n, tsp, ts.length, tp, gp, np, infop));
    const info = s.f64(infop, 7);
    return { loss: info[0]!, weight: p.weight as number, grad: s.f64(gp, np).slice(), nfeForward: info[1]!, nfeBackward: info[4]! };
  } finally {
    s.free();
  }
}

registerShardKernel(KERNEL, trajectoryShard, (json) => nn.fromJSON(json));

/** Fits `field` to the trajectory; returns the loss and NFE history. */
export async function fitTrajectory(field: VectorField, data: TrajectoryData, options: TrajectoryFitOptions = {}): Promise<History> {
  const o = fitOptions(options) as TrajectoryFitOptions;
  const t = timeGrid('data.t', data.t);
  const y = finiteArray('data.y', data.y);
  const d = field.dim;
  if (y.length !== t.length * d) throw invalid('data.y', `must hold t.length × dim = ${t.length * d} numbers, got ${y.length}`);
  const batchTime = positiveInteger('batchTime', o.batchTime ?? 10);
  if (batchTime < 2 || batchTime > t.length) throw invalid('batchTime', `must be from 2 to ${t.length}`);
  const batchSize = positiveInteger('batchSize', o.batchSize ?? 20);
  const shardSize = positiveInteger('shardSize', o.shardSize ?? 32);
  const grad = oneOf('grad', o.grad ?? 'backprop', GRAD_MODES);
  const method = oneOf('method', o.method ?? 'dopri5', METHODS);
  if (!ADAPTIVE_METHODS.includes(method)) throw invalid('method', 'must be adaptive for trajectory fitting');
  const loss = oneOf('loss', o.loss ?? 'l1', ['l1', 'mse'] as const);
  const iterations = o.iterations ?? o.epochs ?? 2000;
  const seed = o.seed ?? 0;
  const opt = oneOf('optimizer', o.optimizer ?? 'rmsprop', ['rmsprop', 'adam'] as const) === 'rmsprop'
    ? optim.rmsprop(field.params, { lr: o.lr ?? 1e-3 })
    : optim.adam(field.params, { lr: o.lr ?? 1e-3 });
  const ts = t.slice(0, batchTime).map((v) => v - t[0]!);
  // A worker builds its instance from `model` once per key and copies `params` in before every
  // shard, so one JSON per fit serves every iteration (toJSON per iteration showed in profiles).
  const model = field.toJSON();
  const modelKey = `trajectory:${field.digestArchitecture()}`;
  try {
    return await fitSharded(field, opt, o, iterations, 1, (it) => {
      // window starts: counter-based, keyed by (seed, iteration)
      const starts = random(batchSize <= t.length - batchTime ? 'choice' : 'integer', batchSize, { seed, stream: it, range: t.length - batchTime });
      const params = field.params.slice();
      return shardRanges(batchSize, shardSize).map(([a, b]): ShardJob => {
        const rows = b - a;
        const y0 = new Float64Array(rows * d);
        const target = new Float64Array(batchTime * rows * d);
        // element loops: a subarray per row and time cost more than the copies themselves
        for (let r = 0; r < rows; r++) {
          const s = starts[a + r]! * d;
          for (let j = 0; j < d; j++) y0[r * d + j] = y[s + j]!;
          for (let k = 0; k < batchTime; k++) {
            const src = s + k * d, dst = (k * rows + r) * d;
            for (let j = 0; j < d; j++) target[dst + j] = y[src + j]!;
          }
        }
        return { kernel: KERNEL, modelKey, model, params, payload: { y0, target, ts, grad, method, rtol: o.rtol ?? 1e-7, atol: o.atol ?? 1e-9, loss, weight: rows / batchSize } };
      });
    });
  } finally {
    opt.dispose();
  }
}
