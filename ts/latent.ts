/**
 * Latent ODE for irregularly sampled time series (API.md §5; paper Section 5) and the RNN
 * baseline of Table 2. The numerics live in the core: one call computes a shard's negative ELBO
 * and gradient (encoder, reparameterised z₀, joint latent solve with backprop/adjoint/checkpoint,
 * decoder, KL, optional Poisson process term); TypeScript validates, splits batches into
 * fixed-size shards (ShardJobs, summed in order) and runs the optimiser.
 */
import { invalid, NeurodeError } from './errors.js';
import { GRAD_MODES, type GradMode } from './grad.js';
import { CoreHandle } from './handles.js';
import { fnv1a, paramDigest } from './nn.js';
import { ADAPTIVE_METHODS, METHODS, type Dtype, type Method } from './odeint.js';
import { optim, registerParamsOwner } from './optim.js';
import {
  fitSharded, fitOptions, random, registerShardKernel, shardRanges,
  type FitOptions, type History, type ShardJob, type ShardModel, type ShardResult,
} from './train.js';
import { callCore, core, Scratch, seedParts } from './wasm.js';
import { finiteArray, isArrayLike, oneOf, plainObject, positiveInteger, positiveNumber, timeGrid } from './validate.js';

/**
 * Time series: `times` batch × T (or T, shared by every row), `values` batch × T × obsDim,
 * `mask` batch × T (1 = observed; default all). Give `batch` when times are per row.
 */
export interface TimeSeriesBatch {
  times: Float64Array | ArrayLike<number>;
  values: Float64Array | ArrayLike<number>;
  mask?: Uint8Array | ArrayLike<number>;
  batch?: number;
}

/** A validated batch in the core's layout. */
export interface PackedSeries {
  batch: number;
  slots: number;
  times: Float64Array;
  values: Float64Array;
  mask: Uint8Array;
}

/** Checks and expands a TimeSeriesBatch (shared times are repeated per row). */
export function packSeries(data: unknown, obsDim: number, name = 'data'): PackedSeries {
  const d = plainObject(name, data) as Partial<TimeSeriesBatch>;
  if (data === undefined) throw invalid(name, 'is required');
  const times = finiteArray(`${name}.times`, d.times);
  const values = finiteArray(`${name}.values`, d.values);
  let batch: number, slots: number;
  if (d.batch !== undefined) {
    batch = positiveInteger(`${name}.batch`, d.batch);
    if (values.length % (batch * obsDim) !== 0) throw invalid(`${name}.values`, `length ${values.length} is not batch × T × obsDim (batch ${batch}, obsDim ${obsDim})`);
    slots = values.length / (batch * obsDim);
    if (times.length !== slots && times.length !== batch * slots) throw invalid(`${name}.times`, `must hold T = ${slots} (shared) or batch × T = ${batch * slots} times, got ${times.length}`);
  } else {
    slots = times.length;
    if (values.length % (slots * obsDim) !== 0) throw invalid(`${name}.values`, `length ${values.length} is not a multiple of T × obsDim = ${slots * obsDim} (give ${name}.batch when times are per row)`);
    batch = values.length / (slots * obsDim);
  }
  if (slots === 0 || batch === 0) throw invalid(`${name}.values`, 'must hold at least one observation');
  const full = times.length === slots && batch > 1 ? new Float64Array(batch * slots) : times;
  if (full !== times) for (let b = 0; b < batch; b++) full.set(times, b * slots);
  let mask: Uint8Array;
  if (d.mask === undefined) mask = new Uint8Array(batch * slots).fill(1);
  else {
    if (!isArrayLike(d.mask) || d.mask.length !== batch * slots) throw invalid(`${name}.mask`, `must hold batch × T = ${batch * slots} entries of 0/1`);
    mask = new Uint8Array(batch * slots);
    for (let i = 0; i < mask.length; i++) {
      const v = Number(d.mask[i]);
      if (v !== 0 && v !== 1) throw invalid(`${name}.mask`, `element ${i} must be 0 or 1`);
      mask[i] = v;
    }
  }
  for (let b = 0; b < batch; b++) {
    let last = -Infinity;
    for (let k = 0; k < slots; k++) {
      if (!mask[b * slots + k]) continue;
      const t = full[b * slots + k]!;
      if (!(t > last)) throw invalid(`${name}.times`, `the observed times of row ${b} must be strictly increasing (slot ${k}: ${t} after ${last})`);
      last = t;
    }
  }
  return { batch, slots, times: full, values, mask };
}

