/**
 * The training loop shared by every model's fit(): iterations or epochs, progress, AbortSignal,
 * history, and deterministic data-parallel gradients (fixed-size shards by sample index, summed
 * in shard order in the core, so the result never depends on how many workers ran them).
 */
import { invalid } from './errors.js';
import { callCore, core, Scratch, seedParts } from './wasm.js';
import { positiveInteger, plainObject } from './validate.js';

export interface Progress {
  iteration: number;
  epoch: number;
  loss: number;
  nfeForward: number;
  nfeBackward: number;
  elapsedMs: number;
  [extra: string]: number;
}

export interface FitOptions {
  epochs?: number;
  iterations?: number;
  batchSize?: number;
  lr?: number;
  seed?: number;
  /** A WorkerPool: shards of each batch are computed on its workers (same bits as without). */
  pool?: unknown;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  /** Calls `save` with a Checkpoint every `every` iterations (and when training stops early). */
  checkpoint?: { every: number; save: (c: Checkpoint) => void | Promise<void> };
  /** Continues from a checkpoint: the result has the same bits as an uninterrupted run. */
  resume?: Checkpoint;
}

/**
 * Everything needed to continue training exactly: parameters, optimiser state and the iteration
 * count (random numbers are counter-based, keyed by seed and iteration, so no generator state).
 */
export interface Checkpoint {
  format: 'neurode.checkpoint';
  version: 1;
  /** Iterations completed. */
  iteration: number;
  params: number[];
  optimizer: number[];
  history: { loss: number[]; nfeForward: number[]; nfeBackward: number[] };
}

/** How fitLoop reads and restores a model's training state. */
export interface TrainState {
  params(): Float64Array | Float32Array;
  optimizerState(): Float64Array;
  restore(params: ArrayLike<number>, optimizer: ArrayLike<number>): void;
}

export interface History {
  loss: number[];
  nfeForward: number[];
  nfeBackward: number[];
  /** Other per-iteration figures a model reports (e.g. regularisers). */
  extra?: Record<string, number[]>;
  /** True when the signal stopped training early. */
  aborted?: boolean;
}

export interface StepResult {
  loss: number;
  nfeForward: number;
  nfeBackward: number;
  extra?: Record<string, number>;
}

const YIELD_MS = 4;

/** Lets timers, messages and abort events run between iterations (fast in Node and browsers). */
export function yieldToEventLoop(): Promise<void> {
  if (typeof setImmediate === 'function') return new Promise((r) => setImmediate(r));
  return new Promise((r) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => { ch.port1.close(); r(); };
    ch.port2.postMessage(0);
  });
}

export function fitOptions(o: unknown): FitOptions {
  const v = plainObject('options', o) as FitOptions;
  if (v.epochs !== undefined) positiveInteger('epochs', v.epochs);
  if (v.iterations !== undefined) positiveInteger('iterations', v.iterations);
  if (v.batchSize !== undefined) positiveInteger('batchSize', v.batchSize);
  if (v.lr !== undefined && !(typeof v.lr === 'number' && v.lr > 0 && Number.isFinite(v.lr))) throw invalid('lr', 'must be a finite number > 0');
  if (v.seed !== undefined && !(Number.isInteger(v.seed) && v.seed >= 0)) throw invalid('seed', 'must be a whole number >= 0');
  if (v.signal !== undefined && !(typeof v.signal === 'object' && v.signal !== null && 'aborted' in v.signal)) throw invalid('signal', 'must be an AbortSignal');
  if (v.onProgress !== undefined && typeof v.onProgress !== 'function') throw invalid('onProgress', 'must be a function');
  return v;
}

/**
 * Runs `iterations` steps. `step(i)` performs iteration i (forward, backward, optimiser update)
 * and returns its figures. Stops after the current iteration when `signal` aborts.
 */
