import { beforeAll, describe, expect, it } from 'vitest';
import { init, CNF, datasets, nn, NeurodeError, random, targetLogDensity, gaussianBaselineNll, twoMoons } from '../ts/index.js';
import { shardKernel } from '../ts/train.js';
import { expmTimes } from './helpers.js';

beforeAll(async () => { await init(); });

function code(f: () => unknown): string {
  try { f(); } catch (e) { expect(e).toBeInstanceOf(NeurodeError); return (e as NeurodeError).code + ':' + ((e as NeurodeError).argument ?? ''); }
  throw new Error('did not throw');
}

const logNormal = (z: ArrayLike<number>) => { let q = 0; for (let i = 0; i < z.length; i++) q += z[i]! * z[i]!; return -0.5 * q - 0.5 * z.length * Math.log(2 * Math.PI); };

/** Small fields of every kind the CNF supports, with parameters large enough for curvature. */
function flows(tol = 1e-5): Array<[string, CNF]> {
  const o = { rtol: tol, atol: tol };
  const out: Array<[string, CNF]> = [
    ['mlp concatsquash tanh', new CNF({ dim: 2, hidden: [8, 8], seed: 1, ...o })],
    ['mlp concat softplus', new CNF({ dim: 2, hidden: [6], activation: 'softplus', time: 'concat', seed: 2, ...o })],
    ['planar', new CNF({ dim: 2, arch: 'planar', width: 5, hidden: [4], seed: 3, ...o })],
  ];
  for (const [, f] of out) { const p = f.params; for (let i = 0; i < p.length; i++) p[i] = p[i]! * 1.5 + 0.1 * Math.sin(3.1 * i); }
  return out;
}