/** The rows `rows` of a packed batch (a shard or a minibatch). */
function takeRows(s: PackedSeries, rows: ArrayLike<number>, obsDim: number): PackedSeries {
  const n = rows.length, T = s.slots;
  const out: PackedSeries = { batch: n, slots: T, times: new Float64Array(n * T), values: new Float64Array(n * T * obsDim), mask: new Uint8Array(n * T) };
  for (let i = 0; i < n; i++) {
    const r = rows[i]!;
    out.times.set(s.times.subarray(r * T, (r + 1) * T), i * T);
    out.values.set(s.values.subarray(r * T * obsDim, (r + 1) * T * obsDim), i * T * obsDim);
    out.mask.set(s.mask.subarray(r * T, (r + 1) * T), i * T);
  }
  return out;
}

function checkSeed(name: string, v: unknown): number {
  if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > Number.MAX_SAFE_INTEGER) throw invalid(name, `must be a whole number from 0 to 2^53 − 1 (got ${String(v)})`);
  return v as number;
}

/** Copies a packed batch into core memory; returns the addresses. */
function putSeries(s: Scratch, p: PackedSeries, x: ReturnType<typeof core>['exports']): { t: number; v: number; m: number } {
  const t = s.put(p.times), v = s.put(p.values);
  const m = s.alloc(Math.max(1, p.mask.length));
  new Uint8Array(x.memory.buffer, m, p.mask.length).set(p.mask);
  return { t, v, m };
}

/** A model whose parameters live in the core (latent ODE, RNN baseline). */
abstract class CoreModel implements ShardModel {
  protected readonly h: CoreHandle;
  readonly numParams: number;
  readonly dtype: Dtype;
  private view: Float64Array | Float32Array | null = null;

  protected constructor(handle: number, what: string, dtype: Dtype) {
    this.h = new CoreHandle(handle, what);
    this.dtype = dtype;
    const x = core().exports;
    const s = new Scratch(x);
    try {
      const p = s.alloc(24);
      x.nd_latent_info(handle, p);
      this.numParams = s.f64(p, 3)[0]!;
    } finally {
      s.free();
    }
  }

  /** A live view of the parameters in the core (recreated if the core's memory grew). */
  get params(): Float64Array | Float32Array {
    const h = this.h.get();
    const x = core().exports;
    if (this.view === null || this.view.buffer !== x.memory.buffer) {
      const s = new Scratch(x);
      let ptr: number;
      try {
        const p = s.alloc(24);
        x.nd_latent_info(h, p);
        ptr = s.f64(p, 3)[2]!;
      } finally {
        s.free();
      }
      this.view = this.dtype === 'float32' ? new Float32Array(x.memory.buffer, ptr, this.numParams) : new Float64Array(x.memory.buffer, ptr, this.numParams);
      registerParamsOwner(this.view, { isDisposed: () => this.h.isDisposed });
    }
    return this.view;
  }

  /** FNV-1a digest of the parameter bytes (determinism checks). */
  digest(): string {
    return paramDigest(this.params);
  }

  dispose(): void {
    this.h.dispose();
    this.view = null;
  }
}

export type Encoder = 'rnn' | 'odernn';

export interface LatentODEOptions {
  obsDim: number;
  latentDim: number;
  /** Width of the dynamics, decoder (and ODE-RNN, intensity) hidden layers. */
  hidden: number;
  rnnHidden: number;
  /** 'rnn': GRU with the time gap as input (default); 'odernn': ODE-RNN (Rubanova et al. 2019). */
  encoder?: Encoder;
  /** Standard deviation of the Gaussian observation likelihood (default 0.3). */
  obsStd?: number;
  /** Add the Poisson process likelihood of the observation times with a learned λ(z). */
  poisson?: boolean;
  /** Time of z₀ (default 0); observations and prediction times must not be earlier. */
  t0?: number;
  seed?: number;
  dtype?: Dtype;
  /** Solver of every ODE in the model (default dopri5, rtol 1e-7, atol 1e-9). */
  method?: Method;
  rtol?: number;
  atol?: number;
  stepSize?: number;
  maxSteps?: number;
  /** How fit() differentiates the solves (default 'backprop'). */
  grad?: GradMode;
}

