/**
 * Loading and calling the WebAssembly core. One compiled Module, one live Instance; if the
 * core panics (traps), the instance is replaced and the call throws NeurodeError('WASM_PANIC').
 * Objects created in an older instance then throw INSTANCE_RESET instead of touching freed memory.
 */
import { NeurodeError, type ErrorCode } from './errors.js';

export interface CoreExports {
  memory: WebAssembly.Memory;
  nd_init(): void;
  nd_alloc(size: number): number;
  nd_free(ptr: number, size: number): void;
  nd_error_ptr(): number;
  nd_error_len(): number;
  nd_mem_stats(out: number): void;
  nd_mem_reset_peak(): void;
  nd_test_panic(code: number): number;
  nd_free_object(handle: number): void;
  nd_optim_create(kind: number, dtype: number, n: number, hyper: number, handleOut: number): number;
  nd_optim_step(handle: number, params: number, n: number, grads: number): number;
  nd_optim_state(handle: number, out: number, cap: number): number;
  nd_optim_set_state(handle: number, state: number, n: number): number;
  nd_sum_into(dst: number, src: number, n: number, scale: number): void;
  nd_rng_fill(kind: number, seedLo: number, seedHi: number, stream: number, start: number, n: number, range: number, out: number): number;
  nd_loss(kind: number, dtype: number, pred: number, target: number, n: number, grad: number, out: number): number;
  nd_field_create(dtype: number, code: number, nlayers: number, seedLo: number, seedHi: number, initStd: number, handleOut: number): number;
  nd_field_info(handle: number, out: number): void;
  nd_field_params(handle: number): number;
  nd_field_eval(handle: number, t: number, y: number, n: number, out: number): number;
  nd_field_vjp(handle: number, t: number, y: number, n: number, a: number, outY: number, outP: number, outT: number): number;
  nd_object_count(): number;
  nd_tape_bytes(handle: number): number;
  nd_traj_shard(dtype: number, field: number, cfg: number, y0: number, n: number, ts: number, nts: number, target: number, grad: number, np: number, info: number): number;
  nd_grad_forward(
    dtype: number, field: number, method: number, y0: number, n: number, ts: number, nts: number,
    opts: number, atol: number, natol: number, grid: number, ngrid: number, gopts: number,
    out: number, stats: number, tapeOut: number,
  ): number;
  nd_grad_backward(tape: number, field: number, jsParams: number, dl: number, outY0: number, outP: number, np: number, outTs: number, stats: number): number;
  nd_odeint(
    dtype: number, field: number, method: number, y0: number, n: number, dim: number,
    ts: number, nts: number, opts: number, atol: number, natol: number,
    grid: number, ngrid: number, out: number, stats: number,
  ): number;
  nd_latent_create(dtype: number, cfg: number, seedLo: number, seedHi: number, handleOut: number): number;
  nd_rnn_create(dtype: number, obsDim: number, hidden: number, seedLo: number, seedHi: number, handleOut: number): number;
  nd_latent_info(handle: number, out: number): void;
  nd_latent_elbo(
    handle: number, batch: number, slots: number, times: number, values: number, mask: number, emask: number, rows: number,
    seedLo: number, seedHi: number, iteration: number, keepMin: number, keepMax: number, t0: number, sopts: number, grad: number, np: number, stats: number,
  ): number;
  nd_latent_predict(
    handle: number, batch: number, slots: number, times: number, values: number, mask: number, ts: number, nts: number,
    samples: number, seedLo: number, seedHi: number, t0: number, sopts: number, out: number, stats: number,
  ): number;
  nd_rnn_loss(
    handle: number, batch: number, slots: number, times: number, values: number, mask: number, rows: number,
    seedLo: number, seedHi: number, iteration: number, keepMin: number, keepMax: number, grad: number, np: number, loss: number,
  ): number;
  nd_rnn_predict(handle: number, batch: number, slots: number, times: number, values: number, mask: number, ts: number, nts: number, out: number): number;
  nd_spirals(
    n: number, ntotal: number, nsample: number, nextra: number, noise: number, seedLo: number, seedHi: number,
    obsTimes: number, obsValues: number, truthTimes: number, truthValues: number, starts: number, clockwise: number,
  ): number;
  nd_classifier_create(dtype: number, cfg: number, seedLo: number, seedHi: number, handleOut: number): number;
  nd_classifier_info(handle: number, out: number): void;
  nd_classifier_params(handle: number): number;
  nd_classifier_loss_grad(handle: number, x: number, nx: number, labels: number, n: number, grad: number, np: number, stats: number): number;
  nd_classifier_evaluate(handle: number, x: number, nx: number, labels: number, hasLabels: number, n: number, pred: number, out: number): number;
  nd_optim_set_lr(handle: number, lr: number): number;
  nd_conv_run(dtype: number, spec: number, mode: number, reps: number): number;
  nd_last_stats(out: number): void;
  nd_set_on_step(on: number): void;
  nd_event_cotangent(field: number, ev: number, nev: number, dim: number, k: number, row: number, t: number, y: number, dLdt: number, dLdy: number, outA: number): number;
  nd_odeint_event(
    dtype: number, field: number, method: number, y0: number, n: number, dim: number, sc: number,
    ts: number, nts: number, opts: number, atol: number, natol: number, grid: number, ngrid: number,
    ev: number, nev: number, outT: number, outY: number, outIdx: number, outYs: number,
    logOut: number, logCount: number, stats: number,
  ): number;
  nd_cnf_create(dtype: number, arch: number, code: number, n: number, dim: number, units: number, seedLo: number, seedHi: number, handleOut: number): number;
  nd_cnf_info(handle: number, out: number): void;
  nd_cnf_params(handle: number): number;
  nd_cnf_flow(handle: number, aug: number, y0: number, n: number, ts: number, nts: number, cfg: number, out: number, stats: number): number;
  nd_cnf_mle(handle: number, x: number, n: number, cfg: number, grad: number, np: number, info: number): number;
  nd_cnf_kl_forward(handle: number, rows: number, cfg: number, outX: number, tapeOut: number): number;
  nd_cnf_kl_backward(handle: number, tape: number, logp: number, dlogp: number, rows: number, dim: number, cfg: number, grad: number, np: number, info: number): number;
  nd_cnf_eval(handle: number, aug: number, t: number, y: number, n: number, cfg: number, out: number): number;
  nd_cnf_vjp(handle: number, aug: number, t: number, y: number, a: number, n: number, cfg: number, outY: number, outP: number, np: number, outT: number): number;
  nd_cnf_target(id: number, x: number, n: number, outLogp: number, outGrad: number): number;
  nd_cnf_base_logp(dim: number, z: number, n: number, std: number, out: number): number;
  nd_density_grid(logv: number, n: number, cell: number, out: number, info: number): number;
  nd_toy_data(kind: number, n: number, seedLo: number, seedHi: number, out: number): number;
  nd_gaussian_nll(train: number, ntrain: number, test: number, ntest: number, dim: number, out: number): number;
  [name: string]: unknown;
}

