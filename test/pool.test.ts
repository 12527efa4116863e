// WorkerPool: the determinism promise (same parameter bits with no pool and 1, 2, 4 workers, run
// after run, and natively: each CASES entry's golden digest is asserted by its native twin,
// crates/neurode-core/tests/golden_*.rs, which runs the same computation through cargo test),
// faults (crashed workers are replaced, their shards retried), odeintBatch, terminate.
// Workers run built JS, so this file imports dist/ (make test builds first).
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init, nn, odeint, fitTrajectory, spirals, LatentODE, ODENetClassifier, CNF, datasets, random, NeurodeError, WorkerPool, type History } from '../dist/index.js';

interface RunOptions { pool?: WorkerPool; iterations?: number; onProgress?: (p: { iteration: number }) => void; signal?: AbortSignal }
interface Result { digest: string; history: History }

/**
 * One entry per model: a tiny fixed-seed training run and the golden digest of its final
 * parameters, which the model's native twin (crates/neurode-core/tests/golden_*.rs: the same
 * data, model, minibatches, shards, weighted sum and optimiser through cargo test) asserts too:
 * wasm and native give the same bits. Adding a model's determinism test is adding an entry
 * here and a twin there.
 */
interface Case { name: string; golden?: string; iterations: number; run(o: RunOptions): Promise<Result> }

let spiral: { t: number[]; y: Float64Array };
let images: { x: Float32Array; y: Int32Array };

/**
 * Stand-in digits both sides can generate (golden_odenet.rs builds the same bits): n 28×28
 * images of class c (uniform over 10) = uniform noise · 0.5, every (c + 2)-th row lit by 0.5.
 */
function stripedImages(n: number, seed: number): { x: Float32Array; y: Int32Array } {
  const y = Int32Array.from(random('integer', n, { seed, stream: 0, range: 10 }));
  const u = random('uniform', n * 784, { seed, stream: 1 });
  const x = new Float32Array(n * 784);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < 784; p++) x[i * 784 + p] = 0.5 * u[i * 784 + p]! + (Math.floor(p / 28) % (y[i]! + 2) === 0 ? 0.5 : 0);
  }
  return { x, y };
}

const CASES: Case[] = [
  {
    // torchdiffeq's ode_demo setting, small; see golden_trajectory.rs for the native twin
    name: 'trajectory (ode_demo)',
    golden: '31069133',
    iterations: 4,
    async run(o) {
      const field = nn.mlp({ dims: [2, 16, 2], activation: 'tanh', inputCube: true, seed: 7 });
      try {
        const history = await fitTrajectory(field, spiral, {
          iterations: o.iterations ?? 4, batchTime: 8, batchSize: 16, shardSize: 4, lr: 0.01, seed: 11, grad: 'backprop',
          pool: o.pool, onProgress: o.onProgress, signal: o.signal,
        });
        return { digest: field.digest(), history };
      } finally {
        field.dispose();
      }
    },
  },
  {
    // paper Section 5 on the bidirectional spirals, tiny; see golden_latent.rs for the native twin
    name: 'latent ODE',
    golden: 'a4c89b75',
    iterations: 3,
    async run(o) {
      const data = spirals({ n: 12, ntotal: 60, nsample: 20, seed: 1 }).observed;
      const m = new LatentODE({ obsDim: 2, latentDim: 2, hidden: 8, rnnHidden: 6, seed: 1 });
      try {
        const history = await m.fit(data, { iterations: o.iterations ?? 3, batchSize: 8, shardSize: 2, seed: 4, pool: o.pool, onProgress: o.onProgress, signal: o.signal });
        return { digest: m.digest(), history };
      } finally {
        m.dispose();
      }
    },
  },
  {
    // paper Section 4 (FFJORD): maximum likelihood on two moons, Hutchinson trace (probes keyed
    // by row index, so the shard split cannot change them), adjoint; native twin golden_cnf.rs
    name: 'CNF',
    golden: 'd27d4c92',
    iterations: 4,
    async run(o) {
      const x = datasets.twoMoons(96, 3);
      const m = new CNF({ dim: 2, hidden: [8, 8], trace: 'hutchinson', seed: 6 });
      try {
        const history = await m.fit(x, { iterations: o.iterations ?? 4, batchSize: 32, shardSize: 8, lr: 0.03, seed: 9, pool: o.pool, onProgress: o.onProgress, signal: o.signal });
        return { digest: m.digest(), history };
      } finally {
        m.dispose();
      }
    },
  },
  {
    // paper Section 3: a small conv ODE-Net (width 8, adjoint, float32) on 24 generated images
    // (a few SGD steps cannot learn real features, so full batch: the loss falls on the same
    // rows), reshuffled each epoch into shards of 6; native twin golden_odenet.rs
    name: 'ODE-Net (small)',
    golden: '6c5c7e1a',
    iterations: 3,
    async run(o) {
      const m = new ODENetClassifier({ inputShape: [1, 28, 28], classes: 10, arch: 'conv', width: 8, seed: 2 });
      try {
        const history = await m.fit(images.x, images.y, { iterations: o.iterations ?? 3, batchSize: 24, shardSize: 6, seed: 5, pool: o.pool, onProgress: o.onProgress, signal: o.signal });
        return { digest: m.digest(), history };
      } finally {
        m.dispose();
      }
    },
  },
];

