/**
 * Continuous normalizing flows (API.md §5; paper Section 4). The core integrates [z, log p]
 * with d log p/dt = −tr(∂f/∂z) (exact trace, or FFJORD's Hutchinson estimate with a probe fixed
 * per solve) and differentiates the augmented system in any gradient mode. TypeScript
 * validates, splits batches into fixed-size shards (ShardJobs summed in order, so a WorkerPool
 * gives the same bits) and runs the optimiser.
 */
import { invalid, NeurodeError } from './errors.js';
import { GRAD_MODES, type GradMode } from './grad.js';
import { CoreHandle } from './handles.js';
import { ACTIVATIONS, encodeLayers, fnv1a, mlpLayers, paramDigest, type Activation, type Layer } from './nn.js';
import { ADAPTIVE_METHODS, METHODS, type Dtype, type Method } from './odeint.js';
import { optim, registerParamsOwner } from './optim.js';
import {
  fitSharded, fitOptions, random, registerShardKernel, shardRanges,
  type FitOptions, type History, type ShardJob, type ShardModel, type ShardResult,
} from './train.js';
import { callCore, core, Scratch, seedParts } from './wasm.js';
import { finiteArray, nonNegativeNumber, oneOf, plainObject, positiveInteger, positiveNumber, timeGrid } from './validate.js';

export type TraceMode = 'exact' | 'hutchinson';

export interface CNFOptions {
  dim: number;
  /** Hidden widths: of the MLP field (default [64, 64, 64]), or of the planar CNF's hypernetwork (default [32, 32]). */
  hidden?: number[];
  /** 'mlp' (FFJORD: concatsquash layers) or 'planar' (the paper's planar CNF). */
  arch?: 'mlp' | 'planar';
  /** MLP activation (default 'tanh') and how time enters its layers (default 'concatsquash'). */
  activation?: Activation;
  time?: 'concatsquash' | 'concat' | 'none';
  /** A custom field as layers (nn.linear(…), nn.tanh(), …) instead of hidden/activation/time. */
  layers?: Layer[];
  /** Planar units M (default 64). */
  width?: number;
  trace?: TraceMode;
  /** Hutchinson probe distribution (default 'rademacher'). */
  probe?: 'rademacher' | 'gaussian';
  /** End time of the flow (default 1): the base lives at t = 0, the data at t = t1. */
  t1?: number;
  /** Standard deviation of the Gaussian base N(0, baseStd² I) (default 1: standard normal). */
  baseStd?: number;
  /** RNODE regularisers added to the loss: kinetic energy ∫‖f‖² and Jacobian Frobenius ∫‖∂f/∂z‖²_F. */
  regularize?: { kinetic?: number; jacobian?: number };
  method?: Method;
  /** Solver tolerances (default 1e-5). */
  rtol?: number;
  atol?: number;
  stepSize?: number;
  maxSteps?: number;
  /** Gradient mode of fit/fitDensity (default 'adjoint'). */
  grad?: GradMode;
  adjointNorm?: 'full' | 'seminorm';
  seed?: number;
  dtype?: Dtype;
}

export interface CNFFitOptions extends FitOptions {
  /** Rows per shard (fixed, so results do not depend on the pool). Default 64. */
  shardSize?: number;
}

interface CNFConfig {
  dim: number; arch: 'mlp' | 'planar'; hidden: number[]; activation: Activation; time: 'concatsquash' | 'concat' | 'none';
  layers: Layer[] | null; width: number; trace: TraceMode; probe: 'rademacher' | 'gaussian'; t1: number; baseStd: number;
  regularize: { kinetic: number; jacobian: number } | null; method: Method; rtol: number; atol: number; stepSize: number | null;
  maxSteps: number; grad: GradMode; adjointNorm: 'full' | 'seminorm'; seed: number; dtype: Dtype;
}

export const CNF_FORMAT = 'neurode.cnf';
const FORMAT_VERSION = 1;
const MLE_KERNEL = 'cnf-mle';
const KL_KERNEL = 'cnf-kl';
/** Named unnormalised 2-D targets for fitDensity (Rezende & Mohamed's U1–U4). */
export const CNF_TARGETS = ['ring', 'wave', 'twoWaves', 'waveStep'] as const;
export type CNFTarget = (typeof CNF_TARGETS)[number];
/** Random streams: (purpose · 2^48) + iteration; purpose 3 = sample(). */
const SAMPLE_STREAM = 3 * 2 ** 48;

