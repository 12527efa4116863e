/**
 * ODENetClassifier (API.md §5, paper Section 3): an image classifier whose residual blocks are
 * replaced by one ODE block. The network, its loss and gradient live in the core; one core call
 * computes a shard's loss + gradient. fit() runs minibatches through train.ts (fixed-size shards
 * by sample index, summed in order, so a WorkerPool gives the same bits as none).
 *
 * Architectures: 'conv' (torchdiffeq's odenet_mnist, 208,266 parameters on MNIST), 'mlp' (an
 * ODE block on a width-wide projection), and the baselines of Table 1: 'resnet' (same
 * downsampling + `blocks` residual blocks) and 'mlp-baseline' (one hidden relu layer).
 * `grad: 'adjoint'` is the ODE-Net, `grad: 'backprop'` the RK-Net.
 */
import { invalid, NeurodeError } from './errors.js';
import { CoreHandle } from './handles.js';
import { METHODS, ADAPTIVE_METHODS, type Dtype, type Method } from './odeint.js';
import { GRAD_MODES, type GradMode } from './grad.js';
import { fnv1a, paramDigest } from './nn.js';
import { optim, registerParamsOwner, type Optimizer } from './optim.js';
import {
  combineShards, computeShards, fitLoop, fitOptions, random, registerShardKernel, shardRanges,
  type FitOptions, type History, type ShardJob, type ShardResult, type StepResult,
} from './train.js';
import { callCore, core, Scratch, seedParts } from './wasm.js';
import { finiteArray, oneOf, plainObject, positiveInteger, positiveNumber, nonNegativeNumber } from './validate.js';

export type ClassifierArch = 'conv' | 'mlp' | 'resnet' | 'mlp-baseline';
const ARCHS: readonly ClassifierArch[] = ['conv', 'mlp', 'resnet', 'mlp-baseline'];

export interface ODENetClassifierOptions {
  /** Shape of one input row: [channels, height, width], [height, width] or [features]. */
  inputShape: number[];
  classes: number;
  arch?: ClassifierArch;
  /** Channels ('conv', 'resnet'; default 64) or units ('mlp' 64, 'mlp-baseline' 300). */
  width?: number;
  /** Residual blocks of 'resnet' (default 6). */
  blocks?: number;
  /** ODE block solver (default dopri5, rtol = atol = 1e-3 as in torchdiffeq's odenet_mnist). */
  method?: Method;
  rtol?: number;
  atol?: number;
  stepSize?: number;
  maxSteps?: number;
  /** 'adjoint' (ODE-Net, default), 'backprop' (RK-Net) or 'checkpoint'. */
  grad?: GradMode;
  adjointRtol?: number;
  adjointAtol?: number;
  adjointNorm?: 'full' | 'seminorm';
  seed?: number;
  /** Default 'float32' (twice the SIMD throughput of float64). */
  dtype?: Dtype;
}

/** fit() options: the shared FitOptions plus the optimiser and schedule. */
export interface ClassifierFitOptions extends FitOptions {
  /** 'sgd' (momentum 0.9, lr 0.1: torchdiffeq's odenet_mnist) or 'adam' (lr 1e-3). */
  optimizer?: 'sgd' | 'adam';
  momentum?: number;
  weightDecay?: number;
  /** Learning rate per epoch: MultiStepLR milestones (epochs, lr × gamma at each), or a function. */
  lrSchedule?: { milestones: number[]; gamma?: number } | ((epoch: number, iteration: number) => number);
  /** Rows per shard (fixed, independent of the pool): the unit of data-parallel work. Default 64. */
  shardSize?: number;
}

export interface ClassifierStep {
  loss: number;
  /** Rows classified correctly (the batch's training accuracy × rows). */
  correct: number;
  grad: Float64Array;
  nfeForward: number;
  nfeBackward: number;
  steps: number;
  /** Bytes the depth part stores for the backward pass (residual activations / ODE tape). */
  depthBytes: number;
  /** Core bytes of the step: workspaces (incl. stored activations) + the allocator's peak above them. */
  memoryBytes: number;
}

export const CLASSIFIER_FORMAT = 'neurode.odenet';
export const CLASSIFIER_FORMAT_VERSION = 1;

