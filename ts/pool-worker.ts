/**
 * A WorkerPool worker (Node worker_threads or a browser module Worker). It instantiates the
 * Module the pool compiled once, caches model instances by key and runs shard kernels and
 * solves on them. Importing the package index registers every model's shard kernels.
 */
import * as Comlink from 'comlink';
import { invalid } from './errors.js';
import './index.js';
import { nn } from './nn.js';
import { odeint, type Solution, type SolveOptions } from './odeint.js';
import { isNode, nodeEndpoint, READY, toWire, type NodePort, type Reply } from './pool-endpoint.js';
import { shardKernel, type ShardModel, type ShardResult } from './train.js';
import { core, init } from './wasm.js';

/** A shard job as sent to a worker: `model` is left out when the worker has it cached. */
export interface WireJob {
  kernel: string;
  modelKey: string;
  model?: object;
  params: Float64Array | Float32Array;
  payload: Record<string, unknown>;
}

type Cached = ShardModel & { dispose?: () => void };

// Model instances by key, least recently used first; a few suffice (one per model being trained).
const MAX_MODELS = 16;
const models = new Map<string, Cached>();

function lookup(key: string): Cached | undefined {
  const m = models.get(key);
  if (m !== undefined) {
    models.delete(key);
    models.set(key, m);
  }
  return m;
}

function remember(key: string, m: Cached): void {
  while (models.size >= MAX_MODELS) {
    const [k, old] = models.entries().next().value as [string, Cached];
    models.delete(k);
    old.dispose?.();
  }
  models.set(key, m);
}

/** After a panic the core was replaced: cached instances are gone with it. */
function forgetIfReset(e: unknown): void {
  const code = (e as { code?: string }).code;
  if (code === 'WASM_PANIC' || code === 'INSTANCE_RESET') models.clear();
}

/** A buffer the worker can hand over: not core memory, not shared with anything else. */
function owned<T extends Float64Array | Float32Array>(a: T): T {
  const whole = a.byteOffset === 0 && a.byteLength === a.buffer.byteLength;
  return whole && a.buffer instanceof ArrayBuffer && a.buffer !== core().exports.memory.buffer ? a : (a.slice() as T);
}

function fail(e: unknown): Reply<never> {
  forgetIfReset(e);
  return { ok: false, error: toWire(e) };
}

function crashSoon(): void {
  // An uncaught exception outside any message handler: fatal to a Node worker, an 'error'
  // event for a browser worker. Runs before the next message is handled.
  queueMicrotask(() => {
    throw new Error('neurode: worker crash requested for testing');
  });
}

const api = {
  async init(module: WebAssembly.Module): Promise<Reply<null>> {
    try {
      await init({ wasm: module });
      return { ok: true, value: null };
    } catch (e) {
      return fail(e);
    }
  },

  shard(job: WireJob): Reply<ShardResult> {
    try {
      const kernel = shardKernel(job.kernel);
      let m = lookup(job.modelKey);
      if (m === undefined) {
        if (job.model === undefined) return { ok: false, needModel: true };
        m = kernel.build(job.model) as Cached;
        remember(job.modelKey, m);
      }
      if (m.params.length !== job.params.length) throw invalid('params', `must hold ${m.params.length} numbers, got ${job.params.length}`);
      m.params.set(job.params);
      const r = kernel.run(m, job.payload);
      const grad = owned(r.grad);
      return Comlink.transfer({ ok: true as const, value: { ...r, grad } }, [grad.buffer]);
    } catch (e) {
      return fail(e);
    }
  },

  odeint(key: string, json: object | undefined, y0: Float64Array, ts: Float64Array, options: SolveOptions): Reply<Solution> {
    try {
      let f = lookup(key);
      if (f === undefined) {
        if (json === undefined) return { ok: false, needModel: true };
        f = nn.fromJSON(json);
        remember(key, f);
      }
      const sol = odeint(f as unknown as Parameters<typeof odeint>[0], y0, ts, options);
      const ys = owned(sol.ys);
      return Comlink.transfer({ ok: true as const, value: { ...sol, ys } }, [ys.buffer]);
    } catch (e) {
      return fail(e);
    }
  },

  /** Round trip of a buffer (benchmarks): handed back, or copied back. */
  echo(buffer: ArrayBuffer, transferBack: boolean): ArrayBuffer {
    return transferBack ? Comlink.transfer(buffer, [buffer]) : buffer;
  },

  /** Test hook: end this worker ('exit': the thread exits; 'throw': an uncaught exception). */
  crash(how: 'exit' | 'throw'): void {
    if (how === 'exit' && isNode()) process.exit(1);
    crashSoon();
  },
};

export type WorkerApi = typeof api;

const endpoint = isNode()
  ? nodeEndpoint((await import('node:worker_threads')).parentPort as unknown as NodePort)
  : (globalThis as unknown as Comlink.Endpoint);
Comlink.expose(api, endpoint);
endpoint.postMessage(READY);