/** JavaScript callbacks of the solver extensions (events, step callbacks), set for one call. */
export const solverHooks: {
  event?: (t: number, y: Float64Array, row: number, which: number, out: Float64Array) => void;
  step?: (t: number, y: Float64Array, accepted: boolean, h: number) => void;
} = {};

function hookCall(run: () => void): number {
  try {
    run();
    return 0;
  } catch (e) {
    const top = rhsStack[rhsStack.length - 1];
    if (top !== undefined) { top.error = e; top.threw = true; }
    return 1;
  }
}

export type WasmSource = BufferSource | WebAssembly.Module | URL | string;

type View = Float64Array | Float32Array;

/** A JavaScript VJP: writes a·∂f/∂y into outY and a·∂f/∂θ into outParams; may return a·∂f/∂t. */
export type JsVjp = (t: number, y: View, a: View, outY: View, outParams: View) => number | void;

/** A JavaScript right-hand side being called from the core, with views over its scratch buffers. */
export interface ActiveRhs {
  fn: (t: number, y: Float64Array | Float32Array, dy: Float64Array | Float32Array) => void;
  vjp?: JsVjp;
  /** Views for the VJP: y, a, outY, outParams, outT (keyed by their addresses). */
  vViews: View[];
  vPtrs: number[];
  f32: boolean;
  yPtr: number;
  dyPtr: number;
  y: Float64Array | Float32Array;
  dy: Float64Array | Float32Array;
  error: unknown;
  threw: boolean;
}