interface Config {
  arch: ClassifierArch;
  inputShape: [number, number, number];
  classes: number;
  width: number;
  blocks: number;
  method: Method;
  rtol: number;
  atol: number;
  stepSize?: number;
  maxSteps: number;
  grad: GradMode;
  adjointRtol?: number;
  adjointAtol?: number;
  adjointNorm: 'full' | 'seminorm';
  seed: number;
  dtype: Dtype;
}

export interface ClassifierJSON {
  format: typeof CLASSIFIER_FORMAT;
  version: number;
  config: Config;
  params: number[];
  checksum: string;
}

function normalize(o: unknown): Config {
  const v = plainObject('options', o) as Partial<ODENetClassifierOptions>;
  if (!Array.isArray(v.inputShape) || v.inputShape.length < 1 || v.inputShape.length > 3) throw invalid('inputShape', 'must be [channels, height, width], [height, width] or [features]');
  const dims = v.inputShape.map((d, i) => positiveInteger(`inputShape[${i}]`, d, 65536));
  const shape: [number, number, number] = dims.length === 3 ? [dims[0]!, dims[1]!, dims[2]!] : dims.length === 2 ? [1, dims[0]!, dims[1]!] : [dims[0]!, 1, 1];
  const arch = oneOf('arch', v.arch ?? 'conv', ARCHS);
  if ((arch === 'conv' || arch === 'resnet') && dims.length === 1) throw invalid('inputShape', `arch '${arch}' needs an image shape [channels, height, width]`);
  const method = oneOf('method', v.method ?? 'dopri5', METHODS);
  if (!ADAPTIVE_METHODS.includes(method) && v.stepSize === undefined) throw invalid('stepSize', `is required for the fixed-step method '${method}'`);
  const seed = v.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER) throw invalid('seed', 'must be a whole number from 0 to 2^53 − 1');
  const c: Config = {
    arch,
    inputShape: shape,
    classes: positiveInteger('classes', v.classes, 4096),
    width: positiveInteger('width', v.width ?? (arch === 'mlp-baseline' ? 300 : 64), 4096),
    blocks: v.blocks === undefined ? 6 : positiveInteger('blocks', v.blocks, 64),
    method,
    rtol: positiveNumber('rtol', v.rtol ?? 1e-3),
    atol: positiveNumber('atol', v.atol ?? 1e-3),
    maxSteps: positiveInteger('maxSteps', v.maxSteps ?? 1000, 1e9),
    grad: oneOf('grad', v.grad ?? 'adjoint', GRAD_MODES),
    adjointNorm: oneOf('adjointNorm', v.adjointNorm ?? 'seminorm', ['full', 'seminorm'] as const),
    seed,
    dtype: oneOf('dtype', v.dtype ?? 'float32', ['float64', 'float32'] as const),
  };
  if (c.classes < 2) throw invalid('classes', 'must be at least 2');
  if (v.stepSize !== undefined) c.stepSize = positiveNumber('stepSize', v.stepSize);
  if (v.adjointRtol !== undefined) c.adjointRtol = positiveNumber('adjointRtol', v.adjointRtol);
  if (v.adjointAtol !== undefined) c.adjointAtol = positiveNumber('adjointAtol', v.adjointAtol);
  return c;
}

/** The core's f64 configuration record (abi_odenet.rs CFG_COUNT). */
function packConfig(c: Config): Float64Array {
  return Float64Array.from([
    ARCHS.indexOf(c.arch), c.inputShape[0], c.inputShape[1], c.inputShape[2], c.classes, c.width, c.blocks,
    METHODS.indexOf(c.method), c.rtol, c.atol, GRAD_MODES.indexOf(c.grad), c.maxSteps,
    c.stepSize ?? NaN, c.adjointRtol ?? NaN, c.adjointAtol ?? NaN, c.adjointNorm === 'seminorm' ? 1 : 0,
  ]);
}