export interface LatentFitOptions extends FitOptions {
  /** Rows per shard (fixed: results do not depend on the pool). Default 100. */
  shardSize?: number;
  /** Train for sparse inputs with a random subset of min..max of each row's observations per
   *  iteration: the latent ODE's encoder sees only the subset (all points are still scored); the
   *  RNN baseline reads and predicts only the subset. */
  subsample?: Subsample;
}

interface LatentConfig {
  obsDim: number; latentDim: number; hidden: number; rnnHidden: number; encoder: Encoder; obsStd: number;
  poisson: boolean; t0: number; seed: number; dtype: Dtype; method: Method; rtol: number; atol: number;
  stepSize: number | null; maxSteps: number; grad: GradMode;
}

export const LATENT_FORMAT = 'neurode.latent-ode';
export const RNN_FORMAT = 'neurode.rnn-baseline';
const FORMAT_VERSION = 1;
const LATENT_KERNEL = 'latent-elbo';
const RNN_KERNEL = 'rnn-baseline';

function latentConfig(o: unknown): LatentConfig {
  const v = plainObject('options', o);
  if (o === undefined) throw invalid('options', 'is required ({ obsDim, latentDim, hidden, rnnHidden })');
  const method = oneOf('method', v.method ?? 'dopri5', METHODS);
  const stepSize = v.stepSize === undefined || v.stepSize === null ? null : positiveNumber('stepSize', v.stepSize);
  if (!ADAPTIVE_METHODS.includes(method) && stepSize === null) throw invalid('stepSize', `is required for the fixed-step method '${method}'`);
  const t0 = v.t0 ?? 0;
  if (typeof t0 !== 'number' || !Number.isFinite(t0)) throw invalid('t0', 'must be a finite number');
  return {
    obsDim: positiveInteger('obsDim', v.obsDim, 65536),
    latentDim: positiveInteger('latentDim', v.latentDim, 65536),
    hidden: positiveInteger('hidden', v.hidden, 65536),
    rnnHidden: positiveInteger('rnnHidden', v.rnnHidden, 65536),
    encoder: oneOf('encoder', v.encoder ?? 'rnn', ['rnn', 'odernn'] as const),
    obsStd: positiveNumber('obsStd', v.obsStd ?? 0.3),
    poisson: v.poisson === undefined ? false : v.poisson === true ? true : v.poisson === false ? false : (() => { throw invalid('poisson', 'must be a boolean'); })(),
    t0,
    seed: checkSeed('seed', v.seed ?? 0),
    dtype: oneOf('dtype', v.dtype ?? 'float64', ['float64', 'float32'] as const),
    method,
    rtol: positiveNumber('rtol', v.rtol ?? 1e-7),
    atol: positiveNumber('atol', v.atol ?? 1e-9),
    stepSize,
    maxSteps: positiveInteger('maxSteps', v.maxSteps ?? 100_000),
    grad: oneOf('grad', v.grad ?? 'backprop', GRAD_MODES),
  };
}

type Subsample = { min: number; max: number };

function subsampleOption(v: unknown): Subsample | undefined {
  if (v === undefined) return undefined;
  const ss = plainObject('subsample', v);
  const min = positiveInteger('subsample.min', ss.min), max = positiveInteger('subsample.max', ss.max);
  if (max < min) throw invalid('subsample.max', 'must be >= subsample.min');
  return { min, max };
}

/**
 * The fit loop both sequence models share: minibatches of rows drawn without replacement from
 * (seed, iteration), split into fixed-size shards (each a `kernel` job over the shard's rows,
 * their indices, seed, iteration and subsample option), Adam (lr default 0.01) through
 * fitSharded.
 */
async function fitSeries(
  m: ShardModel & { readonly numParams: number; readonly obsDim: number; toJSON(): { config: unknown } },
  kind: string, kernel: string, data: TimeSeriesBatch, options: LatentFitOptions,
): Promise<History> {
  const o = fitOptions(options) as LatentFitOptions;
  const series = packSeries(data, m.obsDim);
  const n = series.batch;
  const batchSize = Math.min(n, o.batchSize ?? n);
  const shardSize = positiveInteger('shardSize', o.shardSize ?? 100);
  const subsample = subsampleOption(o.subsample);
  const seed = o.seed ?? 0;
  const itersPerEpoch = Math.ceil(n / batchSize);
  const iterations = o.iterations ?? (o.epochs ?? 1) * itersPerEpoch;
  const opt = optim.adam(m.params, { lr: o.lr ?? 0.01 });
  const model = m.toJSON();
  const modelKey = `${kind}:${fnv1a(new TextEncoder().encode(JSON.stringify(model.config)))}`;
  try {
    return await fitSharded(m, opt, o, iterations, itersPerEpoch, (it) => {
      const rows = batchSize === n ? Float64Array.from({ length: n }, (_, i) => i) : random('choice', batchSize, { seed, stream: it, range: n });
      const params = m.params.slice();
      return shardRanges(batchSize, shardSize).map(([a, b]): ShardJob => {
        const ids = rows.slice(a, b);
        const payload = { series: takeRows(series, ids, m.obsDim), rows: ids, seed, iteration: it, subsample, weight: (b - a) / batchSize };
        return { modelKey, model, params, kernel, payload };
      });
    });
  } finally {
    opt.dispose();
  }
}