function checkSeed(name: string, v: unknown): number {
  if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > Number.MAX_SAFE_INTEGER) throw invalid(name, `must be a whole number from 0 to 2^53 − 1 (got ${String(v)})`);
  return v as number;
}

function widths(name: string, v: unknown): number[] {
  if (!Array.isArray(v)) throw invalid(name, 'must be an array of widths');
  return v.map((w, i) => positiveInteger(`${name}[${i}]`, w, 1 << 16));
}

function cnfConfig(o: unknown): CNFConfig {
  if (o === undefined || o === null) throw invalid('options', 'is required ({ dim, hidden })');
  const v = plainObject('options', o);
  const arch = oneOf('arch', v.arch ?? 'mlp', ['mlp', 'planar'] as const);
  const method = oneOf('method', v.method ?? 'dopri5', METHODS);
  const stepSize = v.stepSize === undefined || v.stepSize === null ? null : positiveNumber('stepSize', v.stepSize);
  if (!ADAPTIVE_METHODS.includes(method) && stepSize === null) throw invalid('stepSize', `is required for the fixed-step method '${method}'`);
  let regularize: CNFConfig['regularize'] = null;
  if (v.regularize !== undefined && v.regularize !== null) {
    const r = plainObject('regularize', v.regularize);
    regularize = { kinetic: nonNegativeNumber('regularize.kinetic', r.kinetic ?? 0), jacobian: nonNegativeNumber('regularize.jacobian', r.jacobian ?? 0) };
  }
  let layers: Layer[] | null = null;
  if (v.layers !== undefined && v.layers !== null) {
    if (arch !== 'mlp') throw invalid('layers', "only apply to arch 'mlp'");
    if (!Array.isArray(v.layers) || v.layers.length === 0) throw invalid('layers', 'must be a non-empty array of layers');
    layers = (v.layers as Layer[]).map((l) => ({ ...l }));
  }
  return {
    dim: positiveInteger('dim', v.dim, 1 << 16),
    arch,
    hidden: v.hidden === undefined ? (arch === 'mlp' ? [64, 64, 64] : [32, 32]) : widths('hidden', v.hidden),
    activation: oneOf('activation', v.activation ?? 'tanh', ACTIVATIONS),
    time: oneOf('time', v.time ?? 'concatsquash', ['concatsquash', 'concat', 'none'] as const),
    layers,
    width: positiveInteger('width', v.width ?? 64, 1 << 16),
    trace: oneOf('trace', v.trace ?? 'exact', ['exact', 'hutchinson'] as const),
    probe: oneOf('probe', v.probe ?? 'rademacher', ['rademacher', 'gaussian'] as const),
    t1: positiveNumber('t1', v.t1 ?? 1),
    baseStd: positiveNumber('baseStd', v.baseStd ?? 1),
    regularize,
    method,
    rtol: positiveNumber('rtol', v.rtol ?? 1e-5),
    atol: positiveNumber('atol', v.atol ?? 1e-5),
    stepSize,
    maxSteps: positiveInteger('maxSteps', v.maxSteps ?? 100_000),
    grad: oneOf('grad', v.grad ?? 'adjoint', GRAD_MODES),
    adjointNorm: oneOf('adjointNorm', v.adjointNorm ?? 'seminorm', ['full', 'seminorm'] as const),
    seed: checkSeed('seed', v.seed ?? 0),
    dtype: oneOf('dtype', v.dtype ?? 'float64', ['float64', 'float32'] as const),
  };
}

/** The layer code of the MLP field ([kind, in, out] triples). */
function layerCode(c: CNFConfig): Uint32Array {
  const layers = c.layers ?? mlpLayers({ dims: [c.dim, ...c.hidden, c.dim], activation: c.activation, time: c.time });
  const code = encodeLayers(layers);
  if (code[1] !== c.dim || code[code.length - 1] !== c.dim) throw invalid('layers', `must map R^${c.dim} to R^${c.dim}`);
  return code;
}

