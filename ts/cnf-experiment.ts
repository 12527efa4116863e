/**
 * The paper's Section 4 experiments in small: maximum likelihood on 2-D toy data (held-out NLL
 * against the best full-covariance Gaussian), density matching to unnormalised targets (Fig. 4:
 * reverse KL of a planar CNF against a Gaussian fit) and the Fig. 5 view of samples flowing from
 * the base at t = 0 to the data at t = t1. Shared by examples/cnf and `neurode demo cnf`.
 */
import { CNF, densityGrid, gaussianBaselineNll, targetLogDensity, type CNFTarget } from './cnf.js';
import { toyData, type ToyDataset } from './datasets.js';
import { nn } from './nn.js';
import type { Dtype } from './odeint.js';
import { densityPanels } from './report/density.js';

export interface CnfExperimentOptions {
  datasets: ToyDataset[];
  targets: CNFTarget[];
  /** Training iterations of the maximum-likelihood flows and of the density-matching flows. */
  iterations: number;
  klIterations: number;
  batchSize: number;
  hidden: number[];
  /** Planar units for density matching (paper Fig. 4). */
  width: number;
  trainSize: number;
  testSize: number;
  dtype: Dtype;
  seed: number;
  /** Grid points per axis of the density figures. */
  grid: number;
  log: (line: string) => void;
  progress?: (done: number, total: number, info: string) => void;
}

export interface CnfExperimentResult {
  mle: Array<{ dataset: string; cnfNll: number; gaussianNll: number; improvement: number; trainNll: number; mass: number; iterations: number; seconds: number; msPerIteration: number; nfeForwardMean: number; nfeBackwardMean: number }>;
  kl: Array<{ target: string; logZ: number; cnfKl: number; gaussianKl: number; iterations: number; seconds: number }>;
  figures: Array<{ file: string; caption: string; svg: string }>;
  models: Record<string, object>;
}

const mean = (a: ArrayLike<number>) => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]!; return s / a.length; };
const r4 = (v: number) => Math.round(v * 1e4) / 1e4;

/** Grid cell centres on [lo, hi]² (row i = x index), n × n × 2. */
function grid(lo: number, hi: number, n: number): { pts: Float64Array; cell: number } {
  const step = (hi - lo) / n;
  const pts = new Float64Array(2 * n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) { pts[2 * (i * n + j)] = lo + (i + 0.5) * step; pts[2 * (i * n + j) + 1] = lo + (j + 0.5) * step; }
  return { pts, cell: step * step };
}

