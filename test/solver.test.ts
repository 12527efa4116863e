import { beforeAll, describe, expect, it } from 'vitest';
import { init, odeint, NeurodeError, ADAPTIVE_METHODS, type Rhs, type Method } from '../ts/index.js';
import { expmTimes, flat, lcg, linspace, loadReference, maxAbsDiff, maxRelError } from './helpers.js';

beforeAll(async () => {
  await init();
});

/** torchdiffeq's test problems (tests/problems.py), each with its exact solution. */
interface Problem { f: Rhs; exact: (t: number) => number[] }

function linearProblem(): Problem {
  const dim = 10;
  const rnd = lcg(7);
  const U = Array.from({ length: dim }, () => Array.from({ length: dim }, () => (rnd() - 0.5) * 0.35));
  const A = U.map((r, i) => r.map((u, j) => 2 * u - (u + U[j]![i]!))); // skew-symmetric
  const y1 = new Array(dim).fill(1);
  return {
    f: (_t, y, dy) => { for (let i = 0; i < dim; i++) { let s = 0; for (let j = 0; j < dim; j++) s += A[i]![j]! * y[j]!; dy[i] = s; } },
    // exact solution with y(1) = ones: y(t) = exp(A (t − 1))·1
    exact: (t) => expmTimes(A.map((r) => r.map((a) => a * (t - 1))), y1),
  };
}

const PROBLEMS: Record<string, () => Problem> = {
  constant: () => ({ f: (t, y, dy) => { dy[0] = 0.2 + (y[0]! - (0.2 * t + 3)) ** 5; }, exact: (t) => [0.2 * t + 3] }),
  sine: () => ({
    f: (t, y, dy) => { dy[0] = (2 * y[0]!) / t + t ** 4 * Math.sin(2 * t) - t ** 2 + 4 * t ** 3; },
    exact: (t) => [-0.5 * t ** 4 * Math.cos(2 * t) + 0.5 * t ** 3 * Math.sin(2 * t) + 0.25 * t ** 2 * Math.cos(2 * t) - t ** 3 + 2 * t ** 4 + (Math.PI - 0.25) * t ** 2],
  }),
  linear: linearProblem,
  exp: () => ({ f: (t, _y, dy) => { dy[0] = -0.1 * Math.exp(-0.1 * t); }, exact: (t) => [Math.exp(-0.1 * t)] }),
};

describe("torchdiffeq's problem set", () => {
  for (const reverse of [false, true]) {
    for (const dtype of ['float64', 'float32'] as const) {
      for (const method of ADAPTIVE_METHODS) {
        for (const [name, make] of Object.entries(PROBLEMS)) {
          it(`${method} ${name} ${dtype}${reverse ? ' reversed' : ''}`, () => {
            const p = make();
            let ts = linspace(1, 8, 10);
            if (reverse) ts = ts.reverse();
            const truth = ts.flatMap(p.exact);
            const opts = method === 'dopri8' ? (dtype === 'float64' ? { rtol: 1e-12, atol: 1e-14 } : { rtol: 1e-7, atol: 1e-7 }) : {};
            const sol = odeint(p.f, p.exact(ts[0]!), ts, { method, dtype, ...opts });
            expect(sol.ys).toBeInstanceOf(dtype === 'float32' ? Float32Array : Float64Array);
            const eps = method === 'bosh3' ? 4e-3 : name === 'linear' ? 2e-3 : name === 'exp' ? 5e-2 : 3e-4;
            expect(maxRelError(truth, sol.ys)).toBeLessThan(eps);
          });
        }
      }
    }
  }

  it('fixed-step methods solve the constant problem on the output grid', () => {
    const p = PROBLEMS.constant!();
    const ts = linspace(1, 8, 10);
    for (const method of ['euler', 'midpoint', 'heun', 'rk4'] as const) {
      const sol = odeint(p.f, p.exact(1), ts, { method, gridPoints: ts });
      expect(maxRelError(ts.flatMap(p.exact), sol.ys)).toBeLessThan(3e-4);
    }
  });

  it('a single output time returns y0 exactly', () => {
    for (const method of ['dopri5', 'rk4'] as const) {
      const y0 = [0.1, 1 / 3, -7.25];
      const sol = odeint((_t, y, dy) => dy.set(y), y0, [2.5], { method, stepSize: 0.1 });
      expect(Array.from(sol.ys)).toEqual(y0);
      expect(sol.stats.nfe).toBe(0);
    }
  });
});