/** What logDensity functions may return: values, or values with their gradient (n × dim). */
type LogDensityResult = Float64Array | ArrayLike<number> | { value: ArrayLike<number>; grad: ArrayLike<number> };
export type LogDensityFn = (x: Float64Array) => LogDensityResult;

/** log p̃ and ∇log p̃ of a named 2-D target at n rows of x (n × 2). */
export function targetLogDensity(name: CNFTarget, x: ArrayLike<number>): { value: Float64Array; grad: Float64Array } {
  const id = CNF_TARGETS.indexOf(name);
  if (id < 0) throw invalid('target', `must be one of ${CNF_TARGETS.join(', ')} (got ${String(name)})`);
  const v = finiteArray('x', x);
  if (v.length % 2 !== 0) throw invalid('x', 'must hold n × 2 values');
  const n = v.length / 2;
  const s = new Scratch(core().exports);
  try {
    const xp = s.put(v), lp = s.alloc(n * 8), gp = s.alloc(n * 16);
    callCore((c) => c.nd_cnf_target(id, xp, n, lp, gp));
    return { value: s.f64(lp, n).slice(), grad: s.f64(gp, 2 * n).slice() };
  } finally {
    s.free();
  }
}

/** Mean negative log-likelihood of `test` under the maximum-likelihood full-covariance Gaussian of `train`. */
export function gaussianBaselineNll(train: ArrayLike<number>, test: ArrayLike<number>, dim = 2): number {
  const a = finiteArray('train', train), b = finiteArray('test', test);
  positiveInteger('dim', dim, 1 << 16);
  if (a.length % dim !== 0 || b.length % dim !== 0) throw invalid('train', `lengths must be multiples of dim ${dim}`);
  const s = new Scratch(core().exports);
  try {
    const ap = s.put(a), bp = s.put(b), op = s.alloc(8);
    callCore((c) => c.nd_gaussian_nll(ap, a.length, bp, b.length, dim, op));
    return s.f64(op, 1)[0]!;
  } finally {
    s.free();
  }
}

export interface FieldOptions { aug?: 'plain' | 'logdet' | 'regularized'; trace?: TraceMode; seed?: number }

/**
 * Densities e^v of log-densities on a grid and their integral Σ e^v · cellArea (log-sum-exp in
 * the core): normalisation checks, log-partition functions and heatmaps.
 */
export function densityGrid(logValues: ArrayLike<number>, cellArea: number): { density: Float64Array; mass: number; logMass: number } {
  if (!(ArrayBuffer.isView(logValues) || Array.isArray(logValues)) || logValues.length === 0) throw invalid('values', 'must be a non-empty array of log-densities');
  positiveNumber('cellArea', cellArea);
  const n = logValues.length;
  const s = new Scratch(core().exports);
  try {
    const vp = s.put(logValues), op = s.alloc(n * 8), ip = s.alloc(16);
    callCore((c) => c.nd_density_grid(vp, n, cellArea, op, ip));
    const info = s.f64(ip, 2);
    return { density: s.f64(op, n).slice(), logMass: info[0]!, mass: info[1]! };
  } finally {
    s.free();
  }
}

interface MlePayload { x: Float64Array; seed: number; iteration: number; firstRow: number; weight: number }
interface KlPayload { target: CNFTarget | LogDensityFn; rows: number; seed: number; iteration: number; firstRow: number; weight: number }

export class CNF implements ShardModel {
  readonly config: Readonly<CNFConfig>;
  readonly dim: number;
  readonly numParams: number;
  readonly dtype: Dtype;
  private readonly h: CoreHandle;
  private view: Float64Array | Float32Array | null = null;

  constructor(o: CNFOptions) {
    const c = cnfConfig(o);
    const x = core().exports;
    const code = c.arch === 'mlp' ? layerCode(c) : Uint32Array.from(c.hidden);
    const s = new Scratch(x);
    let handle: number;
    try {
      const cp = s.alloc(Math.max(4, code.byteLength));
      new Uint32Array(x.memory.buffer, cp, code.length).set(code);
      const n = c.arch === 'mlp' ? code.length / 3 : code.length;
      handle = s.create((k, hp) => k.nd_cnf_create(c.dtype === 'float32' ? 1 : 0, c.arch === 'mlp' ? 0 : 1, cp, n, c.dim, c.width, ...seedParts(c.seed), hp));
      const ip = s.alloc(24);
      x.nd_cnf_info(handle, ip);
      this.numParams = s.f64(ip, 3)[1]!;
    } finally {
      s.free();
    }
    this.config = c;
    this.dim = c.dim;
    this.dtype = c.dtype;
    this.h = new CoreHandle(handle, 'CNF');
  }