describe('CNF log-density', () => {
  it('a linear field f(z) = Az matches the closed form log N(e^{−A t1} x) − t1·tr A to 1e-8', () => {
    const A = [[-0.4, 1.1], [-0.7, 0.3]];
    const t1 = 1.5;
    const f = new CNF({ dim: 2, layers: [nn.linear(2, 2)], t1, rtol: 1e-12, atol: 1e-12 });
    f.params.set([A[0]![0]!, A[0]![1]!, A[1]![0]!, A[1]![1]!, 0, 0]);
    const x = [0.3, -1.2, 2.1, 0.5, -0.8, -0.9, 0, 0];
    const lp = f.logProb(x);
    const back = A.map((r) => r.map((v) => -v * t1));
    for (let r = 0; r < 4; r++) {
      const z0 = expmTimes(back, [x[2 * r]!, x[2 * r + 1]!]);
      const truth = logNormal(z0) - t1 * (A[0]![0]! + A[1]![1]!);
      expect(Math.abs(lp[r]! - truth)).toBeLessThan(1e-8);
    }
    f.dispose();
  });

  it('the exact trace equals the finite-difference Jacobian trace', () => {
    for (const [name, f] of flows()) {
      const z = [0.7, -0.4, -1.3, 0.9];
      const t = 0.3;
      const aug = f.field(t, [z[0]!, z[1]!, 0, z[2]!, z[3]!, 0]);
      const h = 1e-5;
      for (let r = 0; r < 2; r++) {
        let tr = 0;
        for (let i = 0; i < 2; i++) {
          const zp = z.slice(2 * r, 2 * r + 2), zm = z.slice(2 * r, 2 * r + 2);
          zp[i]! += h; zm[i]! -= h;
          tr += (f.field(t, zp, { aug: 'plain' })[i]! - f.field(t, zm, { aug: 'plain' })[i]!) / (2 * h);
        }
        expect(Math.abs(-aug[3 * r + 2]! - tr), name).toBeLessThan(1e-8 * (1 + Math.abs(tr)));
      }
      f.dispose();
    }
  });

  it("Hutchinson's estimate averaged over 10⁴ probes is within 3 standard errors of the exact trace", () => {
    for (const [name, f] of flows()) {
      const z = [0.5, -0.8];
      const exact = -f.field(0.4, [z[0]!, z[1]!, 0])[2]!;
      const n = 10_000;
      const rows = new Float64Array(3 * n);
      for (let r = 0; r < n; r++) { rows[3 * r] = z[0]!; rows[3 * r + 1] = z[1]!; }
      const est = f.field(0.4, rows, { trace: 'hutchinson', seed: 7 });
      let mean = 0;
      for (let r = 0; r < n; r++) mean += -est[3 * r + 2]! / n;
      let v = 0;
      for (let r = 0; r < n; r++) v += (-est[3 * r + 2]! - mean) ** 2 / (n - 1);
      const se = Math.sqrt(v / n);
      expect(se, name).toBeGreaterThan(0);
      expect(Math.abs(mean - exact), name).toBeLessThan(3 * se);
      f.dispose();
    }
  });

  it('the VJP of the augmented field (trace and regulariser terms included) matches central differences', () => {
    for (const [name, f] of flows()) {
      for (const aug of ['logdet', 'regularized'] as const) {
        for (const trace of ['exact', 'hutchinson'] as const) {
          const w = aug === 'logdet' ? 3 : 5;
          const y = Float64Array.from({ length: 2 * w }, (_, i) => Math.cos(1.3 * i + 0.2));
          const a = Float64Array.from({ length: 2 * w }, (_, i) => Math.sin(0.7 * i + 1));
          const o = { aug, trace, seed: 3 };
          const t = 0.45;
          const g = f.fieldVjp(t, y, a, o);
          const dot = (tt: number, yy: Float64Array) => f.field(tt, yy, o).reduce((s, v, i) => s + v * a[i]!, 0);
          const h = 1e-6;
          const tol = (v: number) => 1e-6 * (1 + Math.abs(v));
          for (let i = 0; i < y.length; i++) {
            const yp = y.slice(), ym = y.slice();
            yp[i]! += h; ym[i]! -= h;
            const fd = (dot(t, yp) - dot(t, ym)) / (2 * h);
            expect(Math.abs(fd - g.y[i]!), `${name} ${aug} ${trace} y[${i}]`).toBeLessThan(tol(fd));
          }
          const fdt = (dot(t + h, y) - dot(t - h, y)) / (2 * h);
          expect(Math.abs(fdt - g.t), `${name} t`).toBeLessThan(tol(fdt));
          const p = f.params;
          for (let k = 0; k < f.numParams; k += 7) {
            const orig = p[k]!;
            p[k] = orig + h; const up = dot(t, y);
            p[k] = orig - h; const dn = dot(t, y);
            p[k] = orig;
            const fd = (up - dn) / (2 * h);
            expect(Math.abs(fd - g.params[k]!), `${name} ${aug} ${trace} param ${k}`).toBeLessThan(tol(fd));
          }
        }
      }
      f.dispose();
    }
  });

  it('the maximum-likelihood gradient (adjoint of the augmented system) matches finite differences of −logProb', () => {
    for (const grad of ['adjoint', 'backprop', 'checkpoint'] as const) {
      const f = new CNF({ dim: 2, hidden: [6], seed: 4, grad, rtol: 1e-11, atol: 1e-11 });
      const x = [0.4, -0.3, 1.1, 0.9, -0.7, 0.2];
      const r = f.lossAndGrad(x);
      const nll = () => -f.logProb(x).reduce((s, v) => s + v, 0) / 3;
      expect(Math.abs(r.loss - nll())).toBeLessThan(1e-9);
      const p = f.params;
      const h = 1e-6;
      for (let k = 0; k < f.numParams; k += 5) {
        const o = p[k]!;
        p[k] = o + h; const up = nll();
        p[k] = o - h; const dn = nll();
        p[k] = o;
        const fd = (up - dn) / (2 * h);
        expect(Math.abs(fd - r.grad[k]!), `${grad} param ${k}`).toBeLessThan(1e-6 * (1 + Math.abs(fd)));
      }
      f.dispose();
    }
  });

  it('sample → logProb: running the flow backward recovers z within 1e-6 and the same log-density', () => {
    for (const [name, f] of [...flows(1e-10), ['f32 mlp', new CNF({ dim: 2, hidden: [8], dtype: 'float32', seed: 5, rtol: 1e-6, atol: 1e-6 })] as [string, CNF]]) {
      const f32 = f.dtype === 'float32';
      const s = f.sampleWithLogProb(50, 11);
      // sample() solves z alone (no trace column), so its steps differ slightly: same points to the tolerance
      const plain = f.sample(50, 11);
      for (let i = 0; i < plain.length; i++) expect(Math.abs(plain[i]! - s.x[i]!), name).toBeLessThan(1e-3);
      const back = f.encode(s.x);
      for (let i = 0; i < s.z.length; i++) expect(Math.abs(back.z[i]! - s.z[i]!), name).toBeLessThan(f32 ? 1e-3 : 1e-6);
      for (let r = 0; r < 50; r++) expect(Math.abs(back.logProb[r]! - s.logProb[r]!), name).toBeLessThan(f32 ? 1e-3 : 1e-6);
      // base draws are keyed by (seed, sample index) on the sample stream
      expect(Array.from(s.z)).toEqual(Array.from(random('normal', 100, { seed: 11, stream: 3 * 2 ** 48 })));
      f.dispose();
    }
  });
});

