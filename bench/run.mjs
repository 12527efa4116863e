#!/usr/bin/env node
// neurode benchmark suite: `make bench` / `neurode bench`. Prints tables on stderr and writes
// JSON (deterministic counts beside timing medians, min and max, and same-process ratios).
import { readFileSync, mkdirSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { init } from '../dist/index.js';
import { runPlain, runSpiralHeadline } from './plain.mjs';
import { runPoolBench } from './pool.mjs';
import { runGemm, runTrain, TRAIN_COLUMNS } from './train.mjs';
import { runStiff } from './stiff.mjs';
import { table } from './stats.mjs';
import { runLatent } from './latent.mjs';
import { runConvThroughput, runOdeNetBatch } from './mnist.mjs';
import { runCnf, CNF_COLUMNS } from './cnf.mjs';
import { runSide } from './side.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

function reference(name) {
  const dirs = [process.env.NEURODE_REFERENCE, path.resolve(here, '..', '..', 'shared', 'reference'), path.resolve(here, 'reference')].filter(Boolean);
  for (const d of dirs) if (existsSync(path.join(d, name))) return JSON.parse(readFileSync(path.join(d, name), 'utf8'));
  throw new Error(`reference file ${name} not found (set NEURODE_REFERENCE)`);
}

export async function runBench(argv = process.argv.slice(2)) {
  const { values } = parseArgs({ args: argv, options: {
    out: { type: 'string', default: 'neurode-out' },
    only: { type: 'string' },
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  } });
  await init();
  const truth = reference('spiral_truth.json');
  const peer = reference('torchdiffeq_peer.json');
  const results = { when: new Date().toISOString(), node: process.version, sections: {} };
  const want = (s) => !values.only || values.only.split(',').includes(s);
  const log = (s) => process.stderr.write(s + '\n');
  if (want('plain')) {
    const headline = runSpiralHeadline({ truth, peer, quick: values.quick });
    results.sections.spiralHeadline = headline;
    log(`\n== ${headline.problem}`);
    log(table([{ who: 'neurode', ...headline.neurode }, { who: 'plain JS dopri5 (same process)', ...headline.plainJs }], ['who', 'nfe', 'maxErr', 'medianMs', 'minMs', 'maxMs', 'reps']));
    log(`plain JS / neurode = ${headline.ratioPlainJsOverNeurode}x; vs scipy RK45 ref ${headline.reference.scipyRK45.speedup}x (target 25x); vs torchdiffeq ref ${headline.reference.torchdiffeq.speedup}x (target 150x), NFE diff ${headline.reference.torchdiffeq.nfeDiff}`);
    const rows = runPlain({ truth, peer, quick: values.quick });
    results.sections.plain = rows;
    log('\n== plain ODEs (JavaScript right-hand side)');
    log(table(rows, ['problem', 'method', 'tol', 'dtype', 'nfe', 'torchdiffeqNfe', 'finalErr', 'medianMs', 'minMs', 'maxMs', 'torchdiffeqMs', 'speedupVsTorchdiffeqRef']));
  }
  if (want('latent')) {
    const rows = await runLatent({ peer, quick: values.quick });
    results.sections.latent = rows;
    log('\n== latent ODE training iteration (1000 spirals x 100 obs, latent 4, hidden 20, GRU 25, backprop; target >= 5x torchdiffeq)');
    log(table(rows, ['model', 'dtype', 'medianMs', 'minMs', 'maxMs', 'reps', 'nfeForward', 'nfeBackward', 'torchdiffeqMs', 'torchdiffeqNfe', 'speedupVsTorchdiffeq']));
  }
  if (want('pool')) {
    log('\n== worker pool: data-parallel training, round trip, 1 MiB copy vs transfer');
    const pool = await runPoolBench({ peer, quick: values.quick, log });
    results.sections.pool = pool;
    log(table(pool.training, ['workload', 'batch', 'shards', 'noPoolMsPerIter', 'workers1MsPerIter', 'workers2MsPerIter', 'speedup2v1', 'target', 'mainThreadMsPerIter', 'idealSpeedup2v1', 'cpuPerWall1', 'cpuPerWall2', 'sameBits', 'torchdiffeqMs', 'vsTorchdiffeqNoPool', 'vsTorchdiffeq2Workers']));
    log(`round trip of a tiny call: median ${pool.roundTrip.medianUs} µs (min ${pool.roundTrip.minUs}, max ${pool.roundTrip.maxUs}, ${pool.roundTrip.reps} calls)`);
    log(table(pool.transfer, ['mode', 'bytes', 'roundTripMedianMs', 'minMs', 'maxMs', 'gbPerSecondBothWays']));
  }
  if (want('mnist')) {
    const conv = await runConvThroughput({ quick: values.quick });
    results.sections.convThroughput = conv;
    log('\n== convolution throughput (batch 128, GFLOP/s vs the wasm SIMD peak)');
    log(table(conv, ['conv', 'dtype', 'what', 'gflop', 'medianMs', 'gflops', 'peakGflops', 'ofPeak']));
    const batch = await runOdeNetBatch({ quick: values.quick });
    results.sections.odenetBatch = batch;
    log('\n== ODE-Net training batch (128 digits, 2 shards of 64)');
    log(table(batch, ['model', 'workers', 'medianMs', 'minMs', 'maxMs', 'reps', 'nfeForward', 'nfeBackward', 'memoryBytes', 'note']));
  }
  if (want('train')) {
    const rows = await runTrain({ peer, quick: values.quick });
    results.sections.train = rows;
    log('\n== ode_demo training iteration (MLP 2→50→2 tanh, input cube, 20 windows × 10 points, dopri5, RMSprop; msPerIter: median of iterations 2-51 from the init, as the torchdiffeq reference; *Trained: after continued training)');
    log(table(rows, TRAIN_COLUMNS));
  }
  if (want('gemm')) {
    const rows = runGemm({ quick: values.quick });
    results.sections.gemm = rows;
    log('\n== gemm throughput vs the simd128 roofline (TOOLCHAIN.md §3)');
    log(table(rows, ['kernel', 'dtype', 'medianMs', 'minMs', 'gflopsAtMin', 'gflopsAtMedian', 'roofline', 'fractionOfRoofline']));
  }
  if (values.only && want('stiff')) {
    const stiff = runStiff({ quick: values.quick });
    results.sections.stiff = stiff;
    log('\n== stiff problems (kvaerno5 vs SciPy Radau/BDF, measured side by side)');
    log(table(stiff.rows, ['who', 'problem', 'nfe', 'newton', 'jacobians', 'steps', 'rejected', 'relErrEnd', 'medianMs', 'minMs', 'maxMs', 'dopri5WithMaxSteps1e5']));
  }
  if (want('cnf')) {
    const r = await runCnf({ peer, quick: values.quick });
    results.sections.cnf = r;
    log(`\n== ${r.problem}`);
    log(table(r.rows, CNF_COLUMNS));
  }
  if (want('side')) {
    log('\n== same machine, side by side: torchdiffeq (bench/torchdiffeq_side.py, 1 thread) and neurode in alternating rounds (issues 3 and 5)');
    const r = await runSide({ quick: values.quick, log });
    results.sections.side = r;
    if (r.rows) log(table(r.rows, ['issue', 'case', 'dtype', 'torchdiffeqMs', 'neurodeMs', 'speedup', 'speedupPerRound', 'target']));
  }
  mkdirSync(values.out, { recursive: true });
  const file = path.join(values.out, 'bench.json');
  writeFileSync(file, JSON.stringify(results, null, 1));
  log(`\nwrote ${file}`);
  if (values.json) process.stdout.write(JSON.stringify(results) + '\n');
  return results;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  runBench().catch((e) => { console.error(e); process.exit(1); });
}
