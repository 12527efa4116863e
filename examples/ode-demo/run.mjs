#!/usr/bin/env node
// torchdiffeq's examples/ode_demo.py with neurode: learn the spiral dynamics y' = (y³)A from
// 20 windows of 10 points per iteration (RMSprop, lr 1e-3), then integrate the learned field
// from y0 = [2, 0] over t ∈ [0, 25]. Usage: node examples/ode-demo/run.mjs [--iterations N]
//   [--grad backprop|adjoint|checkpoint] [--seed S] [--out DIR]
import { parseArgs } from 'node:util';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { init, nn, odeint, fitTrajectory } from '../../dist/index.js';

const { values } = parseArgs({ options: {
  iterations: { type: 'string', default: '2000' },
  grad: { type: 'string', default: 'backprop' },
  seed: { type: 'string', default: '0' },
  out: { type: 'string', default: 'neurode-out/ode-demo' },
} });
await init();
const A = [[-0.1, 2], [-2, -0.1]];
const spiral = (_t, y, dy) => { const a = y[0] ** 3, b = y[1] ** 3; dy[0] = a * A[0][0] + b * A[1][0]; dy[1] = a * A[0][1] + b * A[1][1]; };
const t = Array.from({ length: 1000 }, (_, i) => (25 * i) / 999);
const truth = odeint(spiral, [2, 0], t).ys;

// ode_demo.py initialises weights ~ N(0, 0.1²) and biases to 0
const field = nn.mlp({ dims: [2, 50, 2], activation: 'tanh', inputCube: true, seed: Number(values.seed), initStd: 0.1 });
const iterations = Number(values.iterations);
const t0 = performance.now();
const history = await fitTrajectory(field, { t, y: truth }, {
  iterations, batchTime: 10, batchSize: 20, lr: 1e-3, grad: values.grad, seed: Number(values.seed),
  onProgress: (p) => { if (p.iteration % 100 === 0) process.stderr.write(`iter ${p.iteration}  loss ${p.loss.toFixed(4)}  nfe ${p.nfeForward}/${p.nfeBackward}  ${(p.elapsedMs / 1000).toFixed(1)} s\n`); },
});
const seconds = (performance.now() - t0) / 1000;
const learned = odeint(field, [2, 0], t).ys;
const end = [learned[1998] - truth[1998], learned[1999] - truth[1999]];
const endErr = Math.hypot(end[0], end[1]);
const meanLoss = (a, b) => history.loss.slice(a, b).reduce((s, v) => s + v, 0) / (b - a);
const curve = Array.from({ length: 10 }, (_, k) => +meanLoss(Math.floor((k * iterations) / 10), Math.floor(((k + 1) * iterations) / 10)).toFixed(5));
const result = {
  iterations, grad: values.grad, seconds: +seconds.toFixed(2), msPerIteration: +((1000 * seconds) / iterations).toFixed(3),
  lossCurveDeciles: curve, finalStateError: +endErr.toFixed(5), finalStateWithin0_1: endErr < 0.1,
  nfeForwardMean: history.nfeForward.reduce((s, v) => s + v, 0) / iterations,
  nfeBackwardMean: history.nfeBackward.reduce((s, v) => s + v, 0) / iterations,
  paramDigest: field.digest(),
};
mkdirSync(values.out, { recursive: true });
writeFileSync(path.join(values.out, 'ode-demo.json'), JSON.stringify({ ...result, loss: history.loss }, null, 1));
console.log(JSON.stringify(result, null, 1));
