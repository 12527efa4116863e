/** The demos behind `neurode demo`: each returns metrics and SVG figures for the report. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { odeint } from './index.js';
import { mnistTable, formatTable1 } from './mnist-table.js';
import { linePlot } from './report/svg.js';

export interface DemoContext {
  out: string;
  seed: number;
  workers: number;
  quick: boolean;
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

/** The ode_demo spiral y' = (y³)A solved with dopri5 at two tolerances. */
async function spiral(ctx: DemoContext): Promise<DemoResult> {
  const A = [[-0.1, 2], [-2, -0.1]];
  const f = (_t: number, y: Float64Array, dy: Float64Array) => {
    const a = y[0]! ** 3, b = y[1]! ** 3;
    dy[0] = a * A[0]![0]! + b * A[1]![0]!;
    dy[1] = a * A[0]![1]! + b * A[1]![1]!;
  };
  const ts = Array.from({ length: 1000 }, (_, i) => (25 * i) / 999);
  const runs = [1e-3, 1e-6, 1e-9].map((tol) => {
    const t0 = performance.now();
    const sol = odeint(f, [2, 0], ts, { rtol: tol, atol: tol });
    return { tol, sol, ms: performance.now() - t0 };
  });
  const fine = runs[2]!.sol;
  const trajectory = { t: ts, y: Array.from({ length: ts.length }, (_, i) => [fine.ys[2 * i]!, fine.ys[2 * i + 1]!]) };
  writeFileSync(path.join(ctx.out, 'spiral-trajectory.json'), JSON.stringify(trajectory));
  const xs = (s: typeof fine) => Array.from({ length: ts.length }, (_, i) => s.ys[2 * i]!);
  const ys = (s: typeof fine) => Array.from({ length: ts.length }, (_, i) => s.ys[2 * i + 1]!);
  const svg = linePlot(
    runs.map((r) => ({ label: `dopri5 tol ${r.tol} (NFE ${r.sol.stats.nfe})`, x: xs(r.sol), y: ys(r.sol), dashed: r.tol === 1e-3 })),
    { title: "Spiral y' = (y³)A from y0 = [2, 0], t ∈ [0, 25]", xlabel: 'y₁', ylabel: 'y₂', equal: true },
  );
  writeFileSync(path.join(ctx.out, 'spiral.svg'), svg);
  ctx.progress(1, 1, 'solved');
  const metrics = {
    problem: "y' = (y^3) A, A = [[-0.1, 2], [-2, -0.1]], y0 = [2, 0], 1000 outputs on [0, 25]",
    runs: runs.map((r) => ({ tol: r.tol, ...r.sol.stats, ms: +r.ms.toFixed(3) })),
    final: [fine.ys[fine.ys.length - 2], fine.ys[fine.ys.length - 1]],
  };
  return {
    name: 'spiral', title: 'Solving the spiral ODE', metrics,
    summary: runs.map((r) => `tol ${r.tol}: NFE ${r.sol.stats.nfe}, ${r.ms.toFixed(2)} ms`).join('\n') + `\nwrote ${path.join(ctx.out, 'spiral-trajectory.json')} and spiral.svg`,
    figures: [{ file: 'spiral.svg', caption: 'The spiral solved at three tolerances (1000 dense outputs each).' }],
  };
}

/** Table 1 on the embedded MNIST digits (quick: 512 train / 256 test rows, one epoch). */
async function mnistDemo(ctx: DemoContext): Promise<DemoResult> {
  const r = await mnistTable({
    epochs: ctx.quick ? 1 : 5, trainRows: ctx.quick ? 512 : undefined, testRows: ctx.quick ? 256 : undefined,
    milestones: ctx.quick ? [] : [4], seed: ctx.seed, log: (line, done, total) => ctx.progress(done, total, line),
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

export const DEMOS: Record<string, (ctx: DemoContext) => Promise<DemoResult>> = { spiral, mnist: mnistDemo };
