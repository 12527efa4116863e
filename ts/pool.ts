/**
 * WorkerPool (API.md §7): Node worker_threads or browser module Workers behind one API, on
 * comlink. The wasm is compiled once here and the Module sent to every worker, which makes its
 * own instance (no SharedArrayBuffer, no cross-origin isolation). Work is a queue of tasks;
 * each worker runs one at a time. A worker that dies rejects its task with WORKER_CRASHED and
 * is replaced; shard jobs are then retried elsewhere, so training results do not change.
 */
import * as Comlink from 'comlink';
import { invalid, NeurodeError } from './errors.js';
import { fnv1a, VectorField } from './nn.js';
import type { Solution, SolveOptions } from './odeint.js';
import { fromWire, isNode, nodeEndpoint, READY, type NodePort, type Reply } from './pool-endpoint.js';
import type { WireJob, WorkerApi } from './pool-worker.js';
import type { ShardJob, ShardResult, ShardRunner } from './train.js';
import { plainObject, positiveInteger, timeGrid } from './validate.js';
import { compiledModule, init, type WasmSource } from './wasm.js';

export interface PoolOptions {
  /** Number of workers; default: available cores (os.availableParallelism / navigator.hardwareConcurrency). */
  size?: number;
  /** The wasm to load if `init()` has not run yet (see init). */
  wasm?: WasmSource;
  /** The worker script, for bundler set-ups that move it (default: pool-worker.js beside this module). */
  workerUrl?: string | URL;
}

export interface PoolStats {
  /** Workers started, replacements included. */
  workersStarted: number;
  /** Workers that died while the pool was live. */
  crashes: number;
  /** Shard jobs run again after their worker died. */
  retries: number;
}

/** How often a shard job is retried after worker crashes before its runShards call fails. */
const MAX_RETRIES = 3;

/** A started worker as the pool sees it, whatever the platform. */
interface Host {
  endpoint: Comlink.Endpoint;
  /** Calls back once when the worker dies (error, exit) — not after kill(). */
  onDeath(cb: (reason: string) => void): void;
  kill(): Promise<void>;
  /** Node: whether the worker keeps the process alive (only while it has work). */
  hold(busy: boolean): void;
}

async function defaultSize(): Promise<number> {
  if (isNode()) {
    const os = await import('node:os');
    return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  }
  return Math.max(1, (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 2);
}

async function startHost(url: string | URL | undefined): Promise<Host> {
  if (isNode()) {
    const { Worker: NodeWorker } = await import('node:worker_threads');
    const w = new NodeWorker(url ?? new URL('./pool-worker.js', import.meta.url));
    let killed = false;
    let death: ((reason: string) => void) | undefined;
    const died = (reason: string) => {
      if (killed) return;
      killed = true;
      death?.(reason);
    };
    w.on('error', (e: Error) => died(`worker error: ${e.message}`));
    w.on('exit', (code: number) => died(`worker exited with code ${code}`));
    return {
      endpoint: nodeEndpoint(w as unknown as NodePort),
      onDeath: (cb) => { death = cb; },
      kill: async () => { killed = true; await w.terminate(); },
      hold: (busy) => (busy ? w.ref() : w.unref()),
    };
  }
  // Written out in full so bundlers (Vite) see and bundle the worker entry.
  const w = url === undefined ? new Worker(new URL('./pool-worker.js', import.meta.url), { type: 'module' }) : new Worker(url, { type: 'module' });
  let dead = false;
  let death: ((reason: string) => void) | undefined;
  const died = (reason: string) => {
    if (dead) return;
    dead = true;
    w.terminate(); // a browser worker survives its uncaught errors; we do not trust it afterwards
    death?.(reason);
  };
  w.addEventListener('error', (e) => { e.preventDefault(); died(`worker error: ${e.message || 'failed to load or threw'}`); });
  w.addEventListener('messageerror', () => died('worker message could not be deserialised'));
  return {
    endpoint: w,
    onDeath: (cb) => { death = cb; },
    kill: async () => { dead = true; w.terminate(); },
    hold: () => {},
  };
}

class Slot {
  dead = false;
  busy = false;
  /** Model keys this worker was sent (a hint: it asks again if it evicted one). */
  readonly models = new Set<string>();
  private readonly pending = new Set<(e: Error) => void>();
  private deathReason = '';

  constructor(readonly index: number, readonly host: Host, readonly api: Comlink.Remote<WorkerApi>) {}

  /** Runs `run` against this worker; rejects with WORKER_CRASHED if the worker dies meanwhile. */
  call<T>(run: (s: Slot) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.dead) {
        reject(this.crashError());
        return;
      }
      this.pending.add(reject);
      this.host.hold(true);
      const settle = () => {
        this.pending.delete(reject);
        if (this.pending.size === 0) this.host.hold(false);
      };
      run(this).then((v) => { settle(); resolve(v); }, (e) => { settle(); reject(e); });
    });
  }

  crashError(): NeurodeError {
    return new NeurodeError('WORKER_CRASHED', `pool worker ${this.index} died while running the call (${this.deathReason}); it was replaced`);
  }

  /** Marks the worker dead and rejects what it was running. */
  fail(reason: string, error?: Error): void {
    if (this.dead) return;
    this.dead = true;
    this.deathReason = reason;
    const e = error ?? this.crashError();
    for (const reject of this.pending) reject(e);
    this.pending.clear();
    this.host.hold(false);
  }
}

