/** odeintWithGrad: a forward solve whose backward() returns dL/dy0, dL/dθ and dL/dts (API.md §2). */
import { invalid } from './errors.js';
import { CoreHandle } from './handles.js';
import { isCoreField, packOptions, withStepHook, type CoreField, type Rhs, type Solution, type SolveOptions, type SolveStats } from './odeint.js';
import { activeRhs, callCore, core, Scratch, type JsVjp } from './wasm.js';
import { finiteArray, oneOf, positiveNumber, nonNegativeNumber, timeGrid } from './validate.js';

export type GradMode = 'adjoint' | 'backprop' | 'checkpoint';
export const GRAD_MODES: readonly GradMode[] = ['adjoint', 'backprop', 'checkpoint'];

export interface GradOptions extends SolveOptions {
  /** adjoint: Chen et al. Algorithm 1 (memory O(1) in steps); backprop: exact gradient of the
   *  discrete solve (stores every stage); checkpoint: the same, storing only states. */
  grad: GradMode;
  adjointRtol?: number;
  adjointAtol?: number;
  /** 'seminorm' (default): a_θ and a_t are left out of the adjoint's error norm. */
  adjointNorm?: 'full' | 'seminorm';
  /** Step callback of the backward pass (default: onStep). There `y` is, for 'adjoint', the
   *  augmented state [z, a, a_t, a_θ] of the backward solve (t runs backward); for 'backprop' and
   *  'checkpoint', dL/dy at each recorded step's start, the steps visited in reverse. */
  onBackwardStep?: (t: number, y: Float64Array, accepted: boolean, h: number) => void;
}

/** (t, y, a, outY, outParams) => void | number: a·∂f/∂y, a·∂f/∂θ, and optionally returns a·∂f/∂t. */
export type Vjp = (t: number, y: Float64Array, a: Float64Array, outY: Float64Array, outParams: Float64Array) => void | number;

/** A JavaScript field with its vector-Jacobian product. */
export interface VjpPair {
  f: Rhs;
  vjp: Vjp;
  /** Length of outParams (default 0). */
  numParams?: number;
}

export interface Grads {
  y0: Float64Array;
  params: Float64Array;
  ts: Float64Array;
  /** Backward pass statistics (nfe counts every evaluation and VJP). */
  stats: SolveStats;
}

export interface GradSolution extends Solution {
  /** dL/dys (ts.length × state length) → gradients. Call once; it frees the stored forward pass. */
  backward(dLdys: ArrayLike<number>): Grads;
  /** Bytes the core holds for the backward pass (deterministic). */
  readonly storedBytes: number;
  /** Frees the stored forward pass without a backward pass. */
  dispose(): void;
}

function isVjpPair(f: unknown): f is VjpPair {
  return typeof f === 'object' && f !== null && typeof (f as VjpPair).f === 'function' && typeof (f as VjpPair).vjp === 'function';
}