  /** A live view of the parameters in the core. */
  get params(): Float64Array | Float32Array {
    const h = this.h.get();
    const x = core().exports;
    if (this.view === null || this.view.buffer !== x.memory.buffer) {
      const ptr = x.nd_cnf_params(h);
      this.view = this.dtype === 'float32' ? new Float32Array(x.memory.buffer, ptr, this.numParams) : new Float64Array(x.memory.buffer, ptr, this.numParams);
      registerParamsOwner(this.view, { isDisposed: () => this.h.isDisposed });
    }
    return this.view;
  }

  digest(): string {
    return paramDigest(this.params);
  }

  /** The packed call configuration (see abi_cnf.rs). */
  private cfg(o: { trace?: TraceMode; seed?: number; iteration?: number; firstRow?: number } = {}): Float64Array {
    const c = this.config;
    const trace = o.trace ?? c.trace;
    return Float64Array.of(
      METHODS.indexOf(c.method), c.rtol, c.atol, GRAD_MODES.indexOf(c.grad), c.maxSteps, c.stepSize ?? NaN,
      c.adjointNorm === 'seminorm' ? 1 : 0, NaN, NaN,
      trace === 'exact' ? 0 : c.probe === 'rademacher' ? 1 : 2, c.t1, c.baseStd,
      c.regularize ? 1 : 0, c.regularize?.kinetic ?? 0, c.regularize?.jacobian ?? 0,
      o.seed ?? 0, o.iteration ?? 0, o.firstRow ?? 0,
    );
  }

  private rows(name: string, x: ArrayLike<number>): Float64Array {
    const v = finiteArray(name, x);
    if (v.length % this.dim !== 0) throw invalid(name, `length ${v.length} is not a multiple of dim ${this.dim}`);
    return v;
  }

  /** Solves rows of width dim (+1 with the log-density column) from ts[0] through ts. */
  private flow(y0: Float64Array, ts: Float64Array, logDet: boolean, o: { trace?: TraceMode; seed?: number } = {}): { ys: Float64Array; nfe: number } {
    const h = this.h.get();
    const s = new Scratch(core().exports);
    try {
      const yp = s.put(y0), tp = s.put(ts), cp = s.put(this.cfg(o));
      const out = s.alloc(y0.length * ts.length * 8), st = s.alloc(24);
      callCore((c) => c.nd_cnf_flow(h, logDet ? 1 : 0, yp, y0.length, tp, ts.length, cp, out, st));
      return { ys: s.f64(out, y0.length * ts.length).slice(), nfe: s.f64(st, 3)[0]! };
    } finally {
      s.free();
    }
  }

  /** Data → base: z = T⁻¹(x) and log p(x) = log N(z) − ∫₀^{t1} tr(∂f/∂z) dt, per row. */
  encode(x: ArrayLike<number>, o: { trace?: TraceMode; seed?: number } = {}): { z: Float64Array; logProb: Float64Array; nfe: number } {
    const v = this.rows('x', x);
    const opts = plainObject('options', o);
    const trace = opts.trace === undefined ? undefined : oneOf('trace', opts.trace, ['exact', 'hutchinson'] as const);
    const seed = checkSeed('seed', opts.seed ?? 0);
    const d = this.dim, n = v.length / d;
    const y0 = new Float64Array(n * (d + 1));
    for (let r = 0; r < n; r++) y0.set(v.subarray(r * d, (r + 1) * d), r * (d + 1));
    const { ys, nfe } = this.flow(y0, Float64Array.of(this.config.t1, 0), true, { trace, seed });
    const end = ys.subarray(n * (d + 1));
    const z = new Float64Array(n * d);
    for (let r = 0; r < n; r++) z.set(end.subarray(r * (d + 1), r * (d + 1) + d), r * d);
    const logProb = this.baseLogProb(z);
    for (let r = 0; r < n; r++) logProb[r] = logProb[r]! - end[r * (d + 1) + d]!;
    return { z, logProb, nfe };
  }

