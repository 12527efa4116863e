/** Neural vector fields that live in the core (API.md §3): nn.mlp, nn.sequential, layers. */
import { invalid, NeurodeError } from './errors.js';
import { CoreHandle } from './handles.js';
import type { CoreField, Dtype } from './odeint.js';
import { callCore, core, Scratch, seedParts } from './wasm.js';
import { registerParamsOwner } from './optim.js';
import { finiteArray, oneOf, plainObject, positiveInteger } from './validate.js';

export type Activation = 'tanh' | 'relu' | 'softplus' | 'sigmoid' | 'elu';
export const ACTIVATIONS: readonly Activation[] = ['tanh', 'relu', 'softplus', 'sigmoid', 'elu'];
type ElementwiseKind = Activation | 'cube' | 'identity';

/** A layer description (plain data, as stored in toJSON). */
export type Layer =
  | { kind: 'linear' | 'concatLinear' | 'concatSquash'; in: number; out: number }
  | { kind: ElementwiseKind };

/** Integer codes of the core's layer encoding ([kind, in, out] triples). */
const KIND_CODE: Record<Layer['kind'], number> = {
  linear: 0, concatLinear: 1, concatSquash: 2, tanh: 3, relu: 4, softplus: 5, sigmoid: 6, elu: 7, cube: 8, identity: 9,
};
const LINEAR_KINDS = new Set(['linear', 'concatLinear', 'concatSquash']);

export const FIELD_FORMAT = 'neurode.field';
export const FIELD_FORMAT_VERSION = 1;