function labelsOf(name: string, y: unknown, n: number, classes: number): Int32Array {
  if (!(y instanceof Uint8Array || y instanceof Int32Array || Array.isArray(y))) throw invalid(name, 'must be a Uint8Array or Int32Array of class indices');
  if (y.length !== n) throw invalid(name, `must hold ${n} labels (one per row), got ${y.length}`);
  const out = Int32Array.from(y as ArrayLike<number>);
  for (let i = 0; i < n; i++) {
    const v = out[i]!;
    if (!(v >= 0 && v < classes) || v !== (y as ArrayLike<number>)[i]) throw invalid(name, `element ${i} is ${String((y as ArrayLike<number>)[i])} (must be a whole number in [0, ${classes}))`);
  }
  return out;
}

const KERNEL = 'odenet-xent';
const SHUFFLE_STREAM = 0x0de7;

export class ODENetClassifier {
  readonly numParams: number;
  readonly inputSize: number;
  readonly classes: number;
  readonly dtype: Dtype;
  readonly arch: ClassifierArch;
  private readonly config: Config;
  private readonly h: CoreHandle;
  private view: Float64Array | Float32Array | null = null;

  constructor(o: ODENetClassifierOptions) {
    this.config = normalize(o);
    const c = this.config;
    const x = core().exports;
    const s = new Scratch(x);
    let handle = 0;
    try {
      const cp = s.put(packConfig(c));
      handle = s.create((k, hp) => k.nd_classifier_create(c.dtype === 'float32' ? 1 : 0, cp, ...seedParts(c.seed), hp));
      const ip = s.alloc(32);
      x.nd_classifier_info(handle, ip);
      const info = s.f64(ip, 4);
      this.numParams = info[0]!;
      this.inputSize = info[2]!;
    } finally {
      s.free();
    }
    this.classes = c.classes;
    this.dtype = c.dtype;
    this.arch = c.arch;
    this.h = new CoreHandle(handle, 'classifier');
  }

  /** A live view of the parameters in the core (PyTorch layout, layers in order). */
  get params(): Float64Array | Float32Array {
    const h = this.h.get();
    const x = core().exports;
    if (this.view === null || this.view.buffer !== x.memory.buffer) {
      const ptr = x.nd_classifier_params(h);
      this.view = this.dtype === 'float32' ? new Float32Array(x.memory.buffer, ptr, this.numParams) : new Float64Array(x.memory.buffer, ptr, this.numParams);
      registerParamsOwner(this.view, { isDisposed: () => this.h.isDisposed });
    }
    return this.view;
  }

  private rows(name: string, x: unknown): number {
    if (!(x instanceof Float32Array)) throw invalid(name, 'must be a Float32Array of rows × inputSize values');
    if (x.length === 0 || x.length % this.inputSize !== 0) throw invalid(name, `length ${x.length} is not a positive multiple of the input size ${this.inputSize}`);
    return x.length / this.inputSize;
  }

  /** Mean cross-entropy of a batch and its gradient: one core call (the shard kernel). */
  lossGrad(x: Float32Array, y: Uint8Array | Int32Array): ClassifierStep {
    const h = this.h.get();
    const n = this.rows('x', x);
    const labels = labelsOf('y', y, n, this.classes);
    const k = core().exports;
    const s = new Scratch(k);
    try {
      const xp = s.put(x, true), lp = s.alloc(4 * n), gp = s.alloc(8 * this.numParams), sp = s.alloc(8 * 7);
      new Int32Array(k.memory.buffer, lp, n).set(labels);
      callCore((c) => c.nd_classifier_loss_grad(h, xp, x.length, lp, n, gp, this.numParams, sp));
      const st = s.f64(sp, 7);
      return {
        loss: st[0]!, correct: st[1]!, nfeForward: st[2]!, nfeBackward: st[3]!, steps: st[4]!, depthBytes: st[5]!, memoryBytes: st[6]!,
        grad: s.f64(gp, this.numParams).slice(),
      };
    } finally {
      s.free();
    }
  }

  private run(x: Float32Array, y?: Int32Array): { pred: Int32Array; loss: number; correct: number; nfe: number; chunks: number } {
    const h = this.h.get();
    const n = x.length / this.inputSize;
    const k = core().exports;
    const s = new Scratch(k);
    try {
      const xp = s.put(x, true), lp = s.alloc(4 * n), pp = s.alloc(4 * n), op = s.alloc(32);
      if (y) new Int32Array(k.memory.buffer, lp, n).set(y);
      callCore((c) => c.nd_classifier_evaluate(h, xp, x.length, lp, y ? 1 : 0, n, pp, op));
      const o = s.f64(op, 4);
      return { pred: new Int32Array(k.memory.buffer, pp, n).slice(), loss: o[0]!, correct: o[1]!, nfe: o[2]!, chunks: o[3]! };
    } finally {
      s.free();
    }
  }