export async function fitLoop(o: FitOptions, iterations: number, itersPerEpoch: number, step: (iteration: number) => Promise<StepResult> | StepResult, state?: TrainState): Promise<History> {
  const h: History = { loss: [], nfeForward: [], nfeBackward: [] };
  const t0 = Date.now();
  let first = 0;
  if (o.resume !== undefined) {
    if (!state) throw invalid('resume', 'this model cannot resume from checkpoints');
    const c = o.resume;
    if (c?.format !== 'neurode.checkpoint' || c.version !== 1 || !Number.isInteger(c.iteration) || c.iteration < 0) throw invalid('resume', 'is not a neurode checkpoint (format/version/iteration)');
    state.restore(c.params, c.optimizer);
    first = c.iteration;
    h.loss.push(...c.history.loss);
    h.nfeForward.push(...c.history.nfeForward);
    h.nfeBackward.push(...c.history.nfeBackward);
  }
  if (o.checkpoint !== undefined) {
    if (!state) throw invalid('checkpoint', 'this model cannot write checkpoints');
    positiveInteger('checkpoint.every', o.checkpoint.every);
    if (typeof o.checkpoint.save !== 'function') throw invalid('checkpoint.save', 'must be a function');
  }
  const save = async (iteration: number) => {
    if (!o.checkpoint || !state) return;
    await o.checkpoint.save({
      format: 'neurode.checkpoint', version: 1, iteration,
      params: Array.from(state.params()), optimizer: Array.from(state.optimizerState()),
      history: { loss: h.loss.slice(), nfeForward: h.nfeForward.slice(), nfeBackward: h.nfeBackward.slice() },
    });
  };
  let lastYield = t0;
  for (let it = first; it < iterations; it++) {
    if (o.signal?.aborted) {
      h.aborted = true;
      if (it > first) await save(it);
      break;
    }
    const r = await step(it);
    h.loss.push(r.loss);
    h.nfeForward.push(r.nfeForward);
    h.nfeBackward.push(r.nfeBackward);
    for (const [k, v] of Object.entries(r.extra ?? {})) ((h.extra ??= {})[k] ??= []).push(v);
    o.onProgress?.({ iteration: it + 1, epoch: Math.floor(it / itersPerEpoch) + 1, loss: r.loss, nfeForward: r.nfeForward, nfeBackward: r.nfeBackward, elapsedMs: Date.now() - t0, ...(r.extra ?? {}) });
    if (o.checkpoint && (it + 1) % o.checkpoint.every === 0) await save(it + 1);
    // Let timers, messages and abort events in every few milliseconds (a yield per iteration
    // costs more than a small model's whole iteration).
    const now = Date.now();
    if (now - lastYield >= YIELD_MS) {
      await yieldToEventLoop();
      lastYield = Date.now();
    }
  }
  return h;
}

/** Row ranges [start, end) of fixed-size shards covering a batch, in sample order. */
export function shardRanges(batch: number, shardSize: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let s = 0; s < batch; s += shardSize) out.push([s, Math.min(batch, s + shardSize)]);
  return out;
}

/** Sums shard gradients (each weighted) in the given order, in the core. */
export function sumInOrder(parts: Array<{ grad: Float64Array; weight: number }>, n: number): Float64Array {
  const x = core().exports;
  const s = new Scratch(x);
  try {
    const acc = s.alloc(n * 8);
    s.f64(acc, n).fill(0);
    const src = s.alloc(n * 8);
    for (const p of parts) {
      if (p.grad.length !== n) throw invalid('grad', `shard gradient has ${p.grad.length} entries, expected ${n}`);
      s.f64(src, n).set(p.grad);
      x.nd_sum_into(acc, src, n, p.weight);
    }
    return s.f64(acc, n).slice();
  } finally {
    s.free();
  }
}

export type RngKind = 'uniform' | 'normal' | 'rademacher' | 'integer' | 'choice';
const RNG_KIND: Record<RngKind, number> = { uniform: 0, normal: 1, rademacher: 2, integer: 3, choice: 4 };

/** Counter-based random numbers: value i = F(seed, stream, start + i), identical everywhere. */
export function random(kind: RngKind, n: number, o: { seed: number; stream: number; start?: number; range?: number }): Float64Array {
  const x = core().exports;
  const s = new Scratch(x);
  try {
    const out = s.alloc(Math.max(1, n) * 8);
    callCore((c) => c.nd_rng_fill(RNG_KIND[kind], ...seedParts(o.seed), o.stream, o.start ?? 0, n, o.range ?? 0, out));
    return s.f64(out, n).slice();
  } finally {
    s.free();
  }
}

/** Loss and its gradient w.r.t. the prediction, computed in the core. */
export function lossAndGrad(kind: 'l1' | 'mse', pred: Float64Array | Float32Array, target: ArrayLike<number>): { loss: number; grad: Float64Array | Float32Array } {
  const f32 = pred instanceof Float32Array;
  if (target.length !== pred.length) throw invalid('target', `must have ${pred.length} entries, got ${target.length}`);
  const x = core().exports;
  const s = new Scratch(x);
  try {
    const pp = s.put(pred, f32), tp = s.put(target, f32), gp = s.alloc(pred.length * (f32 ? 4 : 8)), lp = s.alloc(8);
    callCore((c) => c.nd_loss(kind === 'l1' ? 0 : 1, f32 ? 1 : 0, pp, tp, pred.length, gp, lp));
    return { loss: s.f64(lp, 1)[0]!, grad: f32 ? s.f32(gp, pred.length).slice() : s.f64(gp, pred.length).slice() };
  } finally {
    s.free();
  }
}