/** Latent ODE (API.md §5): fit maximises the ELBO; predict interpolates and extrapolates. */
export class LatentODE extends CoreModel {
  readonly config: Readonly<LatentConfig>;

  constructor(o: LatentODEOptions) {
    const c = latentConfig(o);
    const x = core().exports;
    const s = new Scratch(x);
    let handle: number;
    try {
      const cp = s.put([c.obsDim, c.latentDim, c.hidden, c.rnnHidden, c.encoder === 'rnn' ? 0 : 1, c.obsStd, c.poisson ? 1 : 0]);
      handle = s.create((k, hp) => k.nd_latent_create(c.dtype === 'float32' ? 1 : 0, cp, ...seedParts(c.seed), hp));
    } finally {
      s.free();
    }
    super(handle, 'latent ODE', c.dtype);
    this.config = Object.freeze(c);
  }

  get obsDim(): number { return this.config.obsDim; }
  get latentDim(): number { return this.config.latentDim; }

  private solveOptions(): Float64Array {
    const c = this.config;
    return Float64Array.of(METHODS.indexOf(c.method), c.rtol, c.atol, GRAD_MODES.indexOf(c.grad), c.maxSteps, c.stepSize ?? NaN);
  }

  /**
   * Mean negative ELBO of `rows` (indices into the data set, they key ε) and its gradient, for
   * iteration `iteration`; one core call.
   */
  elboShard(p: { series: PackedSeries; rows: Float64Array; seed: number; iteration: number; subsample?: Subsample }): ShardResult & { recon: number; kl: number; poisson: number } {
    const h = this.h.get();
    const x = core().exports;
    const s = new Scratch(x);
    const sr = p.series;
    if (p.rows.length !== sr.batch) throw invalid('rows', `must hold ${sr.batch} row indices`);
    try {
      const { t, v, m } = putSeries(s, sr, x);
      const rp = s.put(p.rows), op = s.put(this.solveOptions());
      const gp = s.alloc(Math.max(1, this.numParams) * 8), stp = s.alloc(48);
      const [lo, hi] = seedParts(p.seed);
      callCore((k) => k.nd_latent_elbo(h, sr.batch, sr.slots, t, v, m, m, rp, lo, hi, p.iteration, p.subsample?.min ?? 0, p.subsample?.max ?? 0, this.config.t0, op, gp, this.numParams, stp));
      const st = s.f64(stp, 6);
      return { loss: st[0]!, weight: 1, grad: s.f64(gp, this.numParams).slice(), nfeForward: st[1]!, nfeBackward: st[2]!, recon: st[3]!, kl: st[4]!, poisson: st[5]!, extra: { recon: st[3]!, kl: st[4]!, poisson: st[5]! } };
    } finally {
      s.free();
    }
  }

  /** Mean negative ELBO and its gradient over a whole batch (one shard; fixed iteration/seed). */
  elbo(data: TimeSeriesBatch, o: { seed?: number; iteration?: number } = {}): { loss: number; grad: Float64Array; recon: number; kl: number; poisson: number; nfeForward: number; nfeBackward: number } {
    const series = packSeries(data, this.obsDim);
    const rows = Float64Array.from({ length: series.batch }, (_, i) => i);
    const r = this.elboShard({ series, rows, seed: checkSeed('seed', o.seed ?? 0), iteration: checkSeed('iteration', o.iteration ?? 0) });
    return { loss: r.loss, grad: r.grad, recon: r.recon, kl: r.kl, poisson: r.poisson, nfeForward: r.nfeForward, nfeBackward: r.nfeBackward };
  }

  /** Maximises the ELBO with Adam (lr default 0.01); full batch unless `batchSize` is given. */
  async fit(data: TimeSeriesBatch, options: LatentFitOptions = {}): Promise<History> {
    this.h.get();
    return fitSeries(this, 'latent', LATENT_KERNEL, data, options);
  }