interface Task {
  run: (s: Slot) => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

function terminatedError(): NeurodeError {
  return new NeurodeError('POOL_TERMINATED', 'this WorkerPool was terminated: create a new one with WorkerPool.create()');
}

function unwrap<T>(r: Reply<T>): T {
  if (r.ok) return r.value;
  if ('needModel' in r) throw new Error('neurode: worker asked for a model twice');
  throw fromWire(r.error);
}

export class WorkerPool implements ShardRunner {
  readonly size: number;
  private readonly slots: Slot[] = [];
  private readonly queue: Task[] = [];
  private terminated = false;
  private crashNext: 'exit' | 'throw' | null = null;
  private readonly counters: PoolStats = { workersStarted: 0, crashes: 0, retries: 0 };

  private constructor(size: number, private readonly module: WebAssembly.Module, private readonly workerUrl: string | URL | undefined) {
    this.size = size;
  }

  /** Starts `size` workers, each with its own instance of the (once) compiled core. */
  static async create(o: PoolOptions = {}): Promise<WorkerPool> {
    const opts = plainObject('options', o) as PoolOptions;
    const size = opts.size === undefined ? await defaultSize() : positiveInteger('size', opts.size, 1024);
    await init(opts.wasm === undefined ? {} : { wasm: opts.wasm });
    const pool = new WorkerPool(size, compiledModule(), opts.workerUrl);
    try {
      const slots = await Promise.all(Array.from({ length: size }, (_, i) => pool.startSlot(i)));
      pool.slots.push(...slots);
    } catch (e) {
      await pool.terminate();
      throw e;
    }
    return pool;
  }

  /** Counters of started workers, crashes and retried shards. */
  get stats(): PoolStats {
    return { ...this.counters };
  }

  private async startSlot(index: number): Promise<Slot> {
    const host = await startHost(this.workerUrl);
    this.counters.workersStarted += 1;
    host.hold(true);
    try {
      // Wait for the worker to listen, then hand it the compiled module.
      await new Promise<void>((resolve, reject) => {
        const onMessage = (ev: MessageEvent) => {
          if (ev.data !== READY) return;
          host.endpoint.removeEventListener('message', onMessage as EventListener);
          resolve();
        };
        host.endpoint.addEventListener('message', onMessage as EventListener);
        host.onDeath((reason) => reject(new NeurodeError('WORKER_CRASHED', `pool worker ${index} failed to start: ${reason}`)));
        host.endpoint.start?.();
      });
      const api = Comlink.wrap<WorkerApi>(host.endpoint);
      const slot = new Slot(index, host, api);
      host.onDeath((reason) => this.lost(slot, reason));
      unwrap<null>(await slot.call((s): Promise<Reply<null>> => s.api.init(this.module)));
      return slot;
    } catch (e) {
      await host.kill();
      throw e;
    } finally {
      host.hold(false);
    }
  }

  /** A worker died: reject its call, start a replacement, keep serving. */
  private lost(slot: Slot, reason: string): void {
    if (slot.dead) return;
    slot.fail(reason, this.terminated ? terminatedError() : undefined);
    const i = this.slots.indexOf(slot);
    // Not serving yet: startSlot sees the failure and reports it.
    if (i < 0 || this.terminated) return;
    this.slots.splice(i, 1);
    this.counters.crashes += 1;
    void slot.host.kill();
    this.startSlot(slot.index).then(
      (fresh) => {
        if (this.terminated) {
          void fresh.host.kill();
          return;
        }
        this.slots.push(fresh);
        this.pump();
      },
      (e) => {
        // No replacement: if no worker is left, nothing can serve the queue.
        if (this.slots.length === 0) for (const t of this.queue.splice(0)) t.reject(e);
      },
    );
  }

