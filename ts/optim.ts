/** Optimisers (API.md §4): the update rules run in the core; params are updated in place. */
import { invalid } from './errors.js';
import { CoreHandle } from './handles.js';
import { callCore, core, Scratch } from './wasm.js';
import { finiteArray, nonNegativeNumber, plainObject, positiveNumber } from './validate.js';

type Params = Float64Array | Float32Array;

/** Owners of parameter views that live in the core (fields, models): lets an optimiser refuse
 *  to write into a disposed object's memory. */
const owners = new WeakMap<Params, { isDisposed(): boolean }>();
export function registerParamsOwner(view: Params, owner: { isDisposed(): boolean }): void {
  owners.set(view, owner);
}

export class Optimizer {
  private readonly h: CoreHandle;
  private readonly f32: boolean;
  /** Address of the parameters when they live in the core (stable), else -1. */
  private readonly ptr: number;
  private readonly owner?: { isDisposed(): boolean };
  /** Number of parameters (a view into core memory may detach when it grows; the address stays). */
  private readonly n: number;
  private readonly hostParams: Params;

  constructor(kind: 0 | 1 | 2, params: Params, hyper: number[]) {
    if (!(params instanceof Float64Array) && !(params instanceof Float32Array)) throw invalid('params', 'must be a Float64Array or Float32Array');
    const x = core().exports;
    this.f32 = params instanceof Float32Array;
    this.ptr = params.buffer === x.memory.buffer ? params.byteOffset : -1;
    this.owner = owners.get(params);
    this.n = params.length;
    this.hostParams = params;
    const s = new Scratch(x);
    try {
      const hp = s.put(Float64Array.from({ length: 5 }, (_, i) => hyper[i] ?? 0));
      const out = s.alloc(4);
      callCore((c) => c.nd_optim_create(kind, this.f32 ? 1 : 0, params.length, hp, out));
      this.h = new CoreHandle(new Uint32Array(x.memory.buffer, out, 1)[0]!, 'optimiser');
    } finally {
      s.free();
    }
  }

  /** One update: params ← params − step(grads). */
  step(grads: ArrayLike<number>): void {
    const h = this.h.get();
    if (this.owner?.isDisposed()) throw invalid('params', 'belong to a disposed object');
    const g = finiteArray('grads', grads);
    const n = this.n;
    if (g.length !== n) throw invalid('grads', `must hold ${n} numbers, got ${g.length}`);
    const x = core().exports;
    const s = new Scratch(x);
    try {
      const gp = s.put(g);
      if (this.ptr >= 0) {
        callCore((c) => c.nd_optim_step(h, this.ptr, n, gp));
      } else {
        const pp = s.put(this.hostParams, this.f32);
        callCore((c) => c.nd_optim_step(h, pp, n, gp));
        this.hostParams.set(this.f32 ? s.f32(pp, n) : s.f64(pp, n));
      }
    } finally {
      s.free();
    }
  }

  /** Changes the learning rate for later steps (learning-rate schedules). */
  setLearningRate(lr: number): void {
    const h = this.h.get();
    const v = positiveNumber('lr', lr);
    callCore((c) => c.nd_optim_set_lr(h, v));
  }

  /** Optimiser state (step count and moment buffers) for save/restore. */
  get state(): Float64Array {
    const h = this.h.get();
    const x = core().exports;
    const s = new Scratch(x);
    try {
      const cap = 3 * this.n + 8;
      const p = s.alloc(cap * 8);
      const len = x.nd_optim_state(h, p, cap);
      return s.f64(p, len).slice();
    } finally {
      s.free();
    }
  }

  set state(v: ArrayLike<number>) {
    const h = this.h.get();
    const st = finiteArray('state', v);
    const s = new Scratch(core().exports);
    try {
      const p = s.put(st);
      callCore((c) => c.nd_optim_set_state(h, p, st.length));
    } finally {
      s.free();
    }
  }

  dispose(): void {
    this.h.dispose();
  }
}

function opts(name: string, o: unknown) {
  const v = plainObject(name, o);
  if (v.lr === undefined) throw invalid(`${name}.lr`, 'is required');
  return v;
}

export const optim = {
  /** Adam (PyTorch semantics): betas [0.9, 0.999], eps 1e-8, weightDecay 0 (L2 added to the gradient). */
  adam(params: Params, o: { lr: number; betas?: [number, number]; eps?: number; weightDecay?: number }): Optimizer {
    const v = opts('options', o);
    const betas = (v.betas as [number, number] | undefined) ?? [0.9, 0.999];
    if (!Array.isArray(betas) || betas.length !== 2 || betas.some((b) => !(b >= 0 && b < 1))) throw invalid('betas', 'must be two numbers in [0, 1)');
    return new Optimizer(0, params, [positiveNumber('lr', v.lr), betas[0], betas[1], positiveNumber('eps', v.eps ?? 1e-8), nonNegativeNumber('weightDecay', v.weightDecay ?? 0)]);
  },
  /** SGD with optional momentum (PyTorch's buffer semantics). */
  sgd(params: Params, o: { lr: number; momentum?: number; weightDecay?: number }): Optimizer {
    const v = opts('options', o);
    return new Optimizer(1, params, [positiveNumber('lr', v.lr), nonNegativeNumber('momentum', v.momentum ?? 0), nonNegativeNumber('weightDecay', v.weightDecay ?? 0)]);
  },
  /** RMSprop (PyTorch): alpha 0.99, eps 1e-8. */
  rmsprop(params: Params, o: { lr: number; alpha?: number; eps?: number; weightDecay?: number }): Optimizer {
    const v = opts('options', o);
    const alpha = nonNegativeNumber('alpha', v.alpha ?? 0.99);
    if (alpha >= 1) throw invalid('alpha', 'must be < 1');
    return new Optimizer(2, params, [positiveNumber('lr', v.lr), alpha, positiveNumber('eps', v.eps ?? 1e-8), nonNegativeNumber('weightDecay', v.weightDecay ?? 0)]);
  },
};
