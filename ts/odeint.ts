/** odeint: solve an ODE at the requested times (API.md §1). All numerics run in the core. */
import { invalid } from './errors.js';
import { activeRhs, callCore, core, Scratch, solverHooks, type ActiveRhs } from './wasm.js';
import { finiteArray, nonNegativeNumber, oneOf, plainObject, positiveInteger, positiveNumber, timeGrid } from './validate.js';

export type Rhs = (t: number, y: Float64Array, dydt: Float64Array) => void;
export type Dtype = 'float64' | 'float32';

// The core's method index is the position in this list (explicit RK tableaus first, then the
// stiff ESDIRK and the Adams methods of solver/stiff.rs and solver/adams.rs).
export const METHODS = ['euler', 'midpoint', 'heun', 'rk4', 'bosh3', 'dopri5', 'tsit5', 'dopri8', 'kvaerno5', 'explicit_adams', 'implicit_adams'] as const;
export type Method = (typeof METHODS)[number];
export const ADAPTIVE_METHODS: readonly Method[] = ['bosh3', 'dopri5', 'tsit5', 'dopri8', 'kvaerno5'];
/** Methods with Newton or corrector iterations: their stats also hold `newton` and `jacobians`. */
export const IMPLICIT_METHODS: readonly Method[] = ['kvaerno5', 'implicit_adams'];

export interface SolveOptions {
  method?: Method | string;
  /** Relative tolerance (adaptive methods); default 1e-7. */
  rtol?: number;
  /** Absolute tolerance: one number, one per state component, or one per feature (dim). Default 1e-9. */
  atol?: number | ArrayLike<number>;
  /** Step of fixed-step methods. */
  stepSize?: number;
  /** First step of adaptive methods; default: Hairer's heuristic. */
  firstStep?: number;
  /** Most steps (accepted + rejected) per solve; default 100 000. */
  maxSteps?: number;
  /** Times the integrator must step onto (discontinuities). */
  gridPoints?: ArrayLike<number>;
  /** 'joint': one step size for the whole state; 'independent': per row of width `dim`. */
  batchMode?: 'joint' | 'independent';
  /** Row width of the state for a JavaScript right-hand side (default: the whole state). */
  dim?: number;
  dtype?: Dtype;
  /** Step-size controller: safety factor (0.9), largest growth (10), shrink on rejection (0.2). */
  safety?: number;
  ifactor?: number;
  dfactor?: number;
  /** PI controller coefficients (diffrax convention). Default pcoeff 0, icoeff 1: an I controller. */
  pcoeff?: number;
  icoeff?: number;
  /** Known discontinuities of f (torchdiffeq's jump_t): steps end on them and restart from the
   *  right limit, so the controller does not shrink its step to cross them. Merged with gridPoints. */
  jumpTs?: ArrayLike<number>;
  /** Called for every step attempt: (t, y) where it started, whether it was accepted, its size h
   *  (signed). y is a copy. With odeintWithGrad see GradOptions.onStep. */
  onStep?: (t: number, y: Float64Array, accepted: boolean, h: number) => void;
}

/** nfe counts every evaluation of f (for kvaerno5 also one per Jacobian row or FD column);
 *  for the IMPLICIT_METHODS also newton (Newton/corrector iterations) and jacobians. */
export interface SolveStats { nfe: number; steps: number; rejected: number; newton?: number; jacobians?: number }

export interface Solution {
  ts: Float64Array;
  /** ts.length × state length, row-major; ys at ts[0] is y0. */
  ys: Float64Array | Float32Array;
  /** Totals; in independent mode also `rows`, one entry per batch row. */
  stats: SolveStats & { rows?: SolveStats[] };
}

/** A field that lives in the core (nn.mlp and friends), as odeint sees it. */
export interface CoreField {
  readonly dim: number;
  readonly dtype: Dtype;
  /** The core handle; throws if the field was disposed. */
  coreHandle(): number;
}

export function isCoreField(f: unknown): f is CoreField {
  return typeof f === 'object' && f !== null && typeof (f as CoreField).coreHandle === 'function';
}

/** Options after validation, packed as the core wants them. */
export interface PackedOptions {
  method: number;
  opts: Float64Array;
  atol: Float64Array;
  grid: Float64Array;
  independent: boolean;
  dtype: Dtype;
  dim: number;
}