  /**
   * Predictions at `ts` (increasing, ≥ t0) from each row's observations: the decoded mean over
   * `samples` posterior draws of z₀ (default 1; 0 decodes the posterior mean μ).
   * Returns batch × ts.length × obsDim.
   */
  predict(data: TimeSeriesBatch, ts: ArrayLike<number>, o: { samples?: number; seed?: number } = {}): Float64Array {
    const h = this.h.get();
    const opts = plainObject('options', o);
    const samples = opts.samples === undefined ? 1 : opts.samples === 0 ? 0 : positiveInteger('samples', opts.samples, 65536);
    const seed = checkSeed('seed', opts.seed ?? 0);
    const series = packSeries(data, this.obsDim);
    const times = timeGrid('ts', ts);
    if (times.length > 1 && times[1]! < times[0]!) throw invalid('ts', 'must be increasing');
    if (times[0]! < this.config.t0) throw invalid('ts', `must not be earlier than the model's t0 = ${this.config.t0}`);
    const x = core().exports;
    const s = new Scratch(x);
    try {
      const { t, v, m } = putSeries(s, series, x);
      const tp = s.put(times), op = s.put(this.solveOptions());
      const n = series.batch * times.length * this.obsDim;
      const out = s.alloc(n * 8), stp = s.alloc(8);
      const [lo, hi] = seedParts(seed);
      callCore((k) => k.nd_latent_predict(h, series.batch, series.slots, t, v, m, tp, times.length, samples, lo, hi, this.config.t0, op, out, stp));
      return s.f64(out, n).slice();
    } finally {
      s.free();
    }
  }

  toJSON(): { format: string; version: number; config: LatentConfig; params: number[]; checksum: string } {
    const p = this.params;
    return { format: LATENT_FORMAT, version: FORMAT_VERSION, config: { ...this.config }, params: Array.from(p), checksum: paramDigest(p) };
  }

  /** Restores a model from toJSON(); rejects malformed, corrupted or mismatched input. */
  static fromJSON(obj: unknown): LatentODE {
    const o = plainObject('json', obj);
    if (o.format !== LATENT_FORMAT) throw invalid('json.format', `must be '${LATENT_FORMAT}'`);
    if (o.version !== FORMAT_VERSION) throw invalid('json.version', `unsupported version ${String(o.version)} (this build reads ${FORMAT_VERSION})`);
    const cfg = plainObject('json.config', o.config) as unknown as LatentODEOptions;
    const params = finiteArray('json.params', o.params ?? []);
    const m = new LatentODE({ ...cfg, stepSize: cfg.stepSize ?? undefined });
    try {
      restoreParams(m, params, o.checksum);
      return m;
    } catch (e) {
      m.dispose();
      throw e;
    }
  }
}

function restoreParams(m: CoreModel, params: Float64Array, checksum: unknown): void {
  if (params.length !== m.numParams) throw invalid('json.params', `the architecture has ${m.numParams} parameters, the file ${params.length}`);
  m.params.set(params);
  if (m.digest() !== checksum) throw new NeurodeError('INVALID_ARGUMENT', 'json.checksum: the parameters do not match the checksum (corrupted file?)', { argument: 'json.checksum' });
}

registerShardKernel(
  LATENT_KERNEL,
  (model, p) => {
    const r = (model as LatentODE).elboShard(p as Parameters<LatentODE['elboShard']>[0]);
    return { ...r, weight: p.weight as number };
  },
  (json) => LatentODE.fromJSON(json),
);

export interface RNNBaselineOptions { obsDim: number; hidden: number; seed?: number; dtype?: Dtype }

/**
 * The RNN baseline of Table 2: a GRU reads each observation with the time gap to the next and
 * predicts it; trained by teacher forcing (mean squared next-step error), predicts
 * autoregressively (its predictions are fed back where there is no observation).
 */
export class RNNBaseline extends CoreModel {
  readonly config: Readonly<Required<RNNBaselineOptions>>;

