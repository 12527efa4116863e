/** The demos behind `neurode demo`: each returns metrics and SVG figures for the report. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { odeint, odeintWithGrad, nn, fitTrajectory, type GradMode } from './index.js';
import { mnistTable, formatTable1 } from './mnist-table.js';
import { linePlot } from './report/svg.js';
import { runTable2 } from './latent-table2.js';
import { runCnfExperiment } from './cnf-experiment.js';

export interface DemoContext {
  out: string;
  seed: number;
  workers: number;
  quick: boolean;
  /** Size overrides from the command line: training iterations (spiral, cnf, latent), epochs (mnist). */
  iterations?: number;
  epochs?: number;
  progress: (done: number, total: number, info: string) => void;
}

export interface DemoResult {
  name: string;
  title: string;
  summary: string;
  metrics: Record<string, unknown>;
  /** File names (in `out`) of the SVG figures, with captions. */
  figures: Array<{ file: string; caption: string }>;
}

/**
 * The ode_demo spiral y' = (y³)A: solved at three tolerances (NFE vs tolerance), then learned
 * from windows of the trajectory as torchdiffeq's examples/ode_demo.py does, and the memory each
 * gradient mode holds as the number of output times T grows.
 */
async function spiral(ctx: DemoContext): Promise<DemoResult> {
  const A = [[-0.1, 2], [-2, -0.1]];
  const f = (_t: number, y: Float64Array, dy: Float64Array) => {
    const a = y[0]! ** 3, b = y[1]! ** 3;
    dy[0] = a * A[0]![0]! + b * A[1]![0]!;
    dy[1] = a * A[0]![1]! + b * A[1]![1]!;
  };
  const ts = Array.from({ length: 1000 }, (_, i) => (25 * i) / 999);
  const tols = [1e-3, 1e-5, 1e-7, 1e-9];
  const runs = tols.map((tol) => {
    const t0 = performance.now();
    const sol = odeint(f, [2, 0], ts, { rtol: tol, atol: tol });
    return { tol, sol, ms: performance.now() - t0 };
  });
  const truth = odeint(f, [2, 0], ts, { rtol: 1e-10, atol: 1e-10 }).ys;
  writeFileSync(path.join(ctx.out, 'spiral-trajectory.json'), JSON.stringify({ t: ts, y: Array.from({ length: ts.length }, (_, i) => [truth[2 * i]!, truth[2 * i + 1]!]) }));
  const xs = (ys: ArrayLike<number>) => Array.from({ length: ts.length }, (_, i) => ys[2 * i]!);
  const yss = (ys: ArrayLike<number>) => Array.from({ length: ts.length }, (_, i) => ys[2 * i + 1]!);

  // learn the field from data (ode_demo: 20 windows × 10 points, RMSprop 1e-3, N(0, 0.1²) init)
  const iterations = ctx.iterations ?? (ctx.quick ? 300 : 2000);
  const field = nn.mlp({ dims: [2, 50, 2], activation: 'tanh', inputCube: true, seed: ctx.seed, initStd: 0.1 });
  const t0 = performance.now();
  const history = await fitTrajectory(field, { t: ts, y: truth }, {
    iterations, batchTime: 10, batchSize: 20, lr: 1e-3, seed: ctx.seed,
    onProgress: (p) => ctx.progress(p.iteration, iterations, `loss ${p.loss.toFixed(4)} nfe ${p.nfeForward}/${p.nfeBackward}`),
  });
  const trainSeconds = (performance.now() - t0) / 1000;
  const learned = odeint(field, [2, 0], ts).ys;
  const endErr = Math.hypot(learned[1998]! - truth[1998]!, learned[1999]! - truth[1999]!);

  // memory held for the backward pass as T grows (ode_demo field, outputs every 0.025)
  const memory = [25, 100, 400].map((T) => {
    const row: Record<string, number> = { T };
    for (const grad of ['adjoint', 'backprop', 'checkpoint'] as GradMode[]) {
      const s = odeintWithGrad(field, [2, 0], ts.slice(0, T), { grad });
      row[grad] = s.storedBytes - T * 2 * 8;
      row[`${grad}Steps`] = s.stats.steps;
      s.dispose();
    }
    return row;
  });
  field.dispose();

  writeFileSync(path.join(ctx.out, 'spiral.svg'), linePlot(
    [{ label: 'truth', x: xs(truth), y: yss(truth) }, { label: `learned (${iterations} iterations)`, x: xs(learned), y: yss(learned), dashed: true }],
    { title: "Spiral y' = (y³)A: truth and the learned neural ODE", xlabel: 'y₁', ylabel: 'y₂', equal: true },
  ));
  writeFileSync(path.join(ctx.out, 'spiral-loss.svg'), linePlot(
    [{ label: 'training loss (mean |error|)', x: history.loss.map((_, i) => i + 1), y: history.loss }],
    { title: 'ode_demo training loss', xlabel: 'iteration', ylabel: 'loss', logY: true },
  ));
  writeFileSync(path.join(ctx.out, 'spiral-nfe.svg'), linePlot(
    [{ label: 'dopri5 NFE', x: runs.map((r) => Math.log10(r.tol)), y: runs.map((r) => r.sol.stats.nfe), points: true }],
    { title: 'NFE vs tolerance (spiral, 1000 outputs)', xlabel: 'log10 tolerance', ylabel: 'NFE', logY: true },
  ));
  writeFileSync(path.join(ctx.out, 'spiral-memory.svg'), linePlot(
    (['adjoint', 'backprop', 'checkpoint'] as const).map((g) => ({ label: g, x: memory.map((m) => m.T!), y: memory.map((m) => Math.max(1, m[g]!)), points: false })),
    { title: 'Bytes stored for the backward pass vs T', xlabel: 'T (output times)', ylabel: 'bytes (log)', logY: true },
  ));
  ctx.progress(1, 1, 'done');
  const metrics = {
    problem: "y' = (y^3) A, A = [[-0.1, 2], [-2, -0.1]], y0 = [2, 0], 1000 outputs on [0, 25]",
    nfeVsTolerance: runs.map((r) => ({ tol: r.tol, ...r.sol.stats, ms: +r.ms.toFixed(3) })),
    training: { iterations, seconds: +trainSeconds.toFixed(2), msPerIteration: +((1000 * trainSeconds) / iterations).toFixed(3), firstLoss: history.loss[0], lastLoss: history.loss[history.loss.length - 1], finalStateError: +endErr.toFixed(4) },
    memoryBytesVsT: memory,
  };
  return {
    name: 'spiral', title: 'Spiral: solving, learning (ode_demo) and memory per gradient mode', metrics,
    summary: `NFE at tol 1e-3…1e-9: ${runs.map((r) => r.sol.stats.nfe).join(', ')}; learned field in ${iterations} iterations (${trainSeconds.toFixed(1)} s), end-state error ${endErr.toFixed(3)}`,
    figures: [
      { file: 'spiral.svg', caption: 'The true spiral and the trajectory of the learned neural ODE from y0 = [2, 0].' },
      { file: 'spiral-loss.svg', caption: 'Training loss of the ode_demo reproduction.' },
      { file: 'spiral-nfe.svg', caption: 'Function evaluations grow as the tolerance tightens (cf. the paper\'s Fig. 3).' },
      { file: 'spiral-memory.svg', caption: 'Memory held for the backward pass: adjoint constant, checkpoint ∝ steps, backprop ∝ steps × stages.' },
    ],
  };
}