  /** log p(x) under the flow, per row (x: n × dim). */
  logProb(x: ArrayLike<number>, o: { trace?: TraceMode; seed?: number } = {}): Float64Array {
    return this.encode(x, o).logProb;
  }

  /** log N(z; 0, baseStd² I) per row (computed in the core). */
  private baseLogProb(z: Float64Array): Float64Array {
    const n = z.length / this.dim;
    const s = new Scratch(core().exports);
    try {
      const zp = s.put(z), op = s.alloc(n * 8);
      callCore((c) => c.nd_cnf_base_logp(this.dim, zp, z.length, this.config.baseStd, op));
      return s.f64(op, n).slice();
    } finally {
      s.free();
    }
  }

  /** Base draws z0 ~ N(0, baseStd² I): row i a pure function of (seed, i). */
  private baseSample(n: number, seed: number): Float64Array {
    const z = random('normal', n * this.dim, { seed, stream: SAMPLE_STREAM });
    const sd = this.config.baseStd;
    if (sd !== 1) for (let i = 0; i < z.length; i++) z[i] = z[i]! * sd;
    return z;
  }

  /** n samples x = T(z0), z0 ~ base (n × dim). */
  sample(n: number, seed = 0): Float64Array {
    positiveInteger('n', n, 1 << 24);
    const z = this.baseSample(n, checkSeed('seed', seed));
    const { ys } = this.flow(z, Float64Array.of(0, this.config.t1), false);
    return ys.slice(z.length);
  }

  /** Samples with their base points and log-densities log q(x) = log N(z0) + ∫ −tr dt. */
  sampleWithLogProb(n: number, seed = 0): { x: Float64Array; z: Float64Array; logProb: Float64Array } {
    positiveInteger('n', n, 1 << 24);
    const z = this.baseSample(n, checkSeed('seed', seed));
    const d = this.dim;
    const y0 = new Float64Array(n * (d + 1));
    for (let r = 0; r < n; r++) y0.set(z.subarray(r * d, (r + 1) * d), r * (d + 1));
    const { ys } = this.flow(y0, Float64Array.of(0, this.config.t1), true);
    const end = ys.subarray(n * (d + 1));
    const x = new Float64Array(n * d);
    const logProb = this.baseLogProb(z);
    for (let r = 0; r < n; r++) {
      x.set(end.subarray(r * (d + 1), r * (d + 1) + d), r * d);
      logProb[r] = logProb[r]! + end[r * (d + 1) + d]!;
    }
    return { x, z, logProb };
  }

  /** The flow of base samples (or given base points z0, n × dim) at times ts ⊂ [0, t1]: ts.length × n × dim (paper Fig. 5). */
  trajectory(from: number | ArrayLike<number>, ts: ArrayLike<number>, seed = 0): Float64Array {
    const times = timeGrid('ts', ts);
    const z = typeof from === 'number' ? this.baseSample(positiveInteger('n', from, 1 << 24), checkSeed('seed', seed)) : this.rows('z0', from);
    return this.flow(z, times, false).ys;
  }

  /**
   * The augmented field F(t, y) for rows y of width dim ('plain'), dim + 1 ('logdet': [z, l],
   * l' = −tr ∂f/∂z) or dim + 3 ('regularized': also ‖f‖² and the Frobenius estimate).
   * Hutchinson probes are keyed by (seed, row index).
   */
  field(t: number, y: ArrayLike<number>, o: FieldOptions = {}): Float64Array {
    const { aug, v, cfg } = this.fieldArgs(t, y, o);
    const h = this.h.get();
    const s = new Scratch(core().exports);
    try {
      const yp = s.put(v), cp = s.put(cfg), op = s.alloc(v.length * 8);
      callCore((c) => c.nd_cnf_eval(h, aug, t, yp, v.length, cp, op));
      return s.f64(op, v.length).slice();
    } finally {
      s.free();
    }
  }

