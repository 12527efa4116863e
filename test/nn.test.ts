import { beforeAll, describe, expect, it } from 'vitest';
import { init, nn, odeint, odeintWithGrad, NeurodeError, VectorField } from '../ts/index.js';
import { flat, loadReference, maxAbsDiff } from './helpers.js';

beforeAll(async () => {
  await init();
});

describe('nn fields', () => {
  it('nn.mlp with PyTorch layout: ode_demo field equals W2·tanh(W1·y³ + b1) + b2', () => {
    const f = nn.mlp({ dims: [2, 50, 2], activation: 'tanh', inputCube: true, seed: 3 });
    expect(f.dim).toBe(2);
    expect(f.numParams).toBe(252);
    const p = Array.from(f.params);
    const y = [0.7, -1.2, 0.1, 0.4];
    const out = f.eval(0, y);
    for (let r = 0; r < 2; r++) {
      const x0 = y[2 * r]! ** 3, x1 = y[2 * r + 1]! ** 3;
      const o = [p[250]!, p[251]!];
      for (let j = 0; j < 50; j++) {
        const h = Math.tanh(p[2 * j]! * x0 + p[2 * j + 1]! * x1 + p[100 + j]!);
        o[0]! += p[150 + j]! * h;
        o[1]! += p[200 + j]! * h;
      }
      expect(Math.abs(out[2 * r]! - o[0]!)).toBeLessThan(1e-13);
      expect(Math.abs(out[2 * r + 1]! - o[1]!)).toBeLessThan(1e-13);
    }
    f.dispose();
  });

  it('initialisation is a pure function of the seed (PyTorch bounds ±1/√fan_in)', () => {
    const a = nn.mlp({ dims: [3, 16, 3], seed: 42 });
    const b = nn.mlp({ dims: [3, 16, 3], seed: 42 });
    const c = nn.mlp({ dims: [3, 16, 3], seed: 43 });
    expect(a.digest()).toBe(b.digest());
    expect(a.digest()).not.toBe(c.digest());
    expect(Math.max(...Array.from(a.params.subarray(0, 48)).map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(3));
    [a, b, c].forEach((f) => f.dispose());
  });

  it('VJP of every layer kind against central finite differences (input, params, t)', () => {
    const cases: Array<[string, VectorField]> = [
      ['concat tanh', nn.mlp({ dims: [3, 8, 3], time: 'concat', activation: 'tanh', seed: 1 })],
      ['concatsquash softplus', nn.mlp({ dims: [3, 8, 3], time: 'concatsquash', activation: 'softplus', seed: 2 })],
      ['linear elu + cube', nn.mlp({ dims: [3, 8, 3], activation: 'elu', inputCube: true, seed: 3 })],
      ['sequential sigmoid/relu', nn.sequential([nn.linear(3, 6), nn.sigmoid(), nn.concatLinear(6, 6), nn.relu(), nn.linear(6, 3)], { seed: 4 })],
    ];
    const y = [0.3, -0.7, 1.1, -0.2, 0.5, 0.9];
    const a = [0.4, 1.3, -0.6, 0.2, -1.0, 0.7];
    const t = 0.37;
    const L = (f: VectorField, tt: number, yy: number[]) => f.eval(tt, yy).reduce((s, v, i) => s + v * a[i]!, 0);
    for (const [name, f] of cases) {
      const g = f.vjp(t, y, a);
      const h = 1e-6;
      for (let i = 0; i < y.length; i++) {
        const yp = y.slice(), ym = y.slice();
        yp[i]! += h; ym[i]! -= h;
        expect(Math.abs(g.y[i]! - (L(f, t, yp) - L(f, t, ym)) / (2 * h)), `${name} y[${i}]`).toBeLessThan(1e-7);
      }
      expect(Math.abs(g.t - (L(f, t + h, y) - L(f, t - h, y)) / (2 * h)), `${name} t`).toBeLessThan(1e-7);
      const params = f.params;
      for (const i of [0, 5, f.numParams >> 1, f.numParams - 1]) {
        const keep = params[i]!;
        params[i] = keep + h; const lp = L(f, t, y);
        params[i] = keep - h; const lm = L(f, t, y);
        params[i] = keep;
        expect(Math.abs(g.params[i]! - (lp - lm) / (2 * h)), `${name} θ[${i}]`).toBeLessThan(1e-7);
      }
      f.dispose();
    }
  });

  it('toJSON / nn.fromJSON round-trip exactly; corrupted files are rejected', () => {
    const f = nn.mlp({ dims: [2, 12, 2], time: 'concatsquash', seed: 9, dtype: 'float32' });
    const json = JSON.parse(JSON.stringify(f.toJSON()));
    const g = nn.fromJSON(json);
    expect(g.dtype).toBe('float32');
    expect(g.digest()).toBe(f.digest());
    expect(Array.from(g.eval(0.5, [1, 2]))).toEqual(Array.from(f.eval(0.5, [1, 2])));
    const bad = { ...json, params: json.params.slice() };
    bad.params[3] += 1e-3;
    expect(() => nn.fromJSON(bad)).toThrow(/checksum/);
    expect(() => nn.fromJSON({ ...json, version: 99 })).toThrow(NeurodeError);
    expect(() => nn.fromJSON({ ...json, params: json.params.slice(1) })).toThrow(/parameters/);
    expect(() => nn.fromJSON({ ...json, layers: [{ kind: 'linear', in: 2, out: 3 }] })).toThrow(NeurodeError);
    f.dispose(); g.dispose();
  });

  it('bad arguments and disposed fields', () => {
    expect(() => nn.mlp({ dims: [2, 5, 3] })).toThrow(/R\^d/);
    expect(() => nn.mlp({ dims: [2, 0, 2] })).toThrow(NeurodeError);
    expect(() => nn.mlp({ dims: [2, 5, 2], activation: 'swish' as 'tanh' })).toThrow(NeurodeError);
    const f = nn.mlp({ dims: [2, 5, 2] });
    expect(() => f.eval(0, [1, 2, 3])).toThrow(/multiple of dim/);
    f.dispose();
    expect(() => f.eval(0, [1, 2])).toThrow(expect.objectContaining({ code: 'DISPOSED' }));
    expect(() => odeint(f, [1, 2], [0, 1])).toThrow(expect.objectContaining({ code: 'DISPOSED' }));
  });
});

describe('ode_demo reference (torchdiffeq-trained weights)', () => {
  const ref = loadReference('ode_demo_mlp.json');
  const gref = loadReference('ode_demo_mlp_grad.json');
  const field = () => {
    const f = nn.mlp({ dims: [2, 50, 2], activation: 'tanh', inputCube: true });
    f.params.set(ref.params);
    return f;
  };

  it('trajectory at rtol 1e-12 within 1e-9 of torchdiffeq; default tolerances reproduce NFE 950', () => {
    const f = field();
    const tight = odeint(f, flat(ref.y0), ref.t, { rtol: 1e-12, atol: 1e-14 });
    expect(maxAbsDiff(tight.ys, flat(ref.ys))).toBeLessThan(1e-9);
    const dflt = odeint(f, flat(ref.y0), ref.t);
    expect(dflt.stats.nfe).toBe(ref.nfe_default_tol);
    expect(maxAbsDiff(dflt.ys, flat(ref.ys_default_tol))).toBeLessThan(1e-9);
    f.dispose();
  });

  for (const grad of ['adjoint', 'backprop', 'checkpoint'] as const) {
    it(`${grad}: dL/dy0, dL/dθ, dL/dt within 1e-6 relative of torchdiffeq`, () => {
      const f = field();
      const sol = odeintWithGrad(f, flat(gref.y0), gref.t, { grad, rtol: 1e-12, atol: 1e-14 });
      const g = sol.backward(flat(gref.w));
      const truth = gref[grad === 'adjoint' ? 'adjoint' : 'backprop'];
      const rel = (a: ArrayLike<number>, b: number[]) => maxAbsDiff(a, b) / Math.max(...b.map(Math.abs));
      expect(rel(g.y0, flat(truth.dL_dy0))).toBeLessThan(1e-6);
      expect(rel(g.params, flat(truth.dL_dparams))).toBeLessThan(1e-6);
      expect(rel(g.ts, flat(truth.dL_dt))).toBeLessThan(1e-6);
      f.dispose();
    });
  }
});