describe('convergence orders', () => {
  // y' = y cos t, y(0) = 1 → y = exp(sin t)
  const f: Rhs = (t, y, dy) => { dy[0] = y[0]! * Math.cos(t); };
  const exact = (t: number) => Math.exp(Math.sin(t));

  it.each([['euler', 1], ['midpoint', 2], ['heun', 2], ['rk4', 4]] as const)('%s converges with order %i', (method, order) => {
    const err = (h: number) => Math.abs(odeint(f, [1], [0, 2], { method, stepSize: h }).ys[1]! - exact(2));
    const observed = Math.log2(err(0.02) / err(0.01));
    expect(Math.abs(observed - order)).toBeLessThan(0.25);
  });

  it.each([['bosh3', 3], ['dopri5', 4], ['tsit5', 4], ['dopri8', 5]] as const)('%s dense output has order >= %i', (method, order) => {
    // one step of size h, output at θ = 0.37: local interpolation error ~ h^(q+1)
    const err = (h: number) => {
      const sol = odeint(f, [1], [0, 0.37 * h, h], { method, firstStep: h, rtol: 1, atol: 1 });
      expect(sol.stats.steps).toBe(1);
      return Math.abs(sol.ys[1]! - exact(0.37 * h));
    };
    const observed = Math.log2(err(0.05) / err(0.025)) - 1;
    expect(observed).toBeGreaterThan(order - 0.4);
  });
});

