/** The paper's bidirectional 2-D spirals (API.md §6), generated in the core from a seed. */
import { invalid } from './errors.js';
import type { TimeSeriesBatch } from './latent.js';
import { callCore, core, Scratch, seedParts } from './wasm.js';
import { plainObject, positiveInteger } from './validate.js';

export interface SpiralsOptions {
  /** Number of series (default 1000). */
  n?: number;
  /** Points per full curve on t ∈ [0, 6π] (default 500). */
  ntotal?: number;
  /** Observed points per series (default 100). */
  nsample?: number;
  /** Noise-free points after the observation window included in `truth` (default 0). */
  nextra?: number;
  /** Standard deviation of the observation noise (default 0.1). */
  noise?: number;
  seed?: number;
}

export interface Spirals {
  /** Noisy windows: times n × nsample (τ_k = k·6π/(ntotal − 1)), values n × nsample × 2. */
  observed: TimeSeriesBatch & { times: Float64Array; values: Float64Array; batch: number };
  /** Noise-free values at the window times and `nextra` more: times (nsample + nextra), values n × (nsample + nextra) × 2. */
  truth: { times: Float64Array; values: Float64Array };
  /** Index of each window's first point on its curve, and its direction. */
  starts: Int32Array;
  clockwise: Uint8Array;
}

/**
 * torchdiffeq's latent_ode.py spirals: clockwise θ = 6π + 1 − t, r = 15/θ, (r cos θ − 5, r sin θ);
 * counter-clockwise θ = t, r = 0.3 θ, (r cos θ + 5, r sin θ); windows start uniformly in
 * [nsample, ntotal − nsample − nextra − 1]; same seed → same bits.
 */
export function spirals(options: SpiralsOptions = {}): Spirals {
  const o = plainObject('options', options);
  const n = positiveInteger('n', o.n ?? 1000, 1 << 24);
  const ntotal = positiveInteger('ntotal', o.ntotal ?? 500, 1 << 24);
  const nsample = positiveInteger('nsample', o.nsample ?? 100, 1 << 24);
  const nextra = o.nextra === undefined || o.nextra === 0 ? 0 : positiveInteger('nextra', o.nextra, 1 << 24);
  const noise = o.noise ?? 0.1;
  if (typeof noise !== 'number' || !Number.isFinite(noise) || noise < 0) throw invalid('noise', 'must be a finite number >= 0');
  const seed = (o.seed ?? 0) as number;
  if (!Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER) throw invalid('seed', 'must be a whole number from 0 to 2^53 − 1');
  if (nsample < 2) throw invalid('nsample', 'must be >= 2');
  if (ntotal <= 2 * nsample + nextra) throw invalid('ntotal', `must be > 2·nsample + nextra = ${2 * nsample + nextra}`);
  if (n * ntotal > 2 ** 28) throw invalid('n', 'n × ntotal is too large');
  const nt = nsample + nextra;
  const x = core().exports;
  const s = new Scratch(x);
  try {
    const ot = s.alloc(n * nsample * 8), ov = s.alloc(n * nsample * 16), tt = s.alloc(nt * 8), tv = s.alloc(n * nt * 16);
    const st = s.alloc(n * 8), cw = s.alloc(n * 8);
    callCore((c) => c.nd_spirals(n, ntotal, nsample, nextra, noise, ...seedParts(seed), ot, ov, tt, tv, st, cw));
    return {
      observed: { times: s.f64(ot, n * nsample).slice(), values: s.f64(ov, n * nsample * 2).slice(), batch: n },
      truth: { times: s.f64(tt, nt).slice(), values: s.f64(tv, n * nt * 2).slice() },
      starts: Int32Array.from(s.f64(st, n)),
      clockwise: Uint8Array.from(s.f64(cw, n)),
    };
  } finally {
    s.free();
  }
}