const pools = new Map<number, WorkerPool>();

beforeAll(async () => {
  await init();
  // y' = (y³)A (ode_demo's spiral); y·y·y so that the native test computes the same bits
  const A = [[-0.1, 2], [-2, -0.1]];
  const t = Array.from({ length: 200 }, (_, i) => (10 * i) / 199);
  const y = odeint((_t, y, dy) => {
    const a = y[0]! * y[0]! * y[0]!, b = y[1]! * y[1]! * y[1]!;
    dy[0] = a * A[0]![0]! + b * A[1]![0]!;
    dy[1] = a * A[0]![1]! + b * A[1]![1]!;
  }, [2, 0], t).ys as Float64Array;
  spiral = { t, y };
  images = stripedImages(24, 8);
  for (const size of [1, 2, 4]) pools.set(size, await WorkerPool.create({ size }));
});

afterAll(async () => {
  for (const p of pools.values()) await p.terminate();
});

describe.each(CASES)('determinism: $name', (c) => {
  it('identical parameter bytes with no pool, pool sizes 1, 2 and 4, and across runs; the golden digest', async () => {
    const local = await c.run({});
    expect(local.history.loss).toHaveLength(c.iterations);
    // training works: the last loss is below the first
    expect(local.history.loss.at(-1)!).toBeLessThan(local.history.loss[0]!);
    if (c.golden !== undefined) expect(local.digest).toBe(c.golden);
    expect((await c.run({})).digest).toBe(local.digest);
    for (const size of [1, 2, 4]) {
      const r = await c.run({ pool: pools.get(size)! });
      expect(r.digest, `pool size ${size}`).toBe(local.digest);
      expect(r.history.loss).toEqual(local.history.loss);
      expect(r.history.nfeForward).toEqual(local.history.nfeForward);
      expect(r.history.nfeBackward).toEqual(local.history.nfeBackward);
    }
    expect((await c.run({ pool: pools.get(2)! })).digest).toBe(local.digest);
  });

  it.each(['exit', 'throw'] as const)('a worker killed mid-training (%s) is replaced, its shard retried: same final bits', async (how) => {
    const pool = pools.get(2)!;
    const before = pool.stats;
    const r = await c.run({
      pool,
      // the next shard dispatched (first of iteration 2) finds its worker dying
      onProgress: (p) => { if (p.iteration === 1) pool.crashNextCallForTesting(how); },
    });
    const after = pool.stats;
    expect(after.crashes - before.crashes).toBe(1);
    expect(after.retries - before.retries).toBe(1);
    expect(after.workersStarted - before.workersStarted).toBe(1);
    expect(r.digest).toBe((await c.run({})).digest);
  });

  it('AbortSignal with a pool stops after the current iteration with the history so far', async () => {
    const ac = new AbortController();
    const r = await c.run({ pool: pools.get(2)!, signal: ac.signal, onProgress: (p) => { if (p.iteration === 2) ac.abort(); } });
    expect(r.history.aborted).toBe(true);
    expect(r.history.loss).toHaveLength(2);
    expect(r.digest).toBe((await c.run({ iterations: 2 })).digest);
  });
});