describe('against the peers (shared/reference)', () => {
  const truth = loadReference('spiral_truth.json');
  const A = [[-0.1, 2], [-2, -0.1]];
  const spiral: Rhs = (_t, y, dy) => {
    const a = y[0]! ** 3, b = y[1]! ** 3;
    dy[0] = a * A[0]![0]! + b * A[1]![0]!;
    dy[1] = a * A[0]![1]! + b * A[1]![1]!;
  };
  const vdp: Rhs = (_t, y, dy) => { dy[0] = y[1]!; dy[1] = (1 - y[0]! * y[0]!) * y[1]! - y[0]!; };
  const decay: Rhs = (_t, y, dy) => { dy[0] = -y[0]!; };

  it.each([[1e-6, 1e-4, 1184], [1e-9, 1e-7, 4148]])('dopri5 spiral at tol %s: max error over 1000 outputs and NFE', (tol, bound, nfe) => {
    const sol = odeint(spiral, [2, 0], truth.t, { rtol: tol, atol: tol });
    expect(maxAbsDiff(sol.ys, flat(truth.y))).toBeLessThan(bound);
    expect(Math.abs(sol.stats.nfe - nfe) / nfe).toBeLessThanOrEqual(0.1);
  });

  it('dopri5 at default tolerances reproduces torchdiffeq (spiral, Van der Pol, exp decay)', () => {
    const sp = odeint(spiral, [2, 0], truth.t);
    expect(sp.stats.nfe).toBe(truth.spiral.torchdiffeq_dopri5_default_tol.nfe);
    expect(maxAbsDiff(sp.ys, flat(truth.spiral.y_torchdiffeq_dopri5_default_tol))).toBeLessThan(1e-12);
    const v = odeint(vdp, [2, 0], truth.vdp_mu1.t);
    expect(Math.abs(v.stats.nfe - truth.vdp_mu1.torchdiffeq_dopri5_default_tol.nfe)).toBeLessThanOrEqual(0.1 * truth.vdp_mu1.torchdiffeq_dopri5_default_tol.nfe);
    expect(maxAbsDiff(v.ys, flat(truth.vdp_mu1.y))).toBeLessThan(1e-5);
    const e = odeint(decay, [1], truth.exp_decay.t);
    expect(Math.abs(e.stats.nfe - truth.exp_decay.torchdiffeq_dopri5_default_tol.nfe)).toBeLessThanOrEqual(0.1 * truth.exp_decay.torchdiffeq_dopri5_default_tol.nfe);
    expect(maxAbsDiff(e.ys, truth.exp_decay.y_exact)).toBeLessThan(1e-8);
  });

  const peer = loadReference('torchdiffeq_peer.json');
  const problems: Record<string, { f: Rhs; y0: number[]; t: number[]; truthLast: number[] }> = {
    spiral: { f: spiral, y0: [2, 0], t: truth.t, truthLast: truth.y[truth.y.length - 1] },
    vdp_mu1: { f: vdp, y0: [2, 0], t: [0, 20], truthLast: truth.vdp_mu1.y[truth.vdp_mu1.y.length - 1] },
    exp_decay: { f: decay, y0: [1], t: [0, 10], truthLast: [Math.exp(-10)] },
  };
  const rows = (peer.a_plain_ode as any[]).filter((r) => r.lib === 'torchdiffeq');
  // dopri5 follows torchdiffeq's controller exactly: NFE within ±10%. The other methods use their
  // own interpolants (tsit5, dopri8) and may differ a little: they must not cost over 10% more.
  it.each(rows.map((r) => [r.problem, r.method, r.tol, r.nfe, r.final_abs_err]))('%s %s tol %s: NFE vs torchdiffeq (%i), final error comparable', (problem, method, tol, nfe, err) => {
    const p = problems[problem as string]!;
    const sol = odeint(p.f, p.y0, p.t, { method: method as Method, rtol: tol as number, atol: tol as number });
    const rel = (sol.stats.nfe - (nfe as number)) / (nfe as number);
    if (method === 'dopri5') expect(Math.abs(rel)).toBeLessThanOrEqual(0.1);
    else expect(rel).toBeLessThanOrEqual(0.1);
    const last = Array.from(sol.ys.subarray(sol.ys.length - p.y0.length));
    expect(maxAbsDiff(last, p.truthLast)).toBeLessThan(Math.max(10 * (err as number), tol as number));
  });
});

describe('batches', () => {
  // a 2-D nonlinear oscillator per row
  const f: Rhs = (_t, y, dy) => { for (let r = 0; r < y.length; r += 2) { dy[r] = y[r + 1]!; dy[r + 1] = -(y[r]! ** 3) - 0.1 * y[r + 1]!; } };
  const y0 = [1, 0, 2.5, 0.3, -0.2, 1];
  const ts = linspace(0, 6, 7);

  it("'independent' gives each row exactly the result of solving it alone", () => {
    const sol = odeint(f, y0, ts, { batchMode: 'independent', dim: 2 });
    expect(sol.stats.rows).toHaveLength(3);
    for (let r = 0; r < 3; r++) {
      const solo = odeint(f, y0.slice(2 * r, 2 * r + 2), ts);
      for (let i = 0; i < ts.length; i++) {
        expect([sol.ys[6 * i + 2 * r], sol.ys[6 * i + 2 * r + 1]]).toEqual([solo.ys[2 * i], solo.ys[2 * i + 1]]);
      }
      expect(sol.stats.rows![r]).toEqual(solo.stats);
    }
    expect(sol.stats.nfe).toBe(sol.stats.rows!.reduce((s, r) => s + r.nfe, 0));
  });

  it("'joint' is torchdiffeq's batch semantics: one solve over the whole state (ode_demo MLP, NFE 950)", () => {
    const ref = loadReference('ode_demo_mlp.json');
    const p: number[] = ref.params;
    // f(t, y) = W2·tanh(W1·y³ + b1) + b2 per row, written out in the test as the independent truth
    const W1 = p.slice(0, 100), b1 = p.slice(100, 150), W2 = p.slice(150, 250), b2 = p.slice(250, 252);
    const mlp: Rhs = (_t, y, dy) => {
      for (let r = 0; r < y.length; r += 2) {
        const x0 = y[r]! ** 3, x1 = y[r + 1]! ** 3;
        let o0 = b2[0]!, o1 = b2[1]!;
        for (let j = 0; j < 50; j++) {
          const h = Math.tanh(W1[2 * j]! * x0 + W1[2 * j + 1]! * x1 + b1[j]!);
          o0 += W2[j]! * h; o1 += W2[50 + j]! * h;
        }
        dy[r] = o0; dy[r + 1] = o1;
      }
    };
    const sol = odeint(mlp, flat(ref.y0), ref.t);
    expect(sol.stats.nfe).toBe(ref.nfe_default_tol);
    expect(maxAbsDiff(sol.ys, flat(ref.ys_default_tol))).toBeLessThan(1e-7);
    const tight = odeint(mlp, flat(ref.y0), ref.t, { rtol: 1e-12, atol: 1e-14 });
    expect(maxAbsDiff(tight.ys, flat(ref.ys))).toBeLessThan(1e-9);
  });
});