  /** a·∂F/∂y, a·∂F/∂θ and a·∂F/∂t of the augmented field (second derivatives of f included). */
  fieldVjp(t: number, y: ArrayLike<number>, a: ArrayLike<number>, o: FieldOptions = {}): { y: Float64Array; params: Float64Array; t: number } {
    const { aug, v, cfg } = this.fieldArgs(t, y, o);
    const av = finiteArray('a', a);
    if (av.length !== v.length) throw invalid('a', `must have the length of y (${v.length}), got ${av.length}`);
    const h = this.h.get();
    const s = new Scratch(core().exports);
    try {
      const yp = s.put(v), ap = s.put(av), cp = s.put(cfg);
      const oy = s.alloc(v.length * 8), opp = s.alloc(Math.max(1, this.numParams) * 8), ot = s.alloc(8);
      callCore((c) => c.nd_cnf_vjp(h, aug, t, yp, ap, v.length, cp, oy, opp, this.numParams, ot));
      return { y: s.f64(oy, v.length).slice(), params: s.f64(opp, this.numParams).slice(), t: s.f64(ot, 1)[0]! };
    } finally {
      s.free();
    }
  }

  private fieldArgs(t: number, y: ArrayLike<number>, o: FieldOptions): { aug: number; v: Float64Array; cfg: Float64Array } {
    if (typeof t !== 'number' || !Number.isFinite(t)) throw invalid('t', 'must be a finite number');
    const opts = plainObject('options', o);
    const aug = ['plain', 'logdet', 'regularized'].indexOf(oneOf('aug', opts.aug ?? 'logdet', ['plain', 'logdet', 'regularized'] as const));
    const width = this.dim + [0, 1, 3][aug]!;
    const v = finiteArray('y', y);
    if (v.length % width !== 0) throw invalid('y', `length ${v.length} is not a multiple of the row width ${width}`);
    const trace = opts.trace === undefined ? undefined : oneOf('trace', opts.trace, ['exact', 'hutchinson'] as const);
    return { aug, v, cfg: this.cfg({ trace, seed: checkSeed('seed', opts.seed ?? 0) }) };
  }

  /** Mean −log p(x) (+ regularisers) over all rows of x and its gradient (one shard). */
  lossAndGrad(x: ArrayLike<number>, o: { seed?: number; iteration?: number } = {}): ShardResult {
    const opts = plainObject('options', o);
    return this.mleShard({ x: this.rows('x', x), seed: checkSeed('seed', opts.seed ?? 0), iteration: checkSeed('iteration', opts.iteration ?? 0), firstRow: 0, weight: 1 });
  }

  /** One shard of maximum likelihood: mean −log p(x) (+ regularisers) and its gradient. */
  mleShard(p: MlePayload): ShardResult {
    const h = this.h.get();
    const x = this.rows('x', p.x);
    const s = new Scratch(core().exports);
    try {
      const xp = s.put(x), cp = s.put(this.cfg({ seed: p.seed, iteration: p.iteration, firstRow: p.firstRow }));
      const gp = s.alloc(Math.max(1, this.numParams) * 8), ip = s.alloc(48);
      callCore((c) => c.nd_cnf_mle(h, xp, x.length, cp, gp, this.numParams, ip));
      return this.shardResult(s.f64(ip, 6), s.f64(gp, this.numParams).slice(), p.weight, 'nll');
    } finally {
      s.free();
    }
  }

  /** One shard of density matching: mean log q(x) − log p̃(x) over base samples pushed forward. */
  klShard(p: KlPayload): ShardResult {
    const h = this.h.get();
    const d = this.dim, n = p.rows;
    const x = core().exports;
    const s = new Scratch(x);
    let tape: CoreHandle | null = null;
    try {
      const cp = s.put(this.cfg({ seed: p.seed, iteration: p.iteration, firstRow: p.firstRow }));
      const xp = s.alloc(n * d * 8), tp = s.alloc(4);
      callCore((c) => c.nd_cnf_kl_forward(h, n, cp, xp, tp));
      tape = new CoreHandle(new Uint32Array(x.memory.buffer, tp, 1)[0]!, 'gradient tape');
      const pts = s.f64(xp, n * d).slice();
      const { value, grad } = evalTarget(p.target, pts, d);
      const lp = s.put(value), dp = s.put(grad);
      const gp = s.alloc(Math.max(1, this.numParams) * 8), ip = s.alloc(48);
      const th = tape.get();
      tape.consumed();
      callCore((c) => c.nd_cnf_kl_backward(h, th, lp, dp, n, d, cp, gp, this.numParams, ip));
      return this.shardResult(s.f64(ip, 6), s.f64(gp, this.numParams).slice(), p.weight, 'kl');
    } finally {
      tape?.dispose();
      s.free();
    }
  }