export async function runCnfExperiment(o: CnfExperimentOptions): Promise<CnfExperimentResult> {
  const res: CnfExperimentResult = { mle: [], kl: [], figures: [], models: {} };
  const total = o.datasets.length * o.iterations + o.targets.length * 2 * o.klIterations;
  let done = 0;
  const tick = (info: string) => { done += 1; o.progress?.(done, total, info); };
  const lim = 4.5;
  const g = grid(-lim, lim, o.grid);

  for (const name of o.datasets) {
    const train = toyData(name, o.trainSize, o.seed);
    const test = toyData(name, o.testSize, o.seed + 1000);
    const f = new CNF({ dim: 2, hidden: o.hidden, seed: o.seed, dtype: o.dtype });
    const nfeF: number[] = [], nfeB: number[] = [];
    const t0 = Date.now();
    await f.fit(train, {
      iterations: o.iterations, batchSize: o.batchSize, lr: 5e-3, seed: o.seed,
      onProgress: (p) => { nfeF.push(p.nfeForward); nfeB.push(p.nfeBackward); tick(`${name} nll ${(p.nll as number).toFixed(3)}`); },
    });
    const seconds = (Date.now() - t0) / 1000;
    const cnfNll = -mean(f.logProb(test));
    const trainNll = -mean(f.logProb(train.subarray(0, 2 * Math.min(o.trainSize, o.testSize))));
    const gaussianNll = gaussianBaselineNll(train, test);
    const dens = densityGrid(f.logProb(g.pts), g.cell);
    res.mle.push({
      dataset: name, cnfNll: r4(cnfNll), gaussianNll: r4(gaussianNll), improvement: r4(gaussianNll - cnfNll), trainNll: r4(trainNll), mass: r4(dens.mass),
      iterations: o.iterations, seconds, msPerIteration: Math.round((seconds * 1000) / o.iterations), nfeForwardMean: Math.round(mean(nfeF)), nfeBackwardMean: Math.round(mean(nfeB)),
    });
    o.log(`${name}: held-out NLL ${cnfNll.toFixed(3)} (Gaussian ${gaussianNll.toFixed(3)}, better by ${(gaussianNll - cnfNll).toFixed(3)} nats), ∫p = ${dens.mass.toFixed(4)}, ${seconds.toFixed(0)} s`);
    // Fig. 5 view: base samples at several times on their way to the data
    const times = [0, 0.25, 0.5, 0.75, 1].map((s) => s * f.config.t1);
    const traj = f.trajectory(1000, times, o.seed + 7);
    const panels = times.map((t, k) => ({ title: `t = ${t.toFixed(2)}`, points: traj.subarray(k * 2000, (k + 1) * 2000) }));
    res.figures.push({ file: `cnf-${name}-flow.svg`, caption: `${name}: samples transformed from the base N(0, I) at t = 0 to the data at t = 1 (paper Fig. 5).`, svg: densityPanels(panels, { lo: -lim, hi: lim, size: 180, title: `${name}: samples flowing from the base to the data` }) });
    res.figures.push({
      file: `cnf-${name}-density.svg`, caption: `${name}: data, learned density exp(logProb) and samples.`,
      svg: densityPanels([
        { title: 'data (held out)', points: test.subarray(0, 2000) },
        { title: 'CNF density', density: { values: dens.density, nx: o.grid, ny: o.grid } },
        { title: 'CNF samples', points: f.sample(1000, o.seed + 3) },
      ], { lo: -lim, hi: lim, title: `${name}: maximum likelihood (NLL ${cnfNll.toFixed(2)} vs Gaussian ${gaussianNll.toFixed(2)})` }),
    });
    res.models[`mle-${name}`] = f.toJSON();
    f.dispose();
  }

  for (const target of o.targets) {
    const tl = 4;
    const tg = grid(-tl, tl, o.grid);
    const td = densityGrid(targetLogDensity(target, tg.pts).value, tg.cell);
    // log Z on a wider grid (the targets' tails reach past the plotted window)
    const zg = grid(-7, 7, 2 * o.grid);
    const logZ = densityGrid(targetLogDensity(target, zg.pts).value, zg.cell).logMass;
    // reverse KL(q‖p) = E_q[log q − log p̃] + log Z, estimated with fresh samples
    const kl = (f: CNF) => {
      const s = f.sampleWithLogProb(4096, o.seed + 99);
      const lp = targetLogDensity(target, s.x).value;
      let v = 0;
      for (let i = 0; i < lp.length; i++) v += (s.logProb[i]! - lp[i]!) / lp.length;
      return v + logZ;
    };
    const t0 = Date.now();
    const f = new CNF({ dim: 2, arch: 'planar', width: o.width, hidden: [32, 32], seed: o.seed, dtype: o.dtype });
    await f.fitDensity(target, { iterations: o.klIterations, batchSize: o.batchSize, lr: 5e-3, seed: o.seed, onProgress: (p) => tick(`${target} kl ${(p.loss + logZ).toFixed(3)}`) });
    const seconds = (Date.now() - t0) / 1000;
    // the best Gaussian by the same objective: an affine flow z ↦ e^{A}z + c is any full-covariance Gaussian
    const gauss = new CNF({ dim: 2, layers: [nn.linear(2, 2)], seed: o.seed, dtype: o.dtype });
    await gauss.fitDensity(target, { iterations: o.klIterations, batchSize: o.batchSize, lr: 1e-2, seed: o.seed, onProgress: () => tick(`${target} gaussian`) });
    const cnfKl = kl(f), gaussianKl = kl(gauss);
    res.kl.push({ target, logZ: r4(logZ), cnfKl: r4(cnfKl), gaussianKl: r4(gaussianKl), iterations: o.klIterations, seconds });
    o.log(`${target}: reverse KL planar CNF ${cnfKl.toFixed(3)} vs Gaussian ${gaussianKl.toFixed(3)} (log Z = ${logZ.toFixed(3)}), ${seconds.toFixed(0)} s`);
    const qd = densityGrid(f.logProb(tg.pts), tg.cell);
    const gd = densityGrid(gauss.logProb(tg.pts), tg.cell);
    res.figures.push({
      file: `cnf-target-${target}.svg`, caption: `Density matching to '${target}' (paper Fig. 4): target, planar CNF (M = ${o.width}) and Gaussian fit.`,
      svg: densityPanels([
        { title: 'target p̃', density: { values: td.density, nx: o.grid, ny: o.grid } },
        { title: `planar CNF (KL ${cnfKl.toFixed(2)})`, density: { values: qd.density, nx: o.grid, ny: o.grid } },
        { title: `Gaussian (KL ${gaussianKl.toFixed(2)})`, density: { values: gd.density, nx: o.grid, ny: o.grid } },
      ], { lo: -tl, hi: tl, title: `Reverse-KL density matching: ${target}` }),
    });
    res.models[`kl-${target}`] = f.toJSON();
    f.dispose();
    gauss.dispose();
  }
  return res;
}