describe('options', () => {
  const decay: Rhs = (_t, y, dy) => { dy[0] = -y[0]!; };

  it('per-component atol (state or per-feature) is accepted and changes the steps', () => {
    const a = odeint((_t, y, dy) => { dy[0] = -y[0]!; dy[1] = -2 * y[1]!; }, [1, 1], [0, 5], { atol: [1e-3, 1e-12], rtol: 1e-3 });
    const b = odeint((_t, y, dy) => { dy[0] = -y[0]!; dy[1] = -2 * y[1]!; }, [1, 1], [0, 5], { atol: 1e-3, rtol: 1e-3 });
    expect(a.stats.steps).toBeGreaterThan(b.stats.steps);
  });

  it('gridPoints make the adaptive solver step onto a discontinuity, which costs fewer steps', () => {
    const jump: Rhs = (t, _y, dy) => { dy[0] = t < 1.3 ? 1 : -1; };
    const without = odeint(jump, [0], [0, 3], { rtol: 1e-8, atol: 1e-8 });
    const withGrid = odeint(jump, [0], [0, 3], { rtol: 1e-8, atol: 1e-8, gridPoints: [1.3] });
    expect(Math.abs(withGrid.ys[1]! - (1.3 - 1.7))).toBeLessThan(1e-9);
    expect(withGrid.stats.nfe).toBeLessThan(without.stats.nfe);
  });

  it('a PI controller solves as accurately', () => {
    const sol = odeint(decay, [1], [0, 10], { pcoeff: 0.4, icoeff: 0.3, rtol: 1e-9, atol: 1e-12 });
    expect(Math.abs(sol.ys[1]! - Math.exp(-10))).toBeLessThan(1e-10);
  });

  it('firstStep is honoured and results are deterministic', () => {
    const a = odeint(decay, [1], linspace(0, 3, 30), { firstStep: 1e-3 });
    const b = odeint(decay, [1], linspace(0, 3, 30), { firstStep: 1e-3 });
    expect(Buffer.from(a.ys.buffer).equals(Buffer.from(b.ys.buffer))).toBe(true);
  });
});