/** Table 2 on spirals: latent ODE vs RNN baseline, extrapolation RMSE from 30/50/100 observations, and Fig. 8. */
async function latent(ctx: DemoContext): Promise<DemoResult> {
  const r = await runTable2({
    // `make demo` must finish within 15 minutes in all: the full Table 2 run is examples/latent-ode
    // --iterations N: N dense iterations for each model, then N/2 sparse ones
    iterations: ctx.iterations ?? (ctx.quick ? 40 : 200), rnnIterations: ctx.iterations ?? (ctx.quick ? 20 : 100),
    sparseIterations: Math.ceil((ctx.iterations ?? (ctx.quick ? 40 : 200)) / 2), fineIterations: 0, subsampleMin: 30,
    seed: ctx.seed, dtype: 'float32', obsStd: 0.3, evalEvery: 0, counts: [30, 50, 100],
    log: (line) => process.stderr.write(line + '\n'), progress: ctx.progress,
  });
  writeFileSync(path.join(ctx.out, 'latent-fig8.svg'), r.svg);
  const { svg: _svg, models: _models, ...metrics } = r;
  const f = (v: number[]) => v.map((x) => x.toFixed(4)).join(' / ');
  return {
    name: 'latent', title: 'Latent ODE on irregularly sampled spirals (Table 2)', metrics,
    summary: [
      `predictive RMSE with 30 / 50 / 100 observations after ${r.latentODE.iterations} iterations: far from converged (the Table 2 run, examples/latent-ode, takes 12,000, about 1.5 h)`,
      `  RNN baseline: ${f(r.rnn.rmse)}   (paper ${f(r.paper.rnn)})`,
      `  latent ODE:   ${f(r.latentODE.rmse)}   (paper ${f(r.paper.latentODE)})`,
      `latent ODE ${r.latentODE.iterations} iterations in ${r.latentODE.seconds} s (${r.latentODE.msPerIteration} ms each); RNN ${r.rnn.iterations} in ${r.rnn.seconds} s`,
      `wrote latent-fig8.svg`,
    ].join('\n'),
    figures: [{ file: 'latent-fig8.svg', caption: 'Test spirals: observed points (n = 30), latent ODE reconstruction (blue) and extrapolation (red), truth dashed (paper Fig. 8).' }],
  };
}


