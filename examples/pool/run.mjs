#!/usr/bin/env node
// Data-parallel training with a WorkerPool: the ode_demo spiral fit (512 windows per iteration,
// shards of 64) without a pool and with pools of 1 and N workers. The parameters end on the same
// bits every time; the time per iteration shows the scaling. Usage (after `make build`):
//   node examples/pool/run.mjs [--iterations N] [--workers N] [--seed S]
import { parseArgs } from 'node:util';
import os from 'node:os';
import { init, WorkerPool } from '../../dist/index.js';
import { trainingWorkloads } from '../../bench/pool.mjs';

const { values } = parseArgs({ options: {
  iterations: { type: 'string', default: '20' },
  workers: { type: 'string', default: String(os.availableParallelism()) },
  seed: { type: 'string', default: '0' },
} });
await init();
const [w] = trainingWorkloads();
const iterations = Number(values.iterations);
const rows = [];
for (const size of [0, 1, Number(values.workers)]) {
  const pool = size > 0 ? await WorkerPool.create({ size }) : undefined;
  const model = w.make(Number(values.seed));
  const t0 = performance.now();
  const h = await w.fit(model, iterations, pool);
  const ms = (performance.now() - t0) / iterations;
  rows.push({ workers: size || 'no pool', msPerIteration: +ms.toFixed(2), finalLoss: +h.loss.at(-1).toFixed(5), paramDigest: w.digest(model) });
  w.dispose(model);
  await pool?.terminate();
}
console.table(rows);
console.log(new Set(rows.map((r) => r.paramDigest)).size === 1 ? 'same parameter bits for every pool size' : 'DIGESTS DIFFER');