describe('CNF training', () => {
  it('a briefly trained 2-D flow is normalised: ∫ exp(logProb) over a grid ≈ 1 ± 0.01, and its NLL improved', async () => {
    const f = new CNF({ dim: 2, hidden: [16, 16], seed: 2 });
    const x = twoMoons(512, 1);
    const before = -f.logProb(x).reduce((s, v) => s + v, 0) / 512;
    const seen: number[] = [];
    const h = await f.fit(x, { iterations: 40, batchSize: 128, lr: 1e-2, seed: 3, onProgress: (p) => seen.push(p.nll as number) });
    expect(h.loss.length).toBe(40);
    expect(seen.length).toBe(40);
    const after = -f.logProb(x).reduce((s, v) => s + v, 0) / 512;
    expect(after).toBeLessThan(before - 0.3);
    // midpoint rule on [−8, 8]² (the base N(0, I) and the data live well inside)
    const m = 160, lo = -8, step = 16 / m;
    const grid = new Float64Array(2 * m * m);
    for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) { grid[2 * (i * m + j)] = lo + (i + 0.5) * step; grid[2 * (i * m + j) + 1] = lo + (j + 0.5) * step; }
    const lp = f.logProb(grid);
    let mass = 0;
    for (const v of lp) mass += Math.exp(v) * step * step;
    expect(Math.abs(mass - 1)).toBeLessThan(0.01);
    f.dispose();
  });

  it('a shard is a pure function of (model JSON, params, payload): a rebuilt instance gives identical bits', () => {
    const f = new CNF({ dim: 2, hidden: [8], trace: 'hutchinson', regularize: { kinetic: 0.01, jacobian: 0.01 }, seed: 6 });
    const payload = { x: twoMoons(64, 2), seed: 5, iteration: 3, firstRow: 64, weight: 0.5 };
    const k = shardKernel('cnf-mle');
    const a = k.run(f, payload);
    const g = k.build(f.toJSON()) as CNF;
    const b = k.run(g, payload);
    expect(Buffer.from(b.grad.buffer).equals(Buffer.from(a.grad.buffer))).toBe(true);
    expect(b.loss).toBe(a.loss);
    expect(a.extra!.kinetic).toBeGreaterThan(0);
    expect(a.extra!.jacobian).toBeGreaterThan(0);
    // the probe depends on (seed, iteration, sample index)
    expect(k.run(f, { ...payload, iteration: 4 }).loss).not.toBe(a.loss);
    const kl = shardKernel('cnf-kl');
    const c = kl.run(f, { target: 'ring', rows: 32, seed: 1, iteration: 0, firstRow: 0, weight: 1 });
    const d = kl.run(g, { target: 'ring', rows: 32, seed: 1, iteration: 0, firstRow: 0, weight: 1 });
    expect(Buffer.from(d.grad.buffer).equals(Buffer.from(c.grad.buffer))).toBe(true);
    f.dispose(); g.dispose();
  });

  it('fitDensity lowers the reverse KL to a named target and to a JavaScript log-density (central differences)', async () => {
    const f = new CNF({ dim: 2, hidden: [16], seed: 1 });
    const h = await f.fitDensity('wave', { iterations: 30, batchSize: 128, lr: 1e-2 });
    const early = (h.loss[0]! + h.loss[1]! + h.loss[2]!) / 3, late = (h.loss[27]! + h.loss[28]! + h.loss[29]!) / 3;
    expect(late).toBeLessThan(early);
    // the same target written in JavaScript (U2 of Rezende & Mohamed with the (z1/4)⁸ envelope):
    // same losses up to the finite differences
    const g = new CNF({ dim: 2, hidden: [16], seed: 1 });
    const wave = (x: Float64Array) => Float64Array.from({ length: x.length / 2 }, (_, r) => -0.5 * ((x[2 * r + 1]! - Math.sin((Math.PI * x[2 * r]!) / 2)) / 0.4) ** 2 - (x[2 * r]! / 4) ** 8);
    const h2 = await g.fitDensity(wave, { iterations: 3, batchSize: 128, lr: 1e-2 });
    for (let i = 0; i < 3; i++) expect(Math.abs(h2.loss[i]! - h.loss[i]!)).toBeLessThan(1e-4 * (1 + Math.abs(h.loss[i]!)));
    f.dispose(); g.dispose();
  });

  it('toJSON/fromJSON restores the flow exactly and rejects corrupted files', () => {
    const f = new CNF({ dim: 2, arch: 'planar', width: 4, hidden: [5], trace: 'hutchinson', seed: 9 });
    const j = f.toJSON();
    const g = CNF.fromJSON(JSON.parse(JSON.stringify(j)));
    expect(g.logProb([0.3, 0.4])).toEqual(f.logProb([0.3, 0.4]));
    expect(code(() => CNF.fromJSON({ ...j, checksum: '00000000' }))).toBe('INVALID_ARGUMENT:json.checksum');
    expect(code(() => CNF.fromJSON({ ...j, version: 99 }))).toBe('INVALID_ARGUMENT:json.version');
    expect(code(() => CNF.fromJSON({ ...j, params: j.params.slice(1) }))).toBe('INVALID_ARGUMENT:json.params');
    f.dispose(); g.dispose();
  });

  it('bad input throws NeurodeError naming the argument', async () => {
    expect(code(() => new CNF({ dim: 0, hidden: [4] }))).toBe('INVALID_ARGUMENT:dim');
    expect(code(() => new CNF({ dim: 2, hidden: [4, 0] }))).toBe('INVALID_ARGUMENT:hidden[1]');
    expect(code(() => new CNF({ dim: 2, hidden: [4], trace: 'stochastic' as 'exact' }))).toBe('INVALID_ARGUMENT:trace');
    expect(code(() => new CNF({ dim: 2, hidden: [4], t1: -1 }))).toBe('INVALID_ARGUMENT:t1');
    expect(code(() => new CNF({ dim: 2, hidden: [4], arch: 'radial' as 'mlp' }))).toBe('INVALID_ARGUMENT:arch');
    expect(code(() => new CNF({ dim: 2, layers: [nn.linear(2, 3)] }))).toBe('INVALID_ARGUMENT:layers');
    expect(code(() => new CNF(undefined as never))).toBe('INVALID_ARGUMENT:options');
    const f = new CNF({ dim: 2, hidden: [4] });
    expect(code(() => f.logProb([1, 2, 3]))).toBe('INVALID_ARGUMENT:x');
    expect(code(() => f.logProb([1, NaN]))).toBe('INVALID_ARGUMENT:x');
    expect(code(() => f.sample(0))).toBe('INVALID_ARGUMENT:n');
    expect(code(() => f.sample(3, -1))).toBe('INVALID_ARGUMENT:seed');
    expect(code(() => f.field(0, [1, 2, 3, 4]))).toBe('INVALID_ARGUMENT:y');
    expect(code(() => f.trajectory(2, [0, 0.5, 0.5]))).toBe('INVALID_ARGUMENT:ts');
    await expect(f.fit([1, 2, 3], { iterations: 1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'x' });
    await expect(f.fitDensity('banana' as 'ring', { iterations: 1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'logDensity' });
    await expect(f.fitDensity(() => new Float64Array(1), { iterations: 1, batchSize: 4 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'logDensity' });
    await expect(f.fitDensity(() => Float64Array.of(NaN, 0, 0, 0), { iterations: 1, batchSize: 4 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(f.fitDensity((x) => new Float64Array(x.length / 2), { iterations: 1, pool: {} })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'pool' });
    await expect(f.fit(twoMoons(8), { iterations: 1, lr: -1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'lr' });
    expect(code(() => targetLogDensity('nope' as 'ring', [0, 0]))).toBe('INVALID_ARGUMENT:target');
    f.dispose();
    expect(code(() => f.logProb([0, 0]))).toBe('DISPOSED:');
    expect(code(() => datasets.twoMoons(0))).toBe('INVALID_ARGUMENT:n');
    expect(code(() => datasets.pinwheel(4, 1.5))).toBe('INVALID_ARGUMENT:seed');
  });
});

describe('2-D toy data sets', () => {
  const names = ['twoCircles', 'twoMoons', 'pinwheel', 'eightGaussians', 'checkerboard'] as const;
  it('same seed → same bits; a longer draw extends a shorter one; another seed differs', () => {
    for (const n of names) {
      const a = datasets[n](300, 4), b = datasets[n](300, 4), c = datasets[n](100, 4), d = datasets[n](300, 5);
      expect(a.length).toBe(600);
      expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
      expect(Array.from(a.subarray(0, 200))).toEqual(Array.from(c));
      expect(Array.from(a)).not.toEqual(Array.from(d));
      expect(a.every(Number.isFinite)).toBe(true);
    }
  });

  it('have their documented shapes', () => {
    const n = 4000;
    const radius = (x: Float64Array, i: number) => Math.hypot(x[2 * i]!, x[2 * i + 1]!);
    const circles = datasets.twoCircles(n, 1);
    // alternate rows on radius 3 and 1.5 (noise 0.24)
    let outer = 0, inner = 0;
    for (let i = 0; i < n; i += 2) { outer += radius(circles, i) / (n / 2); inner += radius(circles, i + 1) / (n / 2); }
    expect(Math.abs(outer - 3)).toBeLessThan(0.05);
    expect(Math.abs(inner - 1.5)).toBeLessThan(0.05);
    const eight = datasets.eightGaussians(n, 1);
    let r8 = 0;
    for (let i = 0; i < n; i++) r8 += radius(eight, i) / n;
    expect(Math.abs(r8 - 4 / 1.414)).toBeLessThan(0.1);
    const cb = datasets.checkerboard(n, 1);
    for (let i = 0; i < n; i++) {
      const [x, y] = [cb[2 * i]! / 2, cb[2 * i + 1]! / 2];
      expect(Math.abs(x)).toBeLessThanOrEqual(2);
      expect((((Math.floor(x) + Math.floor(y)) % 2) + 2) % 2).toBe(0);
    }
  });

  it('the Gaussian baseline gives the held-out NLL of a known Gaussian', () => {
    // x = L z + μ with z ~ N(0, I): expected NLL = ½(d + d·log 2π + log det Σ), Σ = L Lᵀ
    const n = 20000;
    const z = random('normal', 2 * n, { seed: 1, stream: 5 });
    const L = [[1.5, 0], [0.8, 0.5]], mu = [1, -2];
    const x = new Float64Array(2 * n);
    for (let i = 0; i < n; i++) {
      x[2 * i] = mu[0]! + L[0]![0]! * z[2 * i]!;
      x[2 * i + 1] = mu[1]! + L[1]![0]! * z[2 * i]! + L[1]![1]! * z[2 * i + 1]!;
    }
    const logdet = 2 * Math.log(L[0]![0]! * L[1]![1]!);
    const want = 0.5 * (2 + 2 * Math.log(2 * Math.PI) + logdet);
    const got = gaussianBaselineNll(x.subarray(0, n), x.subarray(n));
    // sd of a mean of n/2 log-densities of a 2-D Gaussian: sqrt(d/2 / (n/2)) = 0.01
    expect(Math.abs(got - want)).toBeLessThan(0.05);
    expect(code(() => gaussianBaselineNll([1, 2], [1, 2]))).toBe('INVALID_ARGUMENT:data');
  });
});