export function odeintWithGrad(f: CoreField | VjpPair, y0: ArrayLike<number>, ts: ArrayLike<number>, options: GradOptions): GradSolution {
  const x = core().exports;
  if (!isCoreField(f) && !isVjpPair(f)) throw invalid('f', 'must be a vector field or an object { f, vjp }');
  if (options === undefined || options === null || typeof options !== 'object') throw invalid('options', "must be an object with grad: 'adjoint' | 'backprop' | 'checkpoint'");
  const mode = oneOf('grad', options.grad, GRAD_MODES);
  const y = finiteArray('y0', y0);
  const times = timeGrid('ts', ts);
  const field = isCoreField(f) ? f : undefined;
  const p = packOptions(options, y.length, field?.dim, ['grad', 'adjointRtol', 'adjointAtol', 'adjointNorm', 'onBackwardStep']);
  if (options.onBackwardStep !== undefined && typeof options.onBackwardStep !== 'function') throw invalid('onBackwardStep', 'must be a function (t, y, accepted, h) => void');
  if (p.independent) throw invalid('batchMode', "'independent' is not supported with gradients; use 'joint'");
  const jsParams = field ? 0 : options && isVjpPair(f) && f.numParams !== undefined ? nonNegIntParams(f.numParams) : 0;
  const gopts = Float64Array.of(
    GRAD_MODES.indexOf(mode),
    options.adjointRtol === undefined ? NaN : positiveNumber('adjointRtol', options.adjointRtol),
    options.adjointAtol === undefined ? NaN : nonNegativeNumber('adjointAtol', options.adjointAtol),
    oneOf('adjointNorm', options.adjointNorm ?? 'seminorm', ['full', 'seminorm'] as const) === 'seminorm' ? 1 : 0,
    jsParams,
  );
  const dtype = field ? field.dtype : p.dtype;
  const f32 = dtype === 'float32';
  const n = y.length;
  const handle = field ? field.coreHandle() : 0;
  const makeRhs = () => (isVjpPair(f) ? activeRhs(f.f as (t: number, y: Float64Array | Float32Array, dy: Float64Array | Float32Array) => void, f32, f.vjp as JsVjp) : undefined);
  const s = new Scratch(x);
  let tape: CoreHandle;
  let sol: Solution;
  try {
    const y0p = s.put(y, f32), tsp = s.put(times), optp = s.put(p.opts), atolp = s.put(p.atol), gridp = s.put(p.grid), gp = s.put(gopts);
    const outp = s.alloc(times.length * n * (f32 ? 4 : 8));
    const statp = s.alloc(24);
    const tapep = s.alloc(4);
    withStepHook(options.onStep, makeRhs(), f32, (r) => callCore((c) => c.nd_grad_forward(f32 ? 1 : 0, handle, p.method, y0p, n, tsp, times.length, optp, atolp, p.atol.length, gridp, p.grid.length, gp, outp, statp, tapep), r));
    const st = s.f64(statp, 3);
    sol = { ts: times, ys: f32 ? s.f32(outp, times.length * n).slice() : s.f64(outp, times.length * n).slice(), stats: { nfe: st[0]!, steps: st[1]!, rejected: st[2]! } };
    tape = new CoreHandle(new Uint32Array(x.memory.buffer, tapep, 1)[0]!, 'gradient tape');
  } finally {
    s.free();
  }
  const numParams = field ? (field as CoreField & { numParams: number }).numParams : jsParams;
  return {
    ...sol,
    get storedBytes() {
      return core().exports.nd_tape_bytes(tape.get());
    },
    dispose: () => tape.dispose(),
    backward(dLdys: ArrayLike<number>): Grads {
      const h = tape.get();
      const w = finiteArray('dLdys', dLdys);
      if (w.length !== times.length * n) throw invalid('dLdys', `must hold ts.length × state length = ${times.length * n} numbers, got ${w.length}`);
      const c = core().exports;
      const sc = new Scratch(c);
      try {
        const wp = sc.put(w, f32);
        const gy = sc.alloc(n * 8), gpar = sc.alloc(Math.max(1, numParams) * 8), gts = sc.alloc(times.length * 8), stp = sc.alloc(24);
        // the core consumes the tape whatever happens
        tape.consumed();
        if (field) field.coreHandle(); // throws if the field was disposed meanwhile
        withStepHook(options.onBackwardStep ?? options.onStep, makeRhs(), f32, (r) => callCore((cc) => cc.nd_grad_backward(h, handle, jsParams, wp, gy, gpar, numParams, gts, stp), r));
        const st = sc.f64(stp, 3);
        return { y0: sc.f64(gy, n).slice(), params: sc.f64(gpar, numParams).slice(), ts: sc.f64(gts, times.length).slice(), stats: { nfe: st[0]!, steps: st[1]!, rejected: st[2]! } };
      } finally {
        sc.free();
      }
    },
  };
}

function nonNegIntParams(v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw invalid('numParams', `must be a whole number >= 0 (got ${String(v)})`);
  return v;
}
