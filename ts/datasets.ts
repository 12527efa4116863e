/**
 * Data sets (API.md §6). The 2-D toy densities (FFJORD's) are generated in the core from a seed:
 * n × 2 row-major, sample i a pure function of (seed, i), so the same seed gives the same bits
 * and a longer draw extends a shorter one.
 */
import { invalid } from './errors.js';
import { spirals } from './spirals.js';
import { mnist, mnistFromIdx } from './mnist.js';
import { callCore, core, Scratch, seedParts } from './wasm.js';
import { positiveInteger } from './validate.js';

export const TOY_DATASETS = ['twoCircles', 'twoMoons', 'pinwheel', 'eightGaussians', 'checkerboard'] as const;
export type ToyDataset = (typeof TOY_DATASETS)[number];

function checkSeed(v: unknown): number {
  if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > Number.MAX_SAFE_INTEGER) throw invalid('seed', `must be a whole number from 0 to 2^53 − 1 (got ${String(v)})`);
  return v as number;
}

/** n samples of a named toy density (n × 2, row-major). */
export function toyData(name: ToyDataset, n: number, seed = 0): Float64Array {
  const kind = TOY_DATASETS.indexOf(name);
  if (kind < 0) throw invalid('name', `must be one of ${TOY_DATASETS.join(', ')} (got ${String(name)})`);
  positiveInteger('n', n, 1 << 26);
  checkSeed(seed);
  const x = core().exports;
  const s = new Scratch(x);
  try {
    const out = s.alloc(n * 16);
    callCore((c) => c.nd_toy_data(kind, n, ...seedParts(seed), out));
    return s.f64(out, 2 * n).slice();
  } finally {
    s.free();
  }
}

/** Two concentric circles (radii 3 and 1.5, noise 0.24). */
export const twoCircles = (n: number, seed = 0): Float64Array => toyData('twoCircles', n, seed);
/** Two interleaved half-moons (scaled by 2, noise 0.2). */
export const twoMoons = (n: number, seed = 0): Float64Array => toyData('twoMoons', n, seed);
/** Five curved arms. */
export const pinwheel = (n: number, seed = 0): Float64Array => toyData('pinwheel', n, seed);
/** Eight Gaussians on a circle of radius 4/1.414. */
export const eightGaussians = (n: number, seed = 0): Float64Array => toyData('eightGaussians', n, seed);
/** A 4 × 4 checkerboard on [−4, 4]². */
export const checkerboard = (n: number, seed = 0): Float64Array => toyData('checkerboard', n, seed);

/** Every data set of API.md §6. */
export const datasets = { twoCircles, twoMoons, pinwheel, eightGaussians, checkerboard, spirals, mnist, mnistFromIdx };