const OPTION_KEYS = new Set(['method', 'rtol', 'atol', 'stepSize', 'firstStep', 'maxSteps', 'gridPoints', 'batchMode', 'dim', 'dtype', 'safety', 'ifactor', 'dfactor', 'pcoeff', 'icoeff', 'jumpTs', 'onStep']);

/** Validates solve options for a state of length n; `fieldDim` is the field's row width if known. */
export function packOptions(raw: unknown, n: number, fieldDim: number | undefined, extraKeys: readonly string[] = [], optionsName = 'options'): PackedOptions {
  const o = plainObject(optionsName, raw);
  for (const k of Object.keys(o)) {
    if (!OPTION_KEYS.has(k) && !extraKeys.includes(k) && o[k] !== undefined) throw invalid(`${optionsName}.${k}`, 'is not a known option');
  }
  const method = oneOf('method', o.method ?? 'dopri5', METHODS);
  const adaptive = ADAPTIVE_METHODS.includes(method);
  const opts = new Float64Array(10).fill(NaN);
  opts[0] = o.rtol === undefined ? NaN : positiveNumber('rtol', o.rtol);
  if (o.stepSize !== undefined) opts[1] = positiveNumber('stepSize', o.stepSize);
  if (o.firstStep !== undefined) opts[2] = positiveNumber('firstStep', o.firstStep);
  opts[3] = o.maxSteps === undefined ? 100_000 : positiveInteger('maxSteps', o.maxSteps, 2 ** 52);
  const batchMode = oneOf('batchMode', o.batchMode ?? 'joint', ['joint', 'independent'] as const);
  const dtype = oneOf('dtype', o.dtype ?? 'float64', ['float64', 'float32'] as const);
  let dim = n;
  if (o.dim !== undefined) {
    dim = positiveInteger('dim', o.dim);
    if (fieldDim !== undefined && dim !== fieldDim) throw invalid('dim', `is ${dim} but the field's dim is ${fieldDim}`);
  } else if (fieldDim !== undefined) {
    dim = fieldDim;
  }
  if (n % dim !== 0) throw invalid('y0', `length ${n} is not a multiple of dim ${dim}`);
  opts[4] = batchMode === 'independent' ? 1 : 0;
  if (o.safety !== undefined) opts[5] = positiveNumber('safety', o.safety);
  if (o.ifactor !== undefined) opts[6] = positiveNumber('ifactor', o.ifactor);
  if (o.dfactor !== undefined) opts[7] = positiveNumber('dfactor', o.dfactor);
  if (o.pcoeff !== undefined) opts[8] = nonNegativeNumber('pcoeff', o.pcoeff);
  if (o.icoeff !== undefined) opts[9] = nonNegativeNumber('icoeff', o.icoeff);
  if (!adaptive && o.stepSize === undefined && o.gridPoints === undefined && o.jumpTs === undefined) {
    throw invalid('stepSize', `is required for the fixed-step method '${method}' (or give gridPoints)`);
  }
  let atol: Float64Array = new Float64Array(0);
  if (o.atol !== undefined) {
    if (typeof o.atol === 'number') {
      atol = Float64Array.of(nonNegativeNumber('atol', o.atol));
    } else {
      const a = finiteArray('atol', o.atol);
      if (a.some((v) => v < 0)) throw invalid('atol', 'must be >= 0');
      if (a.length === n) atol = a;
      else if (a.length === dim) {
        // one value per feature, repeated for every row
        atol = new Float64Array(n);
        for (let i = 0; i < n; i += dim) atol.set(a, i);
      } else throw invalid('atol', `must be a number or an array of length ${n} (state) or ${dim} (dim), got length ${a.length}`);
    }
  }
  let grid = o.gridPoints === undefined ? new Float64Array(0) : finiteArray('gridPoints', o.gridPoints, { allowEmpty: true });
  if (o.jumpTs !== undefined) {
    const jumps = finiteArray('jumpTs', o.jumpTs, { allowEmpty: true });
    const merged = new Float64Array(grid.length + jumps.length);
    merged.set(grid);
    merged.set(jumps, grid.length);
    grid = merged;
  }
  if (o.onStep !== undefined && typeof o.onStep !== 'function') throw invalid('onStep', 'must be a function (t, y, accepted, h) => void');
  if (o.onStep !== undefined && batchMode === 'independent') throw invalid('onStep', "is not supported with batchMode 'independent'");
  return { method: METHODS.indexOf(method), opts, atol, grid, independent: batchMode === 'independent', dtype, dim };
}

