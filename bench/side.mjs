// Same-machine speed-ups against torchdiffeq (issues 3 and 5). The reference figures in
// shared/reference were measured on another machine kind (its "machine" field); where this
// machine is slower or faster, a ratio against those stored times measures the machines as much
// as the libraries. Here torchdiffeq (bench/torchdiffeq_side.py, one thread, its own process)
// and neurode run the same iterations in alternating rounds, and each round gives a ratio.
// Round r uses seed r on both sides (initial weights, data, batches): how hard a run is varies
// with the seed (ode_demo's median NFE is 20 with torch seed 0, the reference's, and 26 with
// seeds 1-7), so one seed would favour whichever side drew the easier run.
// Skipped, with the reason, where PyTorch or torchdiffeq is missing.
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WorkerPool } from '../dist/index.js';
import { odeDemoData, timeOdeDemo } from './train.mjs';
import { timeTraining } from './cnf.mjs';
import { cnfWorkload, timedRun } from './pool.mjs';
import { round, summarize } from './stats.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
// Debian's python3-torch is on /usr/bin/python3 (another python3 may come first on PATH)
const python = process.env.NEURODE_TORCH_PYTHON ?? '/usr/bin/python3';

function peer(args) {
  const env = { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' };
  const r = spawnSync(python, [path.join(here, 'torchdiffeq_side.py'), ...args], { encoding: 'utf8', env, timeout: 900_000 });
  if (r.status !== 0) throw new Error(`torchdiffeq_side.py ${args.join(' ')}: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`);
  return JSON.parse(r.stdout);
}

const short = { float64: 'f64', float32: 'f32' };

/** The cases: what neurode runs, what torchdiffeq runs, and the issue's target ratio. */
function cases(quick) {
  const data = odeDemoData();
  const out = [];
  for (const dtype of ['float64', 'float32']) {
    for (const grad of ['backprop', 'adjoint']) {
      out.push({
        name: `ode_demo iteration, ${grad}`, dtype, target: 30, issue: 3,
        peerArgs: ['ode_demo', short[dtype], grad === 'adjoint' ? 'adjoint' : 'odeint'],
        ours: async (_pools, seed) => {
          const r = await timeOdeDemo(data, { dtype, grad, blocks: quick ? 2 : 4, quick, seed });
          return { ms: r.msPerIter, nfe: `${r.nfeForward}/${r.nfeBackward}` };
        },
      });
    }
  }
  for (const dtype of ['float64', 'float32']) {
    out.push({
      name: 'CNF iteration, one thread', dtype, target: 1.5, issue: 5, peerArgs: ['cnf', short[dtype]],
      ours: async (_pools, seed) => {
        const r = await timeTraining({ dtype, trace: 'exact', shardSize: 512, iterations: quick ? 4 : 20, warmup: 2, seed });
        return { ms: r.medianMs, nfe: `${r.nfeForward}/${r.nfeBackward}` };
      },
    });
    out.push({
      name: 'CNF iteration, 2 workers (2 shards of 256)', dtype, target: 3, issue: 5, peerArgs: ['cnf', short[dtype]],
      ours: async (pools, seed) => {
        const w = cnfWorkload(dtype, 256, seed);
        const skip = 2;
        return { ms: summarize((await timedRun(w, pools[2], skip + (quick ? 4 : 12), skip)).times).medianMs };
      },
    });
  }
  return out;
}

export async function runSide({ quick = false, log = () => {} } = {}) {
  const probe = spawnSync(python, [path.join(here, 'torchdiffeq_side.py'), '--probe'], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } });
  if (probe.error || /ModuleNotFoundError|ImportError/.test(probe.stderr ?? '')) {
    const why = `needs PyTorch on ${python} (NEURODE_TORCH_PYTHON) and torchdiffeq (importable, or TORCHDIFFEQ_PATH = a checkout)`;
    log(`skipped: ${why}`);
    return { skipped: why };
  }
  const rounds = quick ? 1 : 5;
  const pools = { 2: await WorkerPool.create({ size: 2 }) };
  const rows = [];
  let versions;
  try {
    for (const c of cases(quick)) {
      const p = [], o = [], ratio = [], pn = [], on = [];
      for (let r = 0; r < rounds; r++) {
        const pr = peer([...c.peerArgs, String(r)]);
        versions ??= { torch: pr.torch, python: pr.python };
        pn.push(`${pr.nfeForward}/${pr.nfeBackward}`);
        const ours = await c.ours(pools, r);
        if (ours.nfe) on.push(ours.nfe);
        p.push(pr.msPerIter);
        o.push(ours.ms);
        ratio.push(pr.msPerIter / ours.ms);
      }
      const row = {
        issue: c.issue, case: c.name, dtype: c.dtype, torchdiffeqMs: round(summarize(p).medianMs, 4), neurodeMs: round(summarize(o).medianMs, 4),
        speedup: round(summarize(ratio).medianMs, 3), speedupPerRound: ratio.map((x) => round(x, 3)).join(' '), target: c.target,
        torchdiffeqNfePerRound: pn.join(' '), neurodeNfePerRound: on.join(' '),
      };
      rows.push(row);
      log(`${c.name} (${c.dtype}): torchdiffeq ${row.torchdiffeqMs} ms, neurode ${row.neurodeMs} ms → ${row.speedup}× (rounds ${row.speedupPerRound}; target ${c.target}×); NFE per round torchdiffeq ${row.torchdiffeqNfePerRound}${on.length ? `, neurode ${row.neurodeNfePerRound}` : ''}`);
    }
  } finally {
    await pools[2].terminate();
  }
  return { machine: { cpu: os.cpus()[0]?.model, cores: os.availableParallelism(), loadAverageBefore: os.loadavg().map((v) => round(v, 3)) }, peer: versions, rounds, rows };
}