interface Core {
  exports: CoreExports;
  generation: number;
}

let compiled: WebAssembly.Module | null = null;
let current: Core | null = null;
let generation = 0;
let initPromise: Promise<void> | null = null;
let panicMessage: string | null = null;
const rhsStack: ActiveRhs[] = [];

const decoder = new TextDecoder();

function imports(): WebAssembly.Imports {
  return {
    env: {
      nd_js_rhs(t: number, yPtr: number, dyPtr: number, n: number): number {
        const top = rhsStack[rhsStack.length - 1];
        if (top === undefined) return 1;
        // Views are made once per solve; a view whose memory grew (detached) has length 0.
        if (top.yPtr !== yPtr || top.dyPtr !== dyPtr || top.y.length !== n || top.dy.length !== n) {
          const mem = current!.exports.memory.buffer;
          const Ctor = top.f32 ? Float32Array : Float64Array;
          top.y = new Ctor(mem, yPtr, n);
          top.dy = new Ctor(mem, dyPtr, n);
          top.yPtr = yPtr; top.dyPtr = dyPtr;
        }
        try {
          top.fn(t, top.y, top.dy);
          return 0;
        } catch (e) {
          top.error = e;
          top.threw = true;
          return 1;
        }
      },
      nd_js_vjp(t: number, yPtr: number, aPtr: number, oyPtr: number, opPtr: number, n: number, p: number, otPtr: number): number {
        const top = rhsStack[rhsStack.length - 1];
        if (top === undefined || top.vjp === undefined) return 1;
        const ptrs = [yPtr, aPtr, oyPtr, opPtr, otPtr];
        const lens = [n, n, n, p, 1];
        const v = top.vViews;
        if (v.length !== 5 || ptrs.some((q, i) => q !== top.vPtrs[i] || v[i]!.length !== lens[i])) {
          const mem = current!.exports.memory.buffer;
          const Ctor = top.f32 ? Float32Array : Float64Array;
          top.vViews = ptrs.map((q, i) => (i === 4 ? new Float64Array(mem, q, 1) : new Ctor(mem, q, lens[i]!)));
          top.vPtrs = ptrs;
        }
        const w = top.vViews;
        try {
          const r = top.vjp(t, w[0]!, w[1]!, w[2]!, w[3]!);
          w[4]![0] = typeof r === 'number' ? r : 0;
          return 0;
        } catch (e) {
          top.error = e;
          top.threw = true;
          return 1;
        }
      },
      nd_js_event(t: number, yPtr: number, dim: number, row: number, which: number, outPtr: number, nout: number): number {
        const h = solverHooks.event;
        if (h === undefined) return 1;
        const mem = current!.exports.memory.buffer;
        return hookCall(() => h(t, new Float64Array(mem, yPtr, dim), row, which, new Float64Array(mem, outPtr, nout)));
      },
      nd_js_step(t: number, yPtr: number, n: number, accepted: number, h: number): number {
        const cb = solverHooks.step;
        if (cb === undefined) return 1;
        const mem = current!.exports.memory.buffer;
        return hookCall(() => cb(t, new Float64Array(mem, yPtr, n).slice(), accepted !== 0, h));
      },
      nd_panic(ptr: number, len: number): void {
        try {
          panicMessage = decoder.decode(new Uint8Array(current!.exports.memory.buffer, ptr, len));
        } catch {
          panicMessage = 'panic (message unreadable)';
        }
      },
    },
  };
}