  /** Predicted class of every row. */
  predict(x: Float32Array): Int32Array {
    this.rows('x', x);
    return this.run(x).pred;
  }

  /** Accuracy, mean cross-entropy and mean forward NFE per ODE solve (chunks of 256 rows). */
  evaluate(x: Float32Array, y: Uint8Array | Int32Array): { accuracy: number; loss: number; nfe: number } {
    const n = this.rows('x', x);
    const r = this.run(x, labelsOf('y', y, n, this.classes));
    return { accuracy: r.correct / n, loss: r.loss / n, nfe: r.nfe / r.chunks };
  }

  /**
   * Minibatch training. Each epoch visits the rows in an order drawn from (seed, epoch); each
   * batch is split into fixed-size shards whose gradients are summed in shard order.
   * History: loss, NFE forward/backward per ODE solve (mean over the batch's shards) and, in
   * `extra`, the batch accuracy and learning rate.
   */
  async fit(x: Float32Array, y: Uint8Array | Int32Array, options: ClassifierFitOptions = {}): Promise<History> {
    this.h.get();
    const o = fitOptions(options) as ClassifierFitOptions;
    const n = this.rows('x', x);
    const labels = labelsOf('y', y, n, this.classes);
    const batchSize = Math.min(o.batchSize ?? 128, n);
    const shardSize = o.shardSize === undefined ? 64 : positiveInteger('shardSize', o.shardSize);
    const perEpoch = Math.ceil(n / batchSize);
    if (o.epochs !== undefined && o.iterations !== undefined) throw invalid('iterations', 'give epochs or iterations, not both');
    const iterations = o.iterations ?? perEpoch * (o.epochs ?? 1);
    const kind = oneOf('optimizer', o.optimizer ?? 'sgd', ['sgd', 'adam'] as const);
    const baseLr = o.lr ?? (kind === 'sgd' ? 0.1 : 1e-3);
    const schedule = o.lrSchedule;
    if (schedule !== undefined && typeof schedule !== 'function') {
      const sc = plainObject('lrSchedule', schedule);
      if (!Array.isArray(sc.milestones)) throw invalid('lrSchedule.milestones', 'must be an array of epochs');
      sc.milestones.forEach((m, i) => positiveInteger(`lrSchedule.milestones[${i}]`, m));
      if (sc.gamma !== undefined) positiveNumber('lrSchedule.gamma', sc.gamma);
    }
    const lrAt = (epoch: number, it: number): number => {
      if (schedule === undefined) return baseLr;
      if (typeof schedule === 'function') {
        const v = schedule(epoch, it);
        return positiveNumber('lrSchedule()', v);
      }
      let lr = baseLr;
      for (const m of schedule.milestones) if (epoch > m) lr *= schedule.gamma ?? 0.1;
      return lr;
    };
    const wd = nonNegativeNumber('weightDecay', o.weightDecay ?? 0);
    const opt: Optimizer = kind === 'sgd'
      ? optim.sgd(this.params, { lr: baseLr, momentum: nonNegativeNumber('momentum', o.momentum ?? 0.9), weightDecay: wd })
      : optim.adam(this.params, { lr: baseLr, weightDecay: wd });
    const seed = o.seed ?? this.config.seed;
    let order = new Int32Array(0);
    let orderEpoch = -1;
    const modelKey = 'odenet:' + fnv1a(new TextEncoder().encode(JSON.stringify(this.config)));
    const model = { format: CLASSIFIER_FORMAT, version: CLASSIFIER_FORMAT_VERSION, config: this.config };
    const step = async (it: number): Promise<StepResult> => {
      const epoch = Math.floor(it / perEpoch);
      if (epoch !== orderEpoch) {
        // a permutation keyed by (seed, epoch): sort rows by counter-based uniform keys
        const keys = random('uniform', n, { seed, stream: SHUFFLE_STREAM + epoch });
        order = Int32Array.from({ length: n }, (_, i) => i).sort((a, b) => keys[a]! - keys[b]! || a - b);
        orderEpoch = epoch;
      }
      const b0 = (it % perEpoch) * batchSize;
      const rows = order.subarray(b0, Math.min(n, b0 + batchSize));
      const jobs: ShardJob[] = shardRanges(rows.length, shardSize).map(([s0, s1], si) => {
        const xs = new Float32Array((s1 - s0) * this.inputSize);
        const ys = new Int32Array(s1 - s0);
        for (let r = s0; r < s1; r++) {
          const row = rows[r]!;
          xs.set(x.subarray(row * this.inputSize, (row + 1) * this.inputSize), (r - s0) * this.inputSize);
          ys[r - s0] = labels[row]!;
        }
        return { kernel: KERNEL, modelKey, model, params: this.params, payload: { x: xs, y: ys, weight: (s1 - s0) / rows.length, shard: si } };
      });
      const results = await computeShards(jobs, this, o.pool);
      const r = combineShards(results, this.numParams);
      const lr = lrAt(epoch + 1, it);
      opt.setLearningRate(lr);
      opt.step(r.grad);
      let correct = 0;
      for (const q of results) correct += q.extra?.correct ?? 0;
      return {
        loss: r.loss,
        nfeForward: r.nfeForward / results.length,
        nfeBackward: r.nfeBackward / results.length,
        extra: { accuracy: correct / rows.length, lr },
      };
    };
    try {
      return await fitLoop(o, iterations, perEpoch, step, {
        params: () => this.params,
        optimizerState: () => opt.state,
        restore: (p, st) => { this.params.set(p); opt.state = st; },
      });
    } finally {
      opt.dispose();
    }
  }