/** FNV-1a (32-bit) of the parameters' bytes, as 8 hex digits: a checksum for model files. */
export function fnv1a(bytes: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

export function paramDigest(params: Float64Array | Float32Array): string {
  return fnv1a(new Uint8Array(params.buffer, params.byteOffset, params.byteLength));
}

export function encodeLayers(layers: Layer[]): Uint32Array {
  if (!Array.isArray(layers) || layers.length === 0) throw invalid('layers', 'must be a non-empty array');
  const code = new Uint32Array(3 * layers.length);
  let width: number | undefined;
  layers.forEach((l, i) => {
    if (l === null || typeof l !== 'object' || !(l.kind in KIND_CODE)) throw invalid(`layers[${i}]`, `unknown layer ${JSON.stringify(l)}`);
    code[3 * i] = KIND_CODE[l.kind];
    if (LINEAR_KINDS.has(l.kind)) {
      const ll = l as { in: number; out: number };
      const din = positiveInteger(`layers[${i}].in`, ll.in, 1 << 24);
      const dout = positiveInteger(`layers[${i}].out`, ll.out, 1 << 24);
      if (width !== undefined && din !== width) throw invalid(`layers[${i}].in`, `is ${din} but the previous layer outputs ${width}`);
      code[3 * i + 1] = din;
      code[3 * i + 2] = dout;
      width = dout;
    } else {
      // elementwise: width of the previous layer (or of the next linear layer's input if first)
      const next = layers.slice(i + 1).find((m) => LINEAR_KINDS.has(m.kind)) as { in: number } | undefined;
      const w = width ?? next?.in;
      if (w === undefined) throw invalid(`layers[${i}]`, 'an elementwise layer needs a linear layer to set its width');
      code[3 * i + 1] = w;
      code[3 * i + 2] = w;
    }
  });
  return code;
}

export interface VectorFieldJSON {
  format: typeof FIELD_FORMAT;
  version: number;
  dtype: Dtype;
  layers: Layer[];
  params: number[];
  checksum: string;
}

/** A neural vector field f(t, y) on rows of width `dim`, evaluated in the core. */
export class VectorField implements CoreField {
  readonly dim: number;
  readonly numParams: number;
  readonly dtype: Dtype;
  readonly layers: readonly Layer[];
  private readonly h: CoreHandle;
  private view: Float64Array | Float32Array | null = null;
  private archDigest: string | undefined;

  /** Use nn.mlp / nn.sequential / nn.fromJSON. */
  constructor(layers: Layer[], o: { seed?: number; dtype?: Dtype; params?: ArrayLike<number>; initStd?: number } = {}) {
    const x = core().exports;
    const dtype = oneOf('dtype', o.dtype ?? 'float64', ['float64', 'float32'] as const);
    const seed = o.seed ?? 0;
    if (!Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER) throw invalid('seed', `must be a whole number from 0 to 2^53 − 1 (got ${String(seed)})`);
    const code = encodeLayers(layers);
    const s = new Scratch(x);
    let handle = 0;
    try {
      const cp = s.alloc(code.byteLength);
      new Uint32Array(x.memory.buffer, cp, code.length).set(code);
      const initStd = o.initStd ?? 0;
      if (typeof initStd !== 'number' || !(initStd >= 0) || !Number.isFinite(initStd)) throw invalid('initStd', 'must be a finite number >= 0');
      handle = s.create((c, hp) => c.nd_field_create(dtype === 'float32' ? 1 : 0, cp, code.length / 3, ...seedParts(seed), initStd, hp));
      const info = s.alloc(32);
      x.nd_field_info(handle, info);
      const v = s.f64(info, 4);
      this.dim = v[0]!;
      this.numParams = v[2]!;
    } finally {
      s.free();
    }
    this.dtype = dtype;
    this.layers = layers.map((l) => ({ ...l }));
    this.h = new CoreHandle(handle, 'vector field');
    if (o.params !== undefined) {
      const p = finiteArray('params', o.params);
      if (p.length !== this.numParams) throw invalid('params', `must hold ${this.numParams} numbers, got ${p.length}`);
      this.params.set(p);
    }
  }

  coreHandle(): number {
    return this.h.get();
  }

  /** A live view of the parameters in the core (recreated if the core's memory grew). */
  get params(): Float64Array | Float32Array {
    const h = this.h.get();
    const x = core().exports;
    if (this.view === null || this.view.length !== this.numParams || this.view.buffer !== x.memory.buffer) {
      const ptr = x.nd_field_params(h);
      this.view = this.dtype === 'float32' ? new Float32Array(x.memory.buffer, ptr, this.numParams) : new Float64Array(x.memory.buffer, ptr, this.numParams);
      registerParamsOwner(this.view, { isDisposed: () => this.h.isDisposed });
    }
    return this.view;
  }

  private rows(name: string, y: ArrayLike<number>): Float64Array {
    const v = finiteArray(name, y);
    if (v.length % this.dim !== 0) throw invalid(name, `length ${v.length} is not a multiple of dim ${this.dim}`);
    return v;
  }

  /** f(t, y) for a batch (y: batch × dim). */
  eval(t: number, y: ArrayLike<number>): Float64Array | Float32Array {
    const h = this.h.get();
    if (typeof t !== 'number' || !Number.isFinite(t)) throw invalid('t', 'must be a finite number');
    const v = this.rows('y', y);
    const f32 = this.dtype === 'float32';
    const s = new Scratch(core().exports);
    try {
      const yp = s.put(v, f32), op = s.alloc(v.length * (f32 ? 4 : 8));
      callCore((c) => c.nd_field_eval(h, t, yp, v.length, op));
      return f32 ? s.f32(op, v.length).slice() : s.f64(op, v.length).slice();
    } finally {
      s.free();
    }
  }

  /** a·∂f/∂y, a·∂f/∂θ (summed over the batch) and a·∂f/∂t. */
  vjp(t: number, y: ArrayLike<number>, a: ArrayLike<number>): { y: Float64Array; params: Float64Array; t: number } {
    const h = this.h.get();
    if (typeof t !== 'number' || !Number.isFinite(t)) throw invalid('t', 'must be a finite number');
    const v = this.rows('y', y);
    const av = finiteArray('a', a);
    if (av.length !== v.length) throw invalid('a', `must have the length of y (${v.length}), got ${av.length}`);
    const f32 = this.dtype === 'float32';
    const s = new Scratch(core().exports);
    try {
      const yp = s.put(v, f32), ap = s.put(av, f32);
      const oy = s.alloc(v.length * 8), opp = s.alloc(Math.max(1, this.numParams) * 8), ot = s.alloc(8);
      callCore((c) => c.nd_field_vjp(h, t, yp, v.length, ap, oy, opp, ot));
      return { y: s.f64(oy, v.length).slice(), params: s.f64(opp, this.numParams).slice(), t: s.f64(ot, 1)[0]! };
    } finally {
      s.free();
    }
  }

  /** Architecture + parameters (+ format version and checksum); nn.fromJSON restores it exactly. */
  toJSON(): VectorFieldJSON {
    const p = this.params;
    return { format: FIELD_FORMAT, version: FIELD_FORMAT_VERSION, dtype: this.dtype, layers: this.layers.map((l) => ({ ...l })), params: Array.from(p), checksum: paramDigest(p) };
  }

  /** A short key of the architecture and dtype (workers cache model instances by it). */
  digestArchitecture(): string {
    // layers and dtype never change: hash once
    return (this.archDigest ??= fnv1a(new TextEncoder().encode(JSON.stringify([this.dtype, this.layers]))));
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

export interface MlpOptions {
  dims: number[];
  activation?: Activation;
  time?: 'none' | 'concat' | 'concatsquash';
  inputCube?: boolean;
  seed?: number;
  dtype?: Dtype;
  /** Weights ~ N(0, initStd²) and biases 0 (torchdiffeq's ode_demo); default PyTorch's uniform init. */
  initStd?: number;
}

export function mlpLayers(o: MlpOptions): Layer[] {
  const opts = plainObject('options', o);
  if (!Array.isArray(opts.dims) || opts.dims.length < 2) throw invalid('dims', 'must be an array of at least 2 widths');
  const dims = (opts.dims as unknown[]).map((d, i) => positiveInteger(`dims[${i}]`, d, 1 << 24));
  if (dims[0] !== dims[dims.length - 1]) throw invalid('dims', `a vector field maps R^d to R^d: first and last width must match (${dims[0]} vs ${dims[dims.length - 1]})`);
  const act = oneOf('activation', opts.activation ?? 'tanh', ACTIVATIONS);
  const time = oneOf('time', opts.time ?? 'none', ['none', 'concat', 'concatsquash'] as const);
  const kind = time === 'none' ? 'linear' : time === 'concat' ? 'concatLinear' : 'concatSquash';
  const layers: Layer[] = [];
  if (opts.inputCube) layers.push({ kind: 'cube' });
  for (let k = 0; k + 1 < dims.length; k++) {
    layers.push({ kind, in: dims[k]!, out: dims[k + 1]! });
    if (k + 2 < dims.length) layers.push({ kind: act });
  }
  return layers;
}

export const nn = {
  /** A multilayer perceptron field (PyTorch parameter layout; see API.md §3). */
  mlp(o: MlpOptions): VectorField {
    return new VectorField(mlpLayers(o), { seed: o?.seed, dtype: o?.dtype, initStd: o?.initStd });
  },
  /** A field from a list of layers (nn.linear(i, o), nn.tanh(), …). */
  sequential(layers: Layer[], o: { seed?: number; dtype?: Dtype; initStd?: number } = {}): VectorField {
    return new VectorField(layers, o);
  },
  linear: (i: number, o: number): Layer => ({ kind: 'linear', in: i, out: o }),
  concatLinear: (i: number, o: number): Layer => ({ kind: 'concatLinear', in: i, out: o }),
  concatSquash: (i: number, o: number): Layer => ({ kind: 'concatSquash', in: i, out: o }),
  tanh: (): Layer => ({ kind: 'tanh' }),
  relu: (): Layer => ({ kind: 'relu' }),
  softplus: (): Layer => ({ kind: 'softplus' }),
  sigmoid: (): Layer => ({ kind: 'sigmoid' }),
  elu: (): Layer => ({ kind: 'elu' }),
  cube: (): Layer => ({ kind: 'cube' }),
  identity: (): Layer => ({ kind: 'identity' }),
  /** Restores a field from toJSON() output; rejects malformed, corrupted or mismatched input. */
  fromJSON(obj: unknown): VectorField {
    const o = plainObject('json', obj) as Partial<VectorFieldJSON>;
    if (o.format !== FIELD_FORMAT) throw invalid('json.format', `must be '${FIELD_FORMAT}'`);
    if (o.version !== FIELD_FORMAT_VERSION) throw invalid('json.version', `unsupported version ${String(o.version)} (this build reads ${FIELD_FORMAT_VERSION})`);
    if (!Array.isArray(o.layers)) throw invalid('json.layers', 'must be an array');
    const params = finiteArray('json.params', o.params ?? []);
    const dtype = oneOf('json.dtype', o.dtype, ['float64', 'float32'] as const);
    const f = new VectorField(o.layers as Layer[], { dtype });
    try {
      if (params.length !== f.numParams) throw invalid('json.params', `the architecture has ${f.numParams} parameters, the file ${params.length}`);
      f.params.set(params);
      if (f.digest() !== o.checksum) throw new NeurodeError('INVALID_ARGUMENT', 'json.checksum: the parameters do not match the checksum (corrupted file?)', { argument: 'json.checksum' });
      return f;
    } catch (e) {
      f.dispose(); // never hand out a half-built model
      throw e;
    }
  },
};