function instantiate(module: WebAssembly.Module): Core {
  const instance = new WebAssembly.Instance(module, imports());
  const exports = instance.exports as unknown as CoreExports;
  generation += 1;
  current = { exports, generation };
  exports.nd_init();
  return current;
}

/** Compiles the core from any accepted source (exported for tests). */
export async function loadModule(source: WasmSource | undefined): Promise<WebAssembly.Module> {
  if (source instanceof WebAssembly.Module) return source;
  if (source !== undefined && typeof source !== 'string' && !(source instanceof URL)) {
    return WebAssembly.compile(source);
  }
  const url = source === undefined ? new URL('../pkg/neurode.wasm', import.meta.url)
    : source instanceof URL ? source
    : /^[a-z]+:/i.test(source) && !/^[a-z]:[\\/]/i.test(source) ? new URL(source) : null;
  const isNode = typeof process !== 'undefined' && typeof process.versions?.node === 'string';
  if (isNode && (url === null || url.protocol === 'file:')) {
    // Node's fetch cannot read file: URLs; import fs lazily so bundlers leave it out.
    const fs = await import('node:fs/promises');
    const urlMod = await import('node:url');
    const path = url === null ? (source as string) : urlMod.fileURLToPath(url);
    return WebAssembly.compile(await fs.readFile(path));
  }
  const target = url ?? new URL(source as string, globalThis.location?.href);
  const response = await fetch(target);
  if (!response.ok) throw new NeurodeError('INVALID_ARGUMENT', `wasm: could not load ${target} (${response.status})`, { argument: 'wasm' });
  if (typeof WebAssembly.compileStreaming === 'function' && response.headers.get('content-type') === 'application/wasm') {
    return WebAssembly.compileStreaming(response);
  }
  return WebAssembly.compile(await response.arrayBuffer());
}

/**
 * Loads the WebAssembly core. Idempotent: later calls return the first call's promise.
 * `wasm` may be a BufferSource, a compiled Module, a URL or a path (Node).
 */
export function init(options: { wasm?: WasmSource } = {}): Promise<void> {
  if (initPromise === null) {
    initPromise = (async () => {
      compiled = await loadModule(options.wasm);
      instantiate(compiled);
    })();
    initPromise.catch(() => { initPromise = null; });
  }
  return initPromise;
}

/** The compiled module (for worker pools: each worker instantiates it). */
export function compiledModule(): WebAssembly.Module {
  if (compiled === null) throw notInitialized();
  return compiled;
}

function notInitialized(): NeurodeError {
  return new NeurodeError('NOT_INITIALIZED', 'neurode is not initialised: call `await init()` first');
}

/** The live core; throws NOT_INITIALIZED before init(). */
export function core(): Core {
  if (current === null) throw notInitialized();
  return current;
}

export function isInitialized(): boolean {
  return current !== null;
}

/** Reads the error text the core left after a failed call and wraps it. */
function coreError(x: CoreExports): NeurodeError {
  const text = decoder.decode(new Uint8Array(x.memory.buffer, x.nd_error_ptr(), x.nd_error_len()));
  const tab = text.indexOf('\t');
  const code = (tab > 0 ? text.slice(0, tab) : 'INVALID_ARGUMENT') as ErrorCode;
  const message = tab > 0 ? text.slice(tab + 1) : text;
  const time = /\bt = (-?[0-9.]+(?:e[-+]?[0-9]+)?|-?Infinity)/.exec(message);
  const argument = code === 'INVALID_ARGUMENT' ? /^([A-Za-z0-9_.]+)\b/.exec(message)?.[1] : undefined;
  return new NeurodeError(code, message, {
    ...(time ? { time: Number(time[1]) } : {}),
    ...(argument ? { argument } : {}),
  });
}

/**
 * Runs one core call that returns a status. Maps status 1 to the core's error, status 2 to the
 * JavaScript exception a callback threw, and a trap to WASM_PANIC (after replacing the instance).
 */
