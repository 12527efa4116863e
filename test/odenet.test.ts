import { beforeAll, describe, expect, it } from 'vitest';
import { init, mnist, ODENetClassifier, NeurodeError, type MnistData } from '../ts/index.js';

let data: MnistData;
beforeAll(async () => {
  await init();
  data = await mnist();
});

const rows = (x: Float32Array, a: number, b: number) => x.subarray(a * 784, b * 784);

describe('ODENetClassifier', () => {
  it('parameter counts of the paper-style models match the PyTorch peers (MODELS_PEER.md)', () => {
    const counts: Record<string, number> = {};
    for (const arch of ['conv', 'resnet', 'mlp-baseline'] as const) {
      const m = new ODENetClassifier({ inputShape: [1, 28, 28], classes: 10, arch });
      counts[arch] = m.numParams;
      expect(m.params.length).toBe(m.numParams);
      m.dispose();
    }
    expect(counts).toEqual({ conv: 208266, resnet: 576778, 'mlp-baseline': 238510 });
  });

  it('predict/evaluate shapes, consistency, and toJSON round trip (same bits)', () => {
    const m = new ODENetClassifier({ inputShape: [1, 28, 28], classes: 10, arch: 'conv', width: 8, seed: 4 });
    const x = rows(data.test.x, 0, 20), y = data.test.y.subarray(0, 20);
    const p = m.predict(x);
    expect(p).toBeInstanceOf(Int32Array);
    expect(p.length).toBe(20);
    expect(p.every((v) => v >= 0 && v < 10)).toBe(true);
    const ev = m.evaluate(x, y);
    expect(ev.accuracy).toBeCloseTo(p.filter((v, i) => v === y[i]).length / 20, 12);
    expect(ev.loss).toBeGreaterThan(0);
    expect(ev.nfe).toBeGreaterThan(0);
    const j = JSON.parse(JSON.stringify(m.toJSON()));
    const m2 = ODENetClassifier.fromJSON(j);
    expect(m2.digest()).toBe(m.digest());
    expect(Array.from(m2.predict(x))).toEqual(Array.from(p));
    expect(m2.evaluate(x, y)).toEqual(ev);
    j.params[3] += 1;
    expect(() => ODENetClassifier.fromJSON(j)).toThrow(/checksum/);
    expect(() => ODENetClassifier.fromJSON({ ...j, version: 99 })).toThrow(/version/);
    m.dispose();
    m2.dispose();
    expect(() => m.predict(x)).toThrow(NeurodeError);
  });

  it('lossGrad: gradient matches finite differences of the loss (float64, fixed rk4 steps)', () => {
    const m = new ODENetClassifier({ inputShape: [1, 28, 28], classes: 10, arch: 'conv', width: 4, method: 'rk4', stepSize: 0.5, grad: 'backprop', dtype: 'float64', seed: 1 });
    const x = rows(data.train.x, 0, 3), y = data.train.y.subarray(0, 3);
    const g = m.lossGrad(x, y);
    expect(g.grad.length).toBe(m.numParams);
    const p = m.params;
    for (const i of [0, 17, 100, 400, 700, m.numParams - 1]) {
      const v = p[i]!;
      p[i] = v + 1e-6;
      const lp = m.lossGrad(x, y).loss;
      p[i] = v - 1e-6;
      const lm = m.lossGrad(x, y).loss;
      p[i] = v;
      expect(Math.abs((lp - lm) / 2e-6 - g.grad[i]!)).toBeLessThan(1e-6 * (1 + Math.abs(g.grad[i]!)));
    }
    m.dispose();
  });

  it('a tiny training run reduces the loss and is reproducible bit for bit', async () => {
    const run = async () => {
      const m = new ODENetClassifier({ inputShape: [1, 28, 28], classes: 10, arch: 'conv', width: 8, seed: 2 });
      const x = rows(data.train.x, 0, 64), y = data.train.y.subarray(0, 64);
      const before = m.evaluate(x, y).loss;
      const seen: number[] = [];
      const h = await m.fit(x, y, { epochs: 8, batchSize: 32, shardSize: 16, optimizer: 'adam', lr: 1e-2, lrSchedule: { milestones: [6] }, onProgress: (p) => seen.push(p.nfeForward) });
      const after = m.evaluate(x, y).loss;
      const d = m.digest();
      m.dispose();
      return { before, after, h, seen, d };
    };
    const a = await run();
    expect(a.h.loss.length).toBe(16);
    expect(a.seen.length).toBe(16);
    expect(a.h.nfeForward.every((v) => v > 0)).toBe(true);
    expect(a.h.extra?.lr?.[0]).toBe(1e-2);
    expect(a.h.extra?.lr?.[15]).toBeCloseTo(1e-3, 15);
    expect(a.after, `loss ${a.before} → ${a.after}`).toBeLessThan(0.7 * a.before);
    const b = await run();
    expect(b.d).toBe(a.d);
    expect(b.h.loss).toEqual(a.h.loss);
  });

  it('every architecture trains a step; memory: adjoint stores O(1), backprop O(steps)', () => {
    const x = rows(data.train.x, 0, 8), y = data.train.y.subarray(0, 8);
    const depth: Record<string, number> = {};
    for (const [name, o] of [
      ['ode', { arch: 'conv', grad: 'adjoint' }], ['rk', { arch: 'conv', grad: 'backprop' }],
      ['resnet', { arch: 'resnet', blocks: 2 }], ['mlp', { arch: 'mlp', width: 32 }], ['dense', { arch: 'mlp-baseline', width: 50 }],
    ] as const) {
      const m = new ODENetClassifier({ inputShape: [1, 28, 28], classes: 10, width: 8, ...o });
      const s = m.lossGrad(x, y);
      expect(Number.isFinite(s.loss)).toBe(true);
      expect(s.memoryBytes).toBeGreaterThan(0);
      depth[name] = s.depthBytes;
      if (name === 'ode') expect(s.depthBytes).toBe(2 * 8 * 6 * 6 * 8 * 4); // z(0), z(1) in f32
      if (name === 'rk') expect(s.depthBytes).toBeGreaterThan(s.steps * 7 * 8 * 6 * 6 * 8 * 4); // every step's state + 6 stages
      m.dispose();
    }
    expect(depth.mlp).toBeGreaterThan(0);
    expect(depth.dense).toBe(0);
  });

  it('invalid arguments throw NeurodeError naming them', () => {
    expect(() => new ODENetClassifier({ inputShape: [784], classes: 10, arch: 'conv' })).toThrow(/inputShape/);
    expect(() => new ODENetClassifier({ inputShape: [1, 28, 28], classes: 1 })).toThrow(/classes/);
    expect(() => new ODENetClassifier({ inputShape: [1, 28, 28], classes: 10, arch: 'nope' as never })).toThrow(/arch/);
    expect(() => new ODENetClassifier({ inputShape: [1, 28, 28], classes: 10, method: 'rk4' })).toThrow(/stepSize/);
    const m = new ODENetClassifier({ inputShape: [1, 28, 28], classes: 10, arch: 'mlp-baseline', width: 10 });
    expect(() => m.predict(new Float32Array(100))).toThrow(/x/);
    expect(() => m.evaluate(rows(data.test.x, 0, 2), new Uint8Array([1, 10]))).toThrow(/y/);
    expect(() => m.lossGrad(rows(data.test.x, 0, 2), new Uint8Array([1]))).toThrow(/y/);
    const bad = rows(data.test.x, 0, 2).slice();
    bad[5] = NaN;
    expect(() => m.predict(bad)).toThrow(NeurodeError);
    m.dispose();
  });
});
