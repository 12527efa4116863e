#!/usr/bin/env node
// Table 2 of the paper on the bidirectional spirals: predictive RMSE of a latent ODE and of an
// RNN baseline on held-out spirals given 30, 50 and 100 observations (MODELS_PEER.md protocol),
// plus a Fig. 8-style figure. Usage: node examples/latent-ode/run.mjs [--iterations N]
//   [--rnn-iterations N] [--sparse-iterations N] [--fine-iterations N] [--subsample-min K] [--dtype float32|float64]
//   [--obs-std S] [--eval-every N] [--seed S] [--out DIR]
// Training: --iterations (latent ODE) and --rnn-iterations (RNN) on whole 100-point windows,
// then --sparse-iterations for each on random K..100-point subsets of every window, then
// --fine-iterations more of those at learning rate 0.001 instead of 0.01.
import { parseArgs } from 'node:util';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { init } from '../../dist/index.js';
import { runTable2 } from '../../dist/latent-table2.js';

const { values } = parseArgs({ options: {
  iterations: { type: 'string', default: '6000' },
  'rnn-iterations': { type: 'string', default: '3000' },
  'sparse-iterations': { type: 'string', default: '3000' },
  'fine-iterations': { type: 'string', default: '3000' },
  dtype: { type: 'string', default: 'float32' },
  'obs-std': { type: 'string', default: '0.3' },
  'subsample-min': { type: 'string', default: '30' },
  'eval-every': { type: 'string', default: '250' },
  seed: { type: 'string', default: '0' },
  out: { type: 'string', default: 'neurode-out/latent-ode' },
} });
await init();
const log = (s) => process.stderr.write(s + '\n');
const r = await runTable2({
  iterations: Number(values.iterations), rnnIterations: Number(values['rnn-iterations']), sparseIterations: Number(values['sparse-iterations']), fineIterations: Number(values['fine-iterations']), seed: Number(values.seed),
  dtype: values.dtype, obsStd: Number(values['obs-std']), subsampleMin: Number(values['subsample-min']),
  evalEvery: Number(values['eval-every']), counts: [30, 50, 100], log,
});
mkdirSync(values.out, { recursive: true });
writeFileSync(path.join(values.out, 'fig8-spirals.svg'), r.svg);
const { svg, models, ...rest } = r;
writeFileSync(path.join(values.out, 'models.json'), JSON.stringify(models));
writeFileSync(path.join(values.out, 'table2.json'), JSON.stringify(rest, null, 1));
const row = (name, v) => `${name.padEnd(28)}${v.map((x) => x.toFixed(4).padStart(9)).join('')}`;
console.log(`Table 2, predictive RMSE on 100 held-out spirals (extrapolation, 100 points)`);
console.log(`${'observations'.padEnd(28)}${[30, 50, 100].map((n) => String(n).padStart(9)).join('')}`);
console.log(row('RNN baseline (neurode)', r.rnn.rmse));
console.log(row('latent ODE (neurode)', r.latentODE.rmse));
console.log(row('paper RNN', r.paper.rnn));
console.log(row('paper latent ODE', r.paper.latentODE));
console.log(row('torchdiffeq peer latent ODE', r.peerTorchdiffeq.latentODE));
console.log(`latent ODE: ${r.latentODE.iterations} iterations, ${r.latentODE.seconds} s (${r.latentODE.msPerIteration} ms/iteration, NFE ${r.latentODE.nfeForwardMean}/${r.latentODE.nfeBackwardMean}); observation-window RMSE ${r.latentODE.observationWindowRmse.map((v) => v.toFixed(4)).join(' / ')}`);
console.log(`RNN: ${r.rnn.iterations} iterations, ${r.rnn.seconds} s (${r.rnn.msPerIteration} ms/iteration)`);
console.log(`wrote ${path.join(values.out, 'table2.json')} and fig8-spirals.svg`);