/**
 * Data-parallel gradients. A model's fit() splits each batch into fixed-size shards (by sample
 * index) and describes each as a ShardJob. A ShardKernel computes one shard's loss and gradient
 * from a model instance: the live model when there is no pool, or, in a worker, an instance
 * rebuilt from `model` (toJSON) with `params` copied in — the same code on the same bits, so
 * the result is identical. Gradients are then summed in shard order by sumInOrder().
 */
export interface ShardJob {
  /** Name of a registered ShardKernel. */
  kernel: string;
  /** Key under which a worker caches the model instance (e.g. 'cnf:' + a config hash). */
  modelKey: string;
  /** The model's toJSON() (workers build the instance from it once per key). */
  model: object;
  /** Current parameters (copied into the worker's instance before the kernel runs). */
  params: Float64Array | Float32Array;
  /** Shard data and per-iteration values (seed, iteration, shard index, …): plain data and typed arrays. */
  payload: Record<string, unknown>;
}

export interface ShardResult {
  loss: number;
  /** The shard's weight in the batch (e.g. rows / batch size), applied when summing. */
  weight: number;
  grad: Float64Array;
  nfeForward: number;
  nfeBackward: number;
  extra?: Record<string, number>;
}

/** A model instance as kernels see it: parameters can be replaced. */
export interface ShardModel {
  readonly params: Float64Array | Float32Array;
}

export type ShardKernel = (model: ShardModel, payload: Record<string, unknown>) => ShardResult;

interface KernelEntry { run: ShardKernel; build: (json: object) => ShardModel }
const kernels = new Map<string, KernelEntry>();

/** Registers a kernel and how to build its model from JSON (workers import the same modules). */
export function registerShardKernel(name: string, run: ShardKernel, build: (json: object) => ShardModel): void {
  kernels.set(name, { run, build });
}

export function shardKernel(name: string): KernelEntry {
  const k = kernels.get(name);
  if (!k) throw invalid('kernel', `no shard kernel named '${name}' is registered`);
  return k;
}

/** What a pool must offer to compute shards (implemented by WorkerPool). */
export interface ShardRunner {
  runShards(jobs: ShardJob[]): Promise<ShardResult[]>;
}

function isShardRunner(p: unknown): p is ShardRunner {
  return typeof p === 'object' && p !== null && typeof (p as ShardRunner).runShards === 'function';
}

/** Computes every shard: on the pool's workers when given, else here on the live model. */
export async function computeShards(jobs: ShardJob[], live: ShardModel, pool?: unknown): Promise<ShardResult[]> {
  if (pool !== undefined && pool !== null) {
    if (!isShardRunner(pool)) throw invalid('pool', 'must be a WorkerPool');
    return pool.runShards(jobs);
  }
  return jobs.map((j) => shardKernel(j.kernel).run(live, j.payload));
}

/** Sums shard results in order: total loss, gradient and NFE of the batch. */
export function combineShards(results: ShardResult[], numParams: number): StepResult & { grad: Float64Array } {
  const grad = sumInOrder(results.map((r) => ({ grad: r.grad, weight: r.weight })), numParams);
  const out: StepResult & { grad: Float64Array } = { grad, loss: 0, nfeForward: 0, nfeBackward: 0 };
  // Reported figures: a few IEEE additions in shard order (identical in every engine).
  for (const r of results) {
    out.loss += r.loss * r.weight;
    out.nfeForward += r.nfeForward;
    out.nfeBackward += r.nfeBackward;
    for (const [k, v] of Object.entries(r.extra ?? {})) (out.extra ??= {})[k] = (out.extra[k] ?? 0) + v * r.weight;
  }
  return out;
}

/** What fitSharded needs of a model and of its optimiser. */
interface ShardedModel extends ShardModel { readonly numParams: number }
interface StepOptimizer { step(grads: ArrayLike<number>): void; state: ArrayLike<number> }

/**
 * The training loop of every model's fit(): each iteration's shard jobs are computed (here or on
 * the pool), summed in shard order, and applied by the optimiser; checkpoints capture the
 * parameters and the optimiser state.
 */
export function fitSharded(model: ShardedModel, opt: StepOptimizer, o: FitOptions, iterations: number, itersPerEpoch: number, jobsFor: (iteration: number) => ShardJob[]): Promise<History> {
  return fitLoop(o, iterations, itersPerEpoch, async (it) => {
    const r = combineShards(await computeShards(jobsFor(it), model, o.pool), model.numParams);
    opt.step(r.grad);
    return r;
  }, {
    params: () => model.params,
    optimizerState: () => Float64Array.from(opt.state),
    restore: (p, st) => { model.params.set(p); opt.state = st; },
  });
}