  /** Queues a task; it runs on the next idle worker. */
  private schedule<T>(run: (s: Slot) => Promise<T>): Promise<T> {
    if (this.terminated) return Promise.reject(terminatedError());
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, resolve: resolve as (v: unknown) => void, reject });
      this.pump();
    });
  }

  private pump(): void {
    for (const s of this.slots) {
      if (this.queue.length === 0) return;
      if (s.busy || s.dead) continue;
      const t = this.queue.shift()!;
      s.busy = true;
      if (this.crashNext !== null) {
        // Test hook: the crash message is handled before the task's, so the task is pending when the worker dies.
        void s.api.crash(this.crashNext);
        this.crashNext = null;
      }
      s.call(t.run).then(t.resolve, t.reject).finally(() => {
        s.busy = false;
        this.pump();
      });
    }
  }

  /**
   * Computes shard jobs on the workers (ShardRunner, used by every model's fit). Each worker
   * builds a job's model once per modelKey and copies `params` in before each job; a job whose
   * worker dies is run again on another worker. Results come back in job order.
   */
  runShards(jobs: ShardJob[]): Promise<ShardResult[]> {
    if (this.terminated) return Promise.reject(terminatedError());
    if (!Array.isArray(jobs)) return Promise.reject(invalid('jobs', 'must be an array of shard jobs'));
    return Promise.all(jobs.map((j) => this.runShard(j)));
  }

  private async runShard(job: ShardJob): Promise<ShardResult> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.schedule((s) => this.shardOn(s, job));
      } catch (e) {
        if ((e as NeurodeError).code !== 'WORKER_CRASHED' || attempt >= MAX_RETRIES || this.terminated) throw e;
        this.counters.retries += 1;
      }
    }
  }

  private async shardOn(s: Slot, job: ShardJob): Promise<ShardResult> {
    // Sent by structured clone (copied): the caller keeps the job for a retry.
    const wire = (withModel: boolean): WireJob => ({ kernel: job.kernel, modelKey: job.modelKey, model: withModel ? job.model : undefined, params: job.params, payload: job.payload });
    let r = await s.api.shard(wire(!s.models.has(job.modelKey)));
    if (!r.ok && 'needModel' in r) r = await s.api.shard(wire(true));
    if (r.ok) s.models.add(job.modelKey);
    else if ('error' in r && (r.error.code === 'WASM_PANIC' || r.error.code === 'INSTANCE_RESET')) s.models.clear();
    return unwrap(r);
  }

  /**
   * Independent solves spread over the workers: item i is odeint(field, y0s[i], ts, options),
   * bit-for-bit what a local odeint returns. `field` is a VectorField or its toJSON().
   */
  odeintBatch(field: VectorField | object, y0s: ArrayLike<number>[], ts: ArrayLike<number>, options: SolveOptions = {}): Promise<Solution[]> {
    try {
      if (this.terminated) throw terminatedError();
      if (typeof field === 'function') throw invalid('field', 'must be a VectorField or its toJSON(); JavaScript functions cannot be sent to workers');
      const json = field instanceof VectorField ? field.toJSON() : plainObject('field', field);
      if (!Array.isArray(y0s)) throw invalid('y0s', 'must be an array of initial states');
      const times = Float64Array.from(timeGrid('ts', ts));
      const opts = plainObject('options', options) as SolveOptions;
      const key = 'odeint:' + fnv1a(new TextEncoder().encode(JSON.stringify(json)));
      return Promise.all(y0s.map((y0) => {
        const y = Float64Array.from(y0);
        return this.schedule(async (s) => {
          let r = await s.api.odeint(key, s.models.has(key) ? undefined : json, y, times, opts);
          if (!r.ok && 'needModel' in r) r = await s.api.odeint(key, json, y, times, opts);
          if (r.ok) s.models.add(key);
          return unwrap(r);
        });
      }));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Diagnostics: round trip of an empty call to one worker. */
  ping(): Promise<void> {
    return this.schedule(async (s) => { await s.api.echo(new ArrayBuffer(0), false); });
  }

  /** Diagnostics: sends `buffer` to a worker and back, transferred (the sender's copy detaches) or copied. */
  echo(buffer: ArrayBuffer, o: { transfer?: boolean } = {}): Promise<ArrayBuffer> {
    const transfer = o.transfer === true;
    return this.schedule((s) => s.api.echo(transfer ? Comlink.transfer(buffer, [buffer]) : buffer, transfer));
  }

  /** Test hook: the worker that takes the next task dies before running it ('exit' or an uncaught 'throw'). */
  crashNextCallForTesting(how: 'exit' | 'throw' = 'exit'): void {
    this.crashNext = how;
  }

  /** Ends every worker; pending and later calls reject with POOL_TERMINATED. */
  async terminate(): Promise<void> {
    if (this.terminated) return;
    this.terminated = true;
    const e = terminatedError();
    for (const t of this.queue.splice(0)) t.reject(e);
    const slots = this.slots.splice(0);
    for (const s of slots) s.fail('terminated', e);
    await Promise.all(slots.map((s) => s.host.kill()));
  }
}