describe('WorkerPool', () => {
  it('default size is the number of available cores', async () => {
    const pool = await WorkerPool.create();
    try {
      expect(pool.size).toBe(os.availableParallelism());
      expect(pool.stats.workersStarted).toBe(pool.size);
    } finally {
      await pool.terminate();
    }
  });

  it('odeintBatch equals a local odeint per item, from a field or its JSON', async () => {
    const field = nn.mlp({ dims: [2, 12, 2], activation: 'tanh', time: 'concat', seed: 5 });
    const y0s = Array.from({ length: 7 }, (_, i) => Float64Array.of(0.3 * i - 1, 0.5 - 0.2 * i));
    const ts = [0, 0.25, 0.5, 1];
    const o = { method: 'tsit5', rtol: 1e-6, atol: 1e-8 } as const;
    for (const f of [field, field.toJSON()]) {
      const sols = await pools.get(2)!.odeintBatch(f, y0s, ts, o);
      expect(sols).toHaveLength(y0s.length);
      sols.forEach((s, i) => {
        const l = odeint(field, y0s[i]!, ts, o);
        expect(Array.from(s.ts)).toEqual(ts);
        expect(s.ys).toBeInstanceOf(Float64Array);
        expect(Buffer.from(s.ys.buffer, s.ys.byteOffset, s.ys.byteLength).equals(Buffer.from(l.ys.buffer, l.ys.byteOffset, l.ys.byteLength))).toBe(true);
        expect(s.stats).toEqual(l.stats);
      });
    }
    field.dispose();
  });

  it('a worker that evicted a model from its cache is sent it again', async () => {
    const pool = pools.get(1)!;
    // more fields than a worker caches (16): the first is evicted by the time it comes back
    const fields = Array.from({ length: 18 }, (_, i) => nn.mlp({ dims: [2, 3, 2], seed: 100 + i }));
    for (const f of [...fields, fields[0]!]) {
      const [s] = await pool.odeintBatch(f, [[0.5, -0.5]], [0, 1]);
      expect(s!.ys).toEqual(odeint(f, [0.5, -0.5], [0, 1]).ys);
    }
    fields.forEach((f) => f.dispose());
  });

  it('errors in a worker arrive as NeurodeError with their code and argument; the pool keeps serving', async () => {
    const pool = pools.get(2)!;
    const field = nn.mlp({ dims: [2, 4, 2], seed: 1 });
    await expect(pool.odeintBatch(field, [[1, 0]], [0, 1], { rtol: -1 })).rejects.toMatchObject({ name: 'NeurodeError', code: 'INVALID_ARGUMENT', argument: 'rtol' });
    await expect(pool.odeintBatch(field, [[1, 0, 3]], [0, 1])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'y0' });
    await expect(pool.odeintBatch((() => {}) as unknown as object, [[1, 0]], [0, 1])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'field' });
    await expect(pool.odeintBatch(field, [[1, 0]], [1, 0.5, 0.7])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'ts' });
    await expect(pool.runShards([{ kernel: 'no-such-kernel', modelKey: 'x', model: {}, params: new Float64Array(0), payload: {} }])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'kernel' });
    const [s] = await pool.odeintBatch(field, [[1, 0]], [0, 1]);
    expect(s!.ys).toEqual(odeint(field, [1, 0], [0, 1]).ys);
    field.dispose();
  });

  it('a call whose worker dies rejects with WORKER_CRASHED; the worker is replaced', async () => {
    const pool = await WorkerPool.create({ size: 1 });
    try {
      const field = nn.mlp({ dims: [2, 4, 2], seed: 2 });
      pool.crashNextCallForTesting('exit');
      const err = await pool.odeintBatch(field, [[1, 0]], [0, 1]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NeurodeError);
      expect((err as NeurodeError).code).toBe('WORKER_CRASHED');
      pool.crashNextCallForTesting('throw');
      await expect(pool.ping()).rejects.toMatchObject({ code: 'WORKER_CRASHED' });
      const [s] = await pool.odeintBatch(field, [[1, 0]], [0, 1]);
      expect(s!.ys).toEqual(odeint(field, [1, 0], [0, 1]).ys);
      expect(pool.stats).toEqual({ workersStarted: 3, crashes: 2, retries: 0 });
      field.dispose();
    } finally {
      await pool.terminate();
    }
  });

  it('terminate() rejects pending and later calls with POOL_TERMINATED', async () => {
    const pool = await WorkerPool.create({ size: 1 });
    const field = nn.mlp({ dims: [2, 4, 2], seed: 3 });
    const pending = pool.odeintBatch(field, Array.from({ length: 20 }, () => [1, 0]), [0, 1]).catch((e: unknown) => e);
    await pool.terminate();
    expect(await pending).toMatchObject({ code: 'POOL_TERMINATED' });
    await expect(pool.odeintBatch(field, [[1, 0]], [0, 1])).rejects.toMatchObject({ code: 'POOL_TERMINATED', message: expect.stringMatching(/terminated/) });
    await expect(pool.runShards([])).rejects.toMatchObject({ code: 'POOL_TERMINATED' });
    await expect(pool.ping()).rejects.toMatchObject({ code: 'POOL_TERMINATED' });
    await pool.terminate(); // idempotent
    field.dispose();
  });

  it('transfers detach the sender\'s buffer; copies leave it intact', async () => {
    const pool = pools.get(1)!;
    const a = new Float64Array(1000).map((_, i) => i);
    const copied = await pool.echo(a.buffer);
    expect(a.length).toBe(1000);
    expect(new Float64Array(copied)).toEqual(a);
    const b = a.slice();
    const back = await pool.echo(b.buffer, { transfer: true });
    expect(b.buffer.byteLength).toBe(0);
    expect(new Float64Array(back)).toEqual(a);
  });

  it('rejects bad options', async () => {
    await expect(WorkerPool.create({ size: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'size' });
    await expect(WorkerPool.create({ size: 1.5 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'size' });
  });
});
