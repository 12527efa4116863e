import { beforeAll, describe, expect, it } from 'vitest';
import { init, LatentODE, RNNBaseline, spirals, datasets, NeurodeError } from '../ts/index.js';

beforeAll(async () => { await init(); });

// 3 rows × 5 slots of 2-D data, irregular times per row, missing values
const data = {
  batch: 3,
  times: Float64Array.of(0.1, 0.3, 0.35, 0.8, 1.2, 0.0, 0.2, 0.5, 0.9, 1.0, 0.15, 0.3, 0.7, 0.75, 1.4),
  values: Float64Array.from({ length: 30 }, (_, i) => Math.sin(1.7 * i) * 0.8),
  mask: Uint8Array.of(1, 1, 0, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1),
};
const tiny = { obsDim: 2, latentDim: 2, hidden: 5, rnnHidden: 3, obsStd: 0.5, seed: 3, method: 'rk4' as const, stepSize: 0.05 };

function code(f: () => unknown): string {
  try { f(); } catch (e) { expect(e).toBeInstanceOf(NeurodeError); return (e as NeurodeError).code + ':' + ((e as NeurodeError).argument ?? ''); }
  throw new Error('did not throw');
}

describe('LatentODE', () => {
  for (const encoder of ['rnn', 'odernn'] as const) {
    it(`ELBO gradient matches central finite differences (f64, ${encoder} encoder${encoder === 'rnn' ? ', Poisson term' : ''})`, () => {
      const m = new LatentODE({ ...tiny, encoder, poisson: encoder === 'rnn' });
      const r = m.elbo(data, { seed: 5, iteration: 2 });
      expect(r.loss).toBeCloseTo(r.recon + r.kl + r.poisson, 10);
      expect(r.kl).toBeGreaterThan(0);
      const p = m.params;
      const h = 1e-6;
      let worst = 0;
      for (let i = 0; i < m.numParams; i += 3) {
        const o = p[i]!;
        p[i] = o + h; const up = m.elbo(data, { seed: 5, iteration: 2 }).loss;
        p[i] = o - h; const dn = m.elbo(data, { seed: 5, iteration: 2 }).loss;
        p[i] = o;
        worst = Math.max(worst, Math.abs((up - dn) / (2 * h) - r.grad[i]!) / (1 + Math.abs(r.grad[i]!)));
      }
      expect(worst).toBeLessThan(1e-7);
      // ε is keyed by (seed, iteration, row): same key same loss, new iteration new draw
      expect(m.elbo(data, { seed: 5, iteration: 2 }).loss).toBe(r.loss);
      expect(m.elbo(data, { seed: 5, iteration: 3 }).loss).not.toBe(r.loss);
      m.dispose();
    });
  }

  it('predict: shape batch × ts × obsDim, masks per row, posterior mean vs averaged draws', () => {
    const m = new LatentODE({ obsDim: 2, latentDim: 3, hidden: 8, rnnHidden: 6, seed: 1 });
    const ts = [0, 0.5, 1, 2, 4];
    const mean = m.predict(data, ts, { samples: 0 });
    expect(mean).toBeInstanceOf(Float64Array);
    expect(mean.length).toBe(3 * 5 * 2);
    const avg = m.predict(data, ts, { samples: 200, seed: 1 });
    const one = m.predict(data, ts, { samples: 1, seed: 1 });
    const dist = (a: Float64Array, b: Float64Array) => Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
    expect(dist(avg, mean)).toBeLessThan(dist(one, mean));
    expect(m.predict(data, ts, { samples: 3, seed: 9 })).toEqual(m.predict(data, ts, { samples: 3, seed: 9 }));
    // a row predicted alone gives the same numbers (rows do not interact)
    const row1 = m.predict({ times: data.times.slice(5, 10), values: data.values.slice(10, 20), mask: data.mask.slice(5, 10), batch: 1 }, ts, { samples: 0 });
    expect(dist(row1, mean.slice(10, 20))).toBeLessThan(1e-6);
    // an unobserved slot's value does not matter
    const v2 = data.values.slice(); v2[4] = 123; v2[5] = -7;
    expect(m.predict({ ...data, values: v2 }, ts, { samples: 0 })).toEqual(mean);
    // shared times (T) are accepted for every row
    const shared = m.predict({ times: [0, 1, 2], values: new Float64Array(12).fill(0.5) }, [3], { samples: 0 });
    expect(shared.length).toBe(2 * 1 * 2);
    m.dispose();
  });

  it('toJSON/fromJSON round trip gives identical predictions; corrupted or foreign input is rejected', () => {
    const m = new LatentODE({ obsDim: 2, latentDim: 2, hidden: 6, rnnHidden: 4, encoder: 'odernn', seed: 2, dtype: 'float32', rtol: 1e-5, atol: 1e-6 });
    const json = JSON.parse(JSON.stringify(m.toJSON()));
    const back = LatentODE.fromJSON(json);
    expect(back.config).toEqual(m.config);
    expect(back.digest()).toBe(m.digest());
    expect(back.predict(data, [0.5, 2], { samples: 2, seed: 4 })).toEqual(m.predict(data, [0.5, 2], { samples: 2, seed: 4 }));
    const bad = JSON.parse(JSON.stringify(json)); bad.params[3] += 0.001;
    expect(code(() => LatentODE.fromJSON(bad))).toBe('INVALID_ARGUMENT:json.checksum');
    expect(code(() => LatentODE.fromJSON({ ...json, params: json.params.slice(1) }))).toBe('INVALID_ARGUMENT:json.params');
    expect(code(() => LatentODE.fromJSON({ ...json, version: 99 }))).toBe('INVALID_ARGUMENT:json.version');
    expect(code(() => LatentODE.fromJSON({ ...json, format: 'neurode.field' }))).toBe('INVALID_ARGUMENT:json.format');
    m.dispose(); back.dispose();
    expect(code(() => m.predict(data, [1]))).toBe('DISPOSED:');
  });

  it('rejects bad input with named arguments', () => {
    expect(code(() => new LatentODE({ ...tiny, obsDim: 0 }))).toBe('INVALID_ARGUMENT:obsDim');
    expect(code(() => new LatentODE({ ...tiny, encoder: 'lstm' as never }))).toBe('INVALID_ARGUMENT:encoder');
    expect(code(() => new LatentODE({ ...tiny, obsStd: -1 }))).toBe('INVALID_ARGUMENT:obsStd');
    expect(code(() => new LatentODE({ ...tiny, method: 'rk4', stepSize: undefined }))).toBe('INVALID_ARGUMENT:stepSize');
    const m = new LatentODE(tiny);
    expect(code(() => m.predict({ ...data, values: data.values.slice(1) }, [1]))).toBe('INVALID_ARGUMENT:data.values');
    expect(code(() => m.predict({ ...data, mask: data.mask.slice(1) }, [1]))).toBe('INVALID_ARGUMENT:data.mask');
    const t = data.times.slice(); t[1] = 0.05;
    expect(code(() => m.predict({ ...data, times: t }, [1]))).toBe('INVALID_ARGUMENT:data.times');
    const nan = data.values.slice(); nan[0] = NaN;
    expect(code(() => m.predict({ ...data, values: nan }, [1]))).toBe('INVALID_ARGUMENT:data.values');
    expect(code(() => m.predict(data, [1, 0.5]))).toBe('INVALID_ARGUMENT:ts');
    expect(code(() => m.predict(data, [-1]))).toBe('INVALID_ARGUMENT:ts');
    expect(code(() => m.predict(data, [1], { samples: -1 }))).toBe('INVALID_ARGUMENT:samples');
    const early = new LatentODE({ ...tiny, t0: 0.12 });
    expect(code(() => early.elbo(data))).toBe('INVALID_ARGUMENT:data.times');
    early.dispose();
    m.dispose();
  });

  it('fit lowers the negative ELBO, deterministically, with minibatches, shards and encoder subsampling', async () => {
    const d = spirals({ n: 12, nsample: 20, ntotal: 100, seed: 4 });
    const run = async () => {
      const m = new LatentODE({ obsDim: 2, latentDim: 2, hidden: 8, rnnHidden: 6, seed: 1, rtol: 1e-5, atol: 1e-6 });
      const h = await m.fit(d.observed, { iterations: 25, batchSize: 8, shardSize: 3, lr: 0.02, seed: 2, subsample: { min: 5, max: 15 } });
      const digest = m.digest();
      m.dispose();
      return { h, digest };
    };
    const a = await run();
    const b = await run();
    expect(a.digest).toBe(b.digest);
    expect(a.h.loss).toEqual(b.h.loss);
    const first = a.h.loss.slice(0, 5).reduce((s, v) => s + v) / 5, last = a.h.loss.slice(-5).reduce((s, v) => s + v) / 5;
    expect(last).toBeLessThan(first);
    expect(a.h.nfeForward.every((v) => v > 0)).toBe(true);
    expect(a.h.extra?.kl?.length).toBe(25);
  });
});

