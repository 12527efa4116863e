import { beforeAll, describe, expect, it } from 'vitest';
import { init, odeintWithGrad, NeurodeError, type VjpPair } from '../ts/index.js';
import { expmTimes, linspace } from './helpers.js';

beforeAll(async () => {
  await init();
});

const A = [[-0.2, 1.3, 0.1], [-1.1, -0.3, 0.4], [0.2, -0.5, -0.1]];
const AT = A.map((_, i) => A.map((r) => r[i]!));
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!; return s; };
const matvec = (M: number[][], v: ArrayLike<number>) => M.map((r) => dot(r, v));

/** y' = A y as a JavaScript { f, vjp } pair (θ = A, row-major). */
const linear: VjpPair = {
  numParams: 9,
  f: (_t, y, dy) => { dy.set(matvec(A, y)); },
  vjp: (_t, y, a, outY, outP) => {
    outY.set(matvec(AT, a));
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) outP[3 * i + j] = a[i]! * y[j]!;
  },
};

describe('gradients of a linear field against the matrix exponential', () => {
  const y0 = [1, -0.5, 0.25];
  const ts = [0.3, 0.9, 1.6, 2.2];
  const w = Array.from({ length: 12 }, (_, i) => Math.sin(1.7 * i + 0.3));
  // exact: y(t) = e^{A(t−t0)} y0, L = Σ w_i·y(t_i)
  const exactY0 = ts.reduce((acc, t, i) => {
    const g = expmTimes(AT.map((r) => r.map((a) => a * (t - ts[0]!))), w.slice(3 * i, 3 * i + 3));
    return acc.map((v, k) => v + g[k]!);
  }, [0, 0, 0]);
  const yAt = (t: number) => expmTimes(A.map((r) => r.map((a) => a * (t - ts[0]!))), y0);
  // dL/dt_i = w_i·A y(t_i) for i ≥ 1; dL/dt0 = −Σ_i w_i·e^{A(t_i−t0)} A y0
  const exactTs = ts.map((t, i) => (i === 0 ? 0 : dot(w.slice(3 * i, 3 * i + 3), matvec(A, yAt(t)))));
  exactTs[0] = -ts.slice(1).reduce((acc, t, i) => acc + dot(w.slice(3 * (i + 1), 3 * (i + 2)), expmTimes(A.map((r) => r.map((a) => a * (t - ts[0]!))), matvec(A, y0))), 0);

  for (const grad of ['adjoint', 'backprop', 'checkpoint'] as const) {
    it(`${grad}: dL/dy0 and dL/dts equal the closed form`, () => {
      const sol = odeintWithGrad(linear, y0, ts, { grad, rtol: 1e-11, atol: 1e-12 });
      const g = sol.backward(w);
      for (let k = 0; k < 3; k++) expect(Math.abs(g.y0[k]! - exactY0[k]!)).toBeLessThan(1e-8);
      for (let i = 0; i < ts.length; i++) expect(Math.abs(g.ts[i]! - exactTs[i]!)).toBeLessThan(1e-7);
      expect(g.params).toHaveLength(9);
      expect(g.stats.nfe).toBeGreaterThan(0);
    });
  }

  it('all three modes agree on dL/dθ, and match finite differences', () => {
    const res = (['adjoint', 'backprop', 'checkpoint'] as const).map((grad) => odeintWithGrad(linear, y0, ts, { grad, rtol: 1e-10, atol: 1e-12 }).backward(w).params);
    for (let k = 0; k < 9; k++) {
      expect(Math.abs(res[0]![k]! - res[1]![k]!)).toBeLessThan(1e-6);
      expect(res[1]![k]).toBe(res[2]![k]); // checkpoint recomputes the same stages: same bits
    }
    // finite differences on A[1][2]
    const L = (delta: number) => {
      const B = A.map((r) => r.slice());
      B[1]![2]! += delta;
      const sol = odeintWithGrad({ f: (_t, y, dy) => { dy.set(matvec(B, y)); }, vjp: () => {} }, y0, ts, { grad: 'adjoint', rtol: 1e-12, atol: 1e-13 });
      sol.dispose();
      return dot(sol.ys, w);
    };
    const fd = (L(1e-6) - L(-1e-6)) / 2e-6;
    expect(Math.abs(res[1]![5]! - fd)).toBeLessThan(1e-6);
  });

  it('backward in time', () => {
    const rts = [...ts].reverse();
    const rw = w.slice();
    const a = odeintWithGrad(linear, y0, rts, { grad: 'adjoint', rtol: 1e-11, atol: 1e-12 }).backward(rw);
    const b = odeintWithGrad(linear, y0, rts, { grad: 'backprop', rtol: 1e-11, atol: 1e-12 }).backward(rw);
    for (let k = 0; k < 3; k++) expect(Math.abs(a.y0[k]! - b.y0[k]!)).toBeLessThan(1e-7);
    for (let k = 0; k < 4; k++) expect(Math.abs(a.ts[k]! - b.ts[k]!)).toBeLessThan(1e-6);
  });

  it('adjoint memory does not grow with steps; backprop grows with steps × stages, checkpoint with steps', () => {
    const bytes = (grad: 'adjoint' | 'backprop' | 'checkpoint', tol: number) => {
      const s = odeintWithGrad(linear, y0, linspace(0, 20, 5), { grad, rtol: tol, atol: tol });
      const r = { bytes: s.storedBytes, steps: s.stats.steps };
      s.dispose();
      return r;
    };
    const a1 = bytes('adjoint', 1e-5), a2 = bytes('adjoint', 1e-10);
    expect(a2.steps).toBeGreaterThan(3 * a1.steps);
    expect(a2.bytes).toBe(a1.bytes);
    const b = bytes('backprop', 1e-10), c = bytes('checkpoint', 1e-10);
    const outputs = 5 * 3 * 8;
    expect(c.bytes - outputs).toBe(c.steps * 3 * 8);
    expect(b.bytes - outputs).toBe(b.steps * 3 * 8 * 8); // y0 + 7 dopri5 stages per step
  });

  it('bad input: wrong dLdys length, second backward, unknown grad mode', () => {
    const sol = odeintWithGrad(linear, y0, ts, { grad: 'backprop' });
    expect(() => sol.backward([1, 2])).toThrow(NeurodeError);
    sol.backward(w);
    expect(() => sol.backward(w)).toThrowError(/disposed/);
    expect(() => odeintWithGrad(linear, y0, ts, { grad: 'magic' as 'adjoint' })).toThrow(NeurodeError);
    const thrower = { f: linear.f, vjp: () => { throw new Error('vjp boom'); } };
    expect(() => odeintWithGrad(thrower, y0, ts, { grad: 'adjoint' }).backward(w)).toThrowError('vjp boom');
  });
});