  private configJSON(): Config {
    return { ...this.config, inputShape: [...this.config.inputShape] as [number, number, number] };
  }

  /** Configuration + parameters + format version + checksum; fromJSON restores it exactly. */
  toJSON(): ClassifierJSON {
    const p = this.params;
    return { format: CLASSIFIER_FORMAT, version: CLASSIFIER_FORMAT_VERSION, config: this.configJSON(), params: Array.from(p), checksum: paramDigest(p) };
  }

  static fromJSON(obj: unknown): ODENetClassifier {
    const o = plainObject('json', obj) as Partial<ClassifierJSON>;
    if (o.format !== CLASSIFIER_FORMAT) throw invalid('json.format', `must be '${CLASSIFIER_FORMAT}'`);
    if (o.version !== CLASSIFIER_FORMAT_VERSION) throw invalid('json.version', `unsupported version ${String(o.version)} (this build reads ${CLASSIFIER_FORMAT_VERSION})`);
    const c = plainObject('json.config', o.config) as unknown as Config;
    const m = new ODENetClassifier({ ...c, inputShape: c.inputShape });
    try {
      const params = finiteArray('json.params', o.params ?? []);
      if (params.length !== m.numParams) throw invalid('json.params', `the architecture has ${m.numParams} parameters, the file ${params.length}`);
      m.params.set(params);
      if (paramDigest(m.params) !== o.checksum) throw new NeurodeError('INVALID_ARGUMENT', 'json.checksum: the parameters do not match the checksum (corrupted file?)', { argument: 'json.checksum' });
      return m;
    } catch (e) {
      m.dispose();
      throw e;
    }
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

/** The shard kernel: one shard's loss and gradient on a model instance (live or a worker's). */
function xentKernel(model: { params: Float64Array | Float32Array }, payload: Record<string, unknown>): ShardResult {
  const m = model as unknown as ODENetClassifier;
  const r = m.lossGrad(payload.x as Float32Array, payload.y as Int32Array);
  return { loss: r.loss, weight: payload.weight as number, grad: r.grad, nfeForward: r.nfeForward, nfeBackward: r.nfeBackward, extra: { correct: r.correct } };
}

registerShardKernel(KERNEL, xentKernel, (json) => {
  const j = json as { config: Config };
  return new ODENetClassifier({ ...j.config });
});