  private shardResult(info: Float64Array, grad: Float64Array, weight: number, objective: string): ShardResult {
    const extra: Record<string, number> = { [objective]: info[1]! };
    if (this.config.regularize) {
      extra.kinetic = info[2]!;
      extra.jacobian = info[3]!;
    }
    return { loss: info[0]!, weight, grad, nfeForward: info[4]!, nfeBackward: info[5]!, extra };
  }

  private async train(o: CNFFitOptions, n: number | null, job: (it: number, a: number, b: number, batch: number) => ShardJob): Promise<History> {
    const batchSize = o.batchSize ?? (n === null ? 512 : Math.min(n, 512));
    const shardSize = positiveInteger('shardSize', o.shardSize ?? 64);
    const itersPerEpoch = n === null ? 1 : Math.max(1, Math.ceil(n / batchSize));
    const iterations = o.iterations ?? (o.epochs ?? 1) * itersPerEpoch;
    const opt = optim.adam(this.params, { lr: o.lr ?? 1e-3 });
    try {
      return await fitSharded(this, opt, o, iterations, itersPerEpoch, (it) => shardRanges(batchSize, shardSize).map(([a, b]) => job(it, a, b, batchSize)));
    } finally {
      opt.dispose();
    }
  }

  private modelKey(kind: string, model: object): string {
    return `cnf-${kind}:${fnv1a(new TextEncoder().encode(JSON.stringify((model as { config: unknown }).config)))}`;
  }

  /** Maximum likelihood on data x (n × dim) with Adam (lr default 1e-3); minibatches drawn without replacement. */
  async fit(x: ArrayLike<number>, options: CNFFitOptions = {}): Promise<History> {
    this.h.get();
    const o = fitOptions(options) as CNFFitOptions;
    const data = this.rows('x', x);
    const d = this.dim, n = data.length / d;
    const seed = o.seed ?? 0;
    const model = this.toJSON();
    const modelKey = this.modelKey('mle', model);
    return this.train(o, n, (it, a, b, batch) => {
      const rows = batch >= n ? null : random('choice', batch, { seed, stream: it, range: n });
      const xs = new Float64Array((b - a) * d);
      for (let r = a; r < b; r++) {
        const src = rows === null ? r : rows[r]!;
        xs.set(data.subarray(src * d, (src + 1) * d), (r - a) * d);
      }
      const params = this.params.slice();
      return { kernel: MLE_KERNEL, modelKey, model, params, payload: { x: xs, seed, iteration: it, firstRow: a, weight: (b - a) / batch } };
    });
  }

  /**
   * Reverse KL to an unnormalised density (paper Fig. 4): minimises E_q[log q(x) − log p̃(x)]
   * over fresh base samples each iteration. `logDensity` is a named 2-D target (CNF_TARGETS) or
   * a function of rows x (n × dim) returning log p̃ per row, optionally with its gradient
   * ({ value, grad }); without a gradient it is taken by central differences. Functions cannot
   * run in a worker pool.
   */
  async fitDensity(logDensity: CNFTarget | LogDensityFn, options: CNFFitOptions = {}): Promise<History> {
    this.h.get();
    const o = fitOptions(options) as CNFFitOptions;
    if (typeof logDensity === 'string') {
      if (!(CNF_TARGETS as readonly string[]).includes(logDensity)) throw invalid('logDensity', `must be a function or one of ${CNF_TARGETS.join(', ')} (got '${logDensity}')`);
      if (this.dim !== 2) throw invalid('logDensity', `named targets are 2-D; this flow has dim ${this.dim}`);
    } else if (typeof logDensity !== 'function') {
      throw invalid('logDensity', 'must be a function or the name of a target');
    } else if (o.pool !== undefined) {
      throw invalid('pool', 'a JavaScript logDensity cannot run in workers: use a named target or no pool');
    }
    const seed = o.seed ?? 0;
    const model = this.toJSON();
    const modelKey = this.modelKey('kl', model);
    return this.train(o, null, (it, a, b, batch) => ({
      kernel: KL_KERNEL, modelKey, model, params: this.params.slice(),
      payload: { target: logDensity, rows: b - a, seed, iteration: it, firstRow: a, weight: (b - a) / batch },
    }));
  }