describe('bad input', () => {
  const decay: Rhs = (_t, y, dy) => { dy[0] = -y[0]!; };
  const healthy = () => {
    const sol = odeint(decay, [1], [0, 1]);
    expect(Math.abs(sol.ys[1]! - Math.exp(-1))).toBeLessThan(1e-7);
  };
  const expectCode = (fn: () => unknown, code: string, argument?: string) => {
    let caught: unknown;
    try { fn(); } catch (e) { caught = e; }
    expect(caught).toBeInstanceOf(NeurodeError);
    expect((caught as NeurodeError).code).toBe(code);
    if (argument) expect((caught as NeurodeError).argument).toBe(argument);
    healthy();
    return caught as NeurodeError;
  };

  it.each([
    ['repeated ts', () => odeint(decay, [1], [0, 1, 1]), 'ts'],
    ['non-monotonic ts', () => odeint(decay, [1], [0, 1, 0.5]), 'ts'],
    ['empty ts', () => odeint(decay, [1], []), 'ts'],
    ['NaN in ts', () => odeint(decay, [1], [0, NaN]), 'ts'],
    ['NaN in y0', () => odeint(decay, [NaN], [0, 1]), 'y0'],
    ['Infinity in y0', () => odeint(decay, [1, Infinity], [0, 1]), 'y0'],
    ['empty y0', () => odeint(decay, [], [0, 1]), 'y0'],
    ['y0 not an array', () => odeint(decay, 3 as unknown as number[], [0, 1]), 'y0'],
    ['rtol <= 0', () => odeint(decay, [1], [0, 1], { rtol: 0 }), 'rtol'],
    ['negative atol', () => odeint(decay, [1], [0, 1], { atol: -1 }), 'atol'],
    ['atol of the wrong length', () => odeint(decay, [1, 2, 3], [0, 1], { atol: [1, 2] }), 'atol'],
    ['unknown method', () => odeint(decay, [1], [0, 1], { method: 'rk45' }), 'method'],
    ['fixed-step method without stepSize', () => odeint(decay, [1], [0, 1], { method: 'rk4' }), 'stepSize'],
    ['stepSize <= 0', () => odeint(decay, [1], [0, 1], { method: 'euler', stepSize: -0.1 }), 'stepSize'],
    ['maxSteps not a whole number', () => odeint(decay, [1], [0, 1], { maxSteps: 1.5 }), 'maxSteps'],
    ['y0 length not a multiple of dim', () => odeint(decay, [1, 2, 3], [0, 1], { dim: 2 }), 'y0'],
    ['unknown option', () => odeint(decay, [1], [0, 1], { rtoll: 1e-3 } as object), 'options.rtoll'],
    ['f not a function', () => odeint(42 as unknown as Rhs, [1], [0, 1]), 'f'],
  ])('%s → INVALID_ARGUMENT', (_name, fn, argument) => {
    expectCode(fn, 'INVALID_ARGUMENT', argument);
  });

  it('maxSteps exceeded → MAX_STEPS with the time reached', () => {
    const e = expectCode(() => odeint(decay, [1], [0, 100], { maxSteps: 5 }), 'MAX_STEPS');
    expect(e.time).toBeGreaterThan(0);
    expect(e.time).toBeLessThan(100);
  });

  it('a right-hand side that throws: the exception is re-thrown, the core stays healthy', () => {
    const boom = new Error('boom');
    let calls = 0;
    let caught: unknown;
    try { odeint((_t, y, dy) => { if (++calls > 10) throw boom; dy[0] = -y[0]!; }, [1], [0, 1]); } catch (e) { caught = e; }
    expect(caught).toBe(boom);
    healthy();
  });

  it('a right-hand side that returns NaN → NON_FINITE naming the time', () => {
    const e = expectCode(() => odeint((t, _y, dy) => { dy[0] = t > 0.5 ? NaN : 1; }, [0], [0, 1]), 'NON_FINITE');
    expect(e.time).toBeGreaterThan(0.4);
    expect(e.time).toBeLessThanOrEqual(0.5 + 1e-9);
    const e0 = expectCode(() => odeint((_t, _y, dy) => { dy[0] = NaN; }, [0], [0, 1]), 'NON_FINITE');
    expect(e0.time).toBe(0);
  });

  it('an explicit method on a very stiff problem fails with MAX_STEPS, never hangs', () => {
    const e = expectCode(() => odeint((_t, y, dy) => { dy[0] = -1e7 * (y[0]! - 1); }, [0], [0, 100], { maxSteps: 2000 }), 'MAX_STEPS');
    expect(e.time).toBeLessThan(100);
  });

  it('a step that cannot advance time → STEP_UNDERFLOW naming the time', () => {
    const e = expectCode(() => odeint(decay, [1], [1e20, 1e20 + 1e6], { firstStep: 1 }), 'STEP_UNDERFLOW');
    expect(e.time).toBe(1e20);
  });
});