describe('RNNBaseline', () => {
  it('gradient matches finite differences; predicts autoregressively; JSON round trip', async () => {
    const m = new RNNBaseline({ obsDim: 2, hidden: 4, seed: 3 });
    const r = m.loss(data);
    const p = m.params;
    let worst = 0;
    for (let i = 0; i < m.numParams; i += 2) {
      const o = p[i]!;
      p[i] = o + 1e-6; const up = m.loss(data).loss;
      p[i] = o - 1e-6; const dn = m.loss(data).loss;
      p[i] = o;
      worst = Math.max(worst, Math.abs((up - dn) / 2e-6 - r.grad[i]!) / (1 + Math.abs(r.grad[i]!)));
    }
    expect(worst).toBeLessThan(1e-7);
    const out = m.predict(data, [1.5, 2, 3]);
    expect(out.length).toBe(3 * 3 * 2);
    const back = RNNBaseline.fromJSON(JSON.parse(JSON.stringify(m.toJSON())));
    expect(back.predict(data, [1.5, 2, 3])).toEqual(out);
    const d = spirals({ n: 16, nsample: 20, ntotal: 100, seed: 1 });
    const h = await m.fit(d.observed, { iterations: 30, lr: 0.02 });
    expect(h.loss[29]!).toBeLessThan(h.loss[0]!);
    expect(code(() => new RNNBaseline({ obsDim: 2, hidden: 0 }))).toBe('INVALID_ARGUMENT:hidden');
    m.dispose(); back.dispose();
  });
  it('subsample: trains on random subsets of each row (a 2-point subset is one of the row\'s pairs)', async () => {
    const m = new RNNBaseline({ obsDim: 2, hidden: 4, seed: 3 });
    const T = 5;
    const series = (row: number, mask: Uint8Array) => ({ batch: 1, times: data.times.slice(row * T, row * T + T), values: data.values.slice(row * T * 2, row * T * 2 + T * 2), mask });
    const pack = (d: ReturnType<typeof series>) => ({ batch: 1, slots: T, times: d.times, values: d.values, mask: d.mask });
    for (const row of [0, 1]) {
      const own = data.mask.slice(row * T, row * T + T);
      const used = [...own.keys()].filter((k) => own[k]);
      // the dense loss of every pair of the row's observations
      const pairs = new Set<number>();
      for (let a = 0; a < used.length; a++) for (let b = a + 1; b < used.length; b++) {
        const mk = new Uint8Array(T); mk[used[a]!] = 1; mk[used[b]!] = 1;
        pairs.add(m.loss(series(row, mk)).loss);
      }
      const seen = new Set<number>();
      for (let it = 0; it < 12; it++) {
        const r = m.lossShard({ series: pack(series(row, own)), rows: Float64Array.of(row), seed: 4, iteration: it, subsample: { min: 2, max: 2 } });
        expect(pairs.has(r.loss)).toBe(true);
        seen.add(r.loss);
      }
      expect(seen.size).toBeGreaterThan(1); // the subset changes with the iteration
      // one point leaves no next-step pair; at least all points is the dense loss
      const one = m.lossShard({ series: pack(series(row, own)), rows: Float64Array.of(row), seed: 4, iteration: 0, subsample: { min: 1, max: 1 } });
      expect(one.loss).toBe(0);
      expect(one.grad.every((g) => g === 0)).toBe(true);
      const all = m.lossShard({ series: pack(series(row, own)), rows: Float64Array.of(row), seed: 4, iteration: 0, subsample: { min: 9, max: 9 } });
      expect(all.loss).toBe(m.loss(series(row, own)).loss);
    }
    const d = spirals({ n: 16, nsample: 20, ntotal: 100, seed: 1 });
    const fit = async (subsample?: { min: number; max: number }) => {
      const r = new RNNBaseline({ obsDim: 2, hidden: 4, seed: 3 });
      const h = await r.fit(d.observed, { iterations: 10, lr: 0.02, shardSize: 5, subsample });
      const out = { loss: h.loss, digest: r.digest() };
      r.dispose();
      return out;
    };
    const dense = await fit(), all = await fit({ min: 20, max: 20 }), sparse = await fit({ min: 5, max: 12 });
    expect(all).toEqual(dense);
    expect(sparse.digest).not.toBe(dense.digest);
    expect(await fit({ min: 5, max: 12 })).toEqual(sparse);
    await expect(m.fit(d.observed, { iterations: 1, subsample: { min: 3, max: 2 } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'subsample.max' });
    m.dispose();
  });
});

describe('datasets.spirals', () => {
  it('follows the closed form, is seeded, and validates options', () => {
    const d = datasets.spirals({ n: 20, nextra: 100, seed: 7 });
    expect(d.observed.times.length).toBe(20 * 100);
    expect(d.observed.values.length).toBe(20 * 100 * 2);
    expect(d.truth.times.length).toBe(200);
    expect(d.truth.values.length).toBe(20 * 200 * 2);
    const step = (6 * Math.PI) / 499;
    let err = 0, noise = 0;
    for (let i = 0; i < 20; i++) {
      expect(d.starts[i]).toBeGreaterThanOrEqual(100);
      expect(d.starts[i]).toBeLessThan(300);
      for (let k = 0; k < 200; k++) {
        const t = (d.starts[i]! + k) * step;
        const cw = d.clockwise[i] === 1;
        const th = cw ? 6 * Math.PI + 1 - t : t, r = cw ? 15 / th : 0.3 * th;
        const x = r * Math.cos(th) + (cw ? -5 : 5), y = r * Math.sin(th);
        err = Math.max(err, Math.abs(d.truth.values[(i * 200 + k) * 2]! - x), Math.abs(d.truth.values[(i * 200 + k) * 2 + 1]! - y));
        if (k < 100) noise += (d.observed.values[(i * 100 + k) * 2]! - x) ** 2;
      }
    }
    expect(err).toBeLessThan(1e-12);
    expect(Math.sqrt(noise / 2000)).toBeGreaterThan(0.08);
    expect(Math.sqrt(noise / 2000)).toBeLessThan(0.12);
    expect(spirals({ n: 20, nextra: 100, seed: 7 }).observed.values).toEqual(d.observed.values);
    expect(spirals({ n: 20, nextra: 100, seed: 8 }).observed.values).not.toEqual(d.observed.values);
    expect(code(() => spirals({ n: 0 }))).toBe('INVALID_ARGUMENT:n');
    expect(code(() => spirals({ ntotal: 150 }))).toBe('INVALID_ARGUMENT:ntotal');
    expect(code(() => spirals({ noise: -1 }))).toBe('INVALID_ARGUMENT:noise');
  });
});