  toJSON(): { format: string; version: number; config: CNFConfig; params: number[]; checksum: string } {
    const p = this.params;
    return { format: CNF_FORMAT, version: FORMAT_VERSION, config: JSON.parse(JSON.stringify(this.config)) as CNFConfig, params: Array.from(p), checksum: paramDigest(p) };
  }

  /** Restores a flow from toJSON(); rejects malformed, corrupted or mismatched input. */
  static fromJSON(obj: unknown): CNF {
    const o = plainObject('json', obj);
    if (o.format !== CNF_FORMAT) throw invalid('json.format', `must be '${CNF_FORMAT}'`);
    if (o.version !== FORMAT_VERSION) throw invalid('json.version', `unsupported version ${String(o.version)} (this build reads ${FORMAT_VERSION})`);
    const cfg = plainObject('json.config', o.config) as unknown as CNFOptions & { layers: Layer[] | null; regularize: CNFConfig['regularize']; stepSize: number | null };
    const params = finiteArray('json.params', o.params ?? []);
    const m = new CNF({ ...cfg, layers: cfg.layers ?? undefined, regularize: cfg.regularize ?? undefined, stepSize: cfg.stepSize ?? undefined });
    try {
      if (params.length !== m.numParams) throw invalid('json.params', `the architecture has ${m.numParams} parameters, the file ${params.length}`);
      m.params.set(params);
      if (m.digest() !== o.checksum) throw new NeurodeError('INVALID_ARGUMENT', 'json.checksum: the parameters do not match the checksum (corrupted file?)', { argument: 'json.checksum' });
      return m;
    } catch (e) {
      m.dispose();
      throw e;
    }
  }

  dispose(): void {
    this.h.dispose();
    this.view = null;
  }
}

/** log p̃ and its gradient at x (n × d) from a named target or a JavaScript function. */
function evalTarget(target: CNFTarget | LogDensityFn, x: Float64Array, d: number): { value: Float64Array; grad: Float64Array } {
  if (typeof target === 'string') return targetLogDensity(target, x);
  const n = x.length / d;
  const values = (r: LogDensityResult, rows: number): { value: Float64Array; grad?: Float64Array } => {
    if (r !== null && typeof r === 'object' && 'value' in r && !ArrayBuffer.isView(r)) {
      return { value: finiteArray('logDensity(x).value', r.value), grad: finiteArray('logDensity(x).grad', r.grad) };
    }
    const v = finiteArray('logDensity(x)', r as ArrayLike<number>);
    if (v.length !== rows) throw invalid('logDensity', `must return one value per row (${rows}), got ${v.length}`);
    return { value: v };
  };
  const first = values(target(x.slice()), n);
  if (first.value.length !== n) throw invalid('logDensity', `must return one value per row (${n}), got ${first.value.length}`);
  if (first.grad) {
    if (first.grad.length !== n * d) throw invalid('logDensity', `grad must hold n × dim = ${n * d} values`);
    return { value: first.value, grad: first.grad };
  }
  // central differences, all perturbed rows in one call: rows (2i + s)·n + r is x_r ± h e_i
  const h = 1e-5;
  const xs = new Float64Array(2 * d * n * d);
  for (let i = 0; i < d; i++) {
    for (let sgn = 0; sgn < 2; sgn++) {
      const blk = (2 * i + sgn) * n * d;
      xs.set(x, blk);
      for (let r = 0; r < n; r++) xs[blk + r * d + i] = xs[blk + r * d + i]! + (sgn === 0 ? h : -h);
    }
  }
  const pert = values(target(xs), 2 * d * n).value;
  const grad = new Float64Array(n * d);
  for (let i = 0; i < d; i++) for (let r = 0; r < n; r++) grad[r * d + i] = (pert[2 * i * n + r]! - pert[(2 * i + 1) * n + r]!) / (2 * h);
  return { value: first.value, grad };
}

registerShardKernel(MLE_KERNEL, (model, p) => (model as CNF).mleShard(p as unknown as MlePayload), (json) => CNF.fromJSON(json));
registerShardKernel(KL_KERNEL, (model, p) => (model as CNF).klShard(p as unknown as KlPayload), (json) => CNF.fromJSON(json));