  constructor(o: RNNBaselineOptions) {
    const v = plainObject('options', o);
    const c = {
      obsDim: positiveInteger('obsDim', v.obsDim, 65536),
      hidden: positiveInteger('hidden', v.hidden, 65536),
      seed: checkSeed('seed', v.seed ?? 0),
      dtype: oneOf('dtype', v.dtype ?? 'float64', ['float64', 'float32'] as const),
    };
    const x = core().exports;
    const s = new Scratch(x);
    let handle: number;
    try {
      handle = s.create((k, hp) => k.nd_rnn_create(c.dtype === 'float32' ? 1 : 0, c.obsDim, c.hidden, ...seedParts(c.seed), hp));
    } finally {
      s.free();
    }
    super(handle, 'RNN baseline', c.dtype);
    this.config = Object.freeze(c);
  }

  get obsDim(): number { return this.config.obsDim; }

  /**
   * Mean next-step squared error of a batch and its gradient (one core call); with `subsample`,
   * of random subsets of the rows' observations keyed by (rows, seed, iteration).
   */
  lossShard(p: { series: PackedSeries; rows?: Float64Array; seed?: number; iteration?: number; subsample?: Subsample }): ShardResult {
    const h = this.h.get();
    const x = core().exports;
    const s = new Scratch(x);
    const sr = p.series;
    const rows = p.rows ?? Float64Array.from({ length: sr.batch }, (_, i) => i);
    if (rows.length !== sr.batch) throw invalid('rows', `must hold ${sr.batch} row indices`);
    try {
      const { t, v, m } = putSeries(s, sr, x);
      const rp = s.put(rows), gp = s.alloc(this.numParams * 8), lp = s.alloc(8);
      const [lo, hi] = seedParts(p.seed ?? 0);
      callCore((k) => k.nd_rnn_loss(h, sr.batch, sr.slots, t, v, m, rp, lo, hi, p.iteration ?? 0, p.subsample?.min ?? 0, p.subsample?.max ?? 0, gp, this.numParams, lp));
      return { loss: s.f64(lp, 1)[0]!, weight: 1, grad: s.f64(gp, this.numParams).slice(), nfeForward: 0, nfeBackward: 0 };
    } finally {
      s.free();
    }
  }

  loss(data: TimeSeriesBatch): { loss: number; grad: Float64Array } {
    const r = this.lossShard({ series: packSeries(data, this.obsDim) });
    return { loss: r.loss, grad: r.grad };
  }

  async fit(data: TimeSeriesBatch, options: LatentFitOptions = {}): Promise<History> {
    this.h.get();
    return fitSeries(this, 'rnn', RNN_KERNEL, data, options);
  }

  /** Autoregressive predictions at `ts` (increasing): batch × ts.length × obsDim. */
  predict(data: TimeSeriesBatch, ts: ArrayLike<number>): Float64Array {
    const h = this.h.get();
    const series = packSeries(data, this.obsDim);
    const times = timeGrid('ts', ts);
    if (times.length > 1 && times[1]! < times[0]!) throw invalid('ts', 'must be increasing');
    const x = core().exports;
    const s = new Scratch(x);
    try {
      const { t, v, m } = putSeries(s, series, x);
      const tp = s.put(times);
      const n = series.batch * times.length * this.obsDim;
      const out = s.alloc(n * 8);
      callCore((k) => k.nd_rnn_predict(h, series.batch, series.slots, t, v, m, tp, times.length, out));
      return s.f64(out, n).slice();
    } finally {
      s.free();
    }
  }

  toJSON(): { format: string; version: number; config: Required<RNNBaselineOptions>; params: number[]; checksum: string } {
    const p = this.params;
    return { format: RNN_FORMAT, version: FORMAT_VERSION, config: { ...this.config }, params: Array.from(p), checksum: paramDigest(p) };
  }

  static fromJSON(obj: unknown): RNNBaseline {
    const o = plainObject('json', obj);
    if (o.format !== RNN_FORMAT) throw invalid('json.format', `must be '${RNN_FORMAT}'`);
    if (o.version !== FORMAT_VERSION) throw invalid('json.version', `unsupported version ${String(o.version)} (this build reads ${FORMAT_VERSION})`);
    const params = finiteArray('json.params', o.params ?? []);
    const m = new RNNBaseline(plainObject('json.config', o.config) as unknown as RNNBaselineOptions);
    try {
      restoreParams(m, params, o.checksum);
      return m;
    } catch (e) {
      m.dispose();
      throw e;
    }
  }
}

registerShardKernel(
  RNN_KERNEL,
  (model, p) => ({ ...(model as RNNBaseline).lossShard(p as Parameters<RNNBaseline['lossShard']>[0]), weight: p.weight as number }),
  (json) => RNNBaseline.fromJSON(json),
);