/**
 * Solves dy/dt = f(t, y) from y(ts[0]) = y0 and returns y at every time in ts.
 * `f` is a JavaScript function `(t, y, dydt) => void` (called from the core once per
 * evaluation; `y` and `dydt` are views valid only during the call) or a core vector field.
 */
export function odeint(f: Rhs | CoreField, y0: ArrayLike<number>, ts: ArrayLike<number>, options: SolveOptions = {}): Solution {
  const x = core().exports;
  if (typeof f !== 'function' && !isCoreField(f)) throw invalid('f', 'must be a function (t, y, dydt) => void or a vector field');
  const y = finiteArray('y0', y0);
  const times = timeGrid('ts', ts);
  const field = isCoreField(f) ? f : undefined;
  const p = packOptions(options, y.length, field?.dim);
  if (field && field.dtype !== p.dtype && options.dtype !== undefined) throw invalid('dtype', `is '${p.dtype}' but the field is '${field.dtype}'`);
  const dtype = field ? field.dtype : p.dtype;
  const f32 = dtype === 'float32';
  const n = y.length;
  const batch = n / p.dim;
  const nStats = p.independent ? 3 * (batch + 1) : 3;
  const handle = field ? field.coreHandle() : 0;
  const s = new Scratch(x);
  try {
    const y0p = s.put(y, f32);
    const tsp = s.put(times);
    const optp = s.put(p.opts);
    const atolp = s.put(p.atol);
    const gridp = s.put(p.grid);
    const outp = s.alloc(times.length * n * (f32 ? 4 : 8));
    const statp = s.alloc(nStats * 8);
    const rhs = typeof f === 'function' ? activeRhs(f as (t: number, y: Float64Array | Float32Array, dy: Float64Array | Float32Array) => void, f32) : undefined;
    withStepHook(options.onStep, rhs, f32, (r) => callCore((c) => c.nd_odeint(f32 ? 1 : 0, handle, p.method, y0p, n, p.dim, tsp, times.length, optp, atolp, p.atol.length, gridp, p.grid.length, outp, statp), r));
    const ys = f32 ? s.f32(outp, times.length * n).slice() : s.f64(outp, times.length * n).slice();
    const st = s.f64(statp, nStats);
    const stats: Solution['stats'] = { nfe: st[0]!, steps: st[1]!, rejected: st[2]!, ...(IMPLICIT_METHODS.includes(METHODS[p.method]!) ? lastNewtonStats(s) : {}) };
    if (p.independent) {
      stats.rows = [];
      for (let b = 0; b < batch; b++) stats.rows.push({ nfe: st[3 * (b + 1)]!, steps: st[3 * (b + 1) + 1]!, rejected: st[3 * (b + 1) + 2]! });
    }
    return { ts: times, ys, stats };
  } finally {
    s.free();
  }
}

/** Newton iterations and Jacobians of the last core solve. */
export function lastNewtonStats(s: Scratch): { newton: number; jacobians: number } {
  const p = s.alloc(40);
  core().exports.nd_last_stats(p);
  const v = s.f64(p, 5);
  return { newton: v[3]!, jacobians: v[4]! };
}

/** Runs a core call with the step callback switched on (or not). A core field still needs an
 *  ActiveRhs on the stack so that an exception thrown by the callback is re-thrown. */
export function withStepHook(onStep: SolveOptions['onStep'], rhs: ActiveRhs | undefined, f32: boolean, run: (rhs: ActiveRhs | undefined) => void): void {
  if (onStep === undefined) return run(rhs);
  const x = core().exports;
  const r = rhs ?? activeRhs(() => { throw new Error('no JavaScript right-hand side'); }, f32);
  solverHooks.step = onStep;
  x.nd_set_on_step(1);
  try {
    run(r);
  } finally {
    x.nd_set_on_step(0);
    solverHooks.step = undefined;
  }
}