export function callCore(run: (x: CoreExports) => number, rhs?: ActiveRhs): void {
  const c = core();
  if (rhs) rhsStack.push(rhs);
  let status: number;
  try {
    panicMessage = null;
    status = run(c.exports);
  } catch (e) {
    if (e instanceof WebAssembly.RuntimeError) {
      const message = panicMessage ?? e.message;
      panicMessage = null;
      instantiate(compiled!);
      throw new NeurodeError('WASM_PANIC', `the WebAssembly core failed and was restarted: ${message}`, { cause: e });
    }
    throw e;
  } finally {
    if (rhs) rhsStack.pop();
  }
  if (status === 1) throw coreError(c.exports);
  if (status === 2) {
    if (rhs?.threw) throw rhs.error;
    throw new NeurodeError('INVALID_ARGUMENT', 'a callback failed');
  }
}

export function activeRhs(fn: ActiveRhs['fn'], f32: boolean, vjp?: JsVjp): ActiveRhs {
  const empty = f32 ? new Float32Array(0) : new Float64Array(0);
  return { fn, vjp, vViews: [], vPtrs: [], f32, yPtr: -1, dyPtr: -1, y: empty, dy: empty, error: undefined, threw: false };
}

/** Memory allocated in the core for the duration of one call; freed by `free()`. */
export class Scratch {
  private readonly blocks: Array<[number, number]> = [];
  constructor(private readonly x: CoreExports) {}

  /** Runs a core constructor that writes the new object's handle through `handleOut`; returns the handle. */
  create(run: (x: CoreExports, handleOut: number) => number): number {
    const hp = this.alloc(4);
    callCore((x) => run(x, hp));
    return new Uint32Array(this.x.memory.buffer, hp, 1)[0]!;
  }

  alloc(bytes: number): number {
    const ptr = this.x.nd_alloc(bytes);
    if (ptr === 0) throw new NeurodeError('OUT_OF_MEMORY', `could not allocate ${bytes} bytes in the core`);
    this.blocks.push([ptr, bytes]);
    return ptr;
  }

  /** Allocates and fills a buffer of f64 (or f32) values; returns its address (0 for empty). */
  put(values: ArrayLike<number>, f32 = false): number {
    if (values.length === 0) return 0;
    const ptr = this.alloc(values.length * (f32 ? 4 : 8));
    (f32 ? new Float32Array(this.x.memory.buffer, ptr, values.length) : new Float64Array(this.x.memory.buffer, ptr, values.length)).set(values);
    return ptr;
  }

  f64(ptr: number, n: number): Float64Array {
    return new Float64Array(this.x.memory.buffer, ptr, n);
  }

  f32(ptr: number, n: number): Float32Array {
    return new Float32Array(this.x.memory.buffer, ptr, n);
  }

  free(): void {
    for (const [ptr, bytes] of this.blocks) this.x.nd_free(ptr, bytes);
    this.blocks.length = 0;
  }
}

/** The core allocator's counters (deterministic, unlike RSS). */
export function memoryStats(): { liveBytes: number; peakBytes: number; liveBlocks: number; totalAllocs: number; wasmPages: number } {
  const x = core().exports;
  const s = new Scratch(x);
  try {
    const p = s.alloc(32);
    x.nd_mem_stats(p);
    const v = s.f64(p, 4);
    return { liveBytes: v[0]! - 32, peakBytes: v[1]!, liveBlocks: v[2]! - 1, totalAllocs: v[3]!, wasmPages: x.memory.buffer.byteLength / 65536 };
  } finally {
    s.free();
  }
}

/** Starts a new peak-memory measurement. */
export function resetPeakMemory(): void {
  core().exports.nd_mem_reset_peak();
}

/** The instance generation (bumped when the core is replaced after a panic). */
export function currentGeneration(): number {
  return core().generation;
}

/** Test hook: makes the core panic, to check that it surfaces as WASM_PANIC and recovers. */
export function triggerPanicForTesting(): void {
  callCore((x) => { x.nd_test_panic(1); return 0; });
}

/** A 64-bit-safe seed as the (low, high) 32-bit halves the core's constructors take. */
export function seedParts(seed: number): [number, number] {
  return [seed % 2 ** 32, Math.floor(seed / 2 ** 32)];
}