/** Table 1 on the embedded MNIST digits (quick: 512 train / 256 test rows, one epoch). */
async function mnistDemo(ctx: DemoContext): Promise<DemoResult> {
  const r = await mnistTable({
    // sized for `make demo` (15 minutes for every demo together); the full Table 1 run is examples/mnist
    epochs: ctx.epochs ?? 1, trainRows: ctx.quick ? 512 : 2048, testRows: ctx.quick ? 256 : 2000,
    milestones: [], seed: ctx.seed, log: (line, done, total) => ctx.progress(done, total, line),
  });
  const table = formatTable1(r.rows);
  const svg = linePlot(
    r.rows.map((row) => ({ label: row.label, x: row.testAccuracyPerEpoch.map((_, i) => i + 1), y: row.testAccuracyPerEpoch.map((a) => 100 * a), points: true })),
    { title: `Test accuracy on ${r.test} held-out digits (${r.train} training digits)`, xlabel: 'epoch', ylabel: 'accuracy (%)' },
  );
  writeFileSync(path.join(ctx.out, 'mnist.svg'), svg);
  return {
    name: 'mnist', title: 'Table 1: MLP, ResNet, RK-Net and ODE-Net on MNIST digits', metrics: r,
    summary: table,
    figures: [{ file: 'mnist.svg', caption: 'Test accuracy per epoch of the four models of Table 1.' }],
  };
}


/** Continuous normalizing flows: maximum likelihood on 2-D data vs a Gaussian, Fig. 4 density matching, Fig. 5 flow view. */
async function cnf(ctx: DemoContext): Promise<DemoResult> {
  const r = await runCnfExperiment({
    datasets: ctx.quick ? ['twoMoons'] : ['twoMoons', 'twoCircles'], targets: ctx.quick ? ['ring'] : ['ring', 'wave', 'twoWaves'],
    // sized for `make demo` (15 minutes for every demo together); examples/cnf runs the full sizes
    iterations: ctx.iterations ?? (ctx.quick ? 60 : 600), klIterations: ctx.iterations ?? (ctx.quick ? 60 : 400), batchSize: ctx.quick ? 128 : 256, hidden: [32, 32, 32], width: 64,
    trainSize: ctx.quick ? 4000 : 20000, testSize: ctx.quick ? 2000 : 10000, dtype: 'float32', seed: ctx.seed, grid: ctx.quick ? 60 : 90,
    log: (line) => process.stderr.write(line + '\n'), progress: ctx.progress,
  });
  for (const f of r.figures) writeFileSync(path.join(ctx.out, f.file), f.svg);
  const { figures, models: _models, ...metrics } = r;
  return {
    name: 'cnf', title: 'Continuous normalizing flows (Section 4, Figs. 4 and 5)', metrics,
    summary: [
      `held-out NLL, CNF vs best full-covariance Gaussian${ctx.quick ? ' (quick run: far from converged)' : ''}`,
      ...r.mle.map((m) => `  ${m.dataset}: ${m.cnfNll.toFixed(3)} vs ${m.gaussianNll.toFixed(3)} (better by ${m.improvement.toFixed(3)}), ∫p = ${m.mass.toFixed(4)}, ${m.msPerIteration} ms/iteration`),
      'reverse KL, planar CNF vs Gaussian fit',
      ...r.kl.map((k) => `  ${k.target}: ${k.cnfKl.toFixed(3)} vs ${k.gaussianKl.toFixed(3)}`),
      `wrote ${figures.map((f) => f.file).join(', ')}`,
    ].join('\n'),
    figures: figures.map((f) => ({ file: f.file, caption: f.caption })),
  };
}


export const DEMOS: Record<string, (ctx: DemoContext) => Promise<DemoResult>> = { spiral, cnf, latent, mnist: mnistDemo };
