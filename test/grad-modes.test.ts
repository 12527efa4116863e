import { beforeAll, describe, expect, it } from 'vitest';
import { init, nn, odeintWithGrad, memoryStats, resetPeakMemory, type GradMode } from '../ts/index.js';
import { flat, linspace, loadReference, maxAbsDiff } from './helpers.js';

beforeAll(async () => {
  await init();
});

const MODES: GradMode[] = ['adjoint', 'backprop', 'checkpoint'];

describe('gradient modes on neural fields', () => {
  it('adjoint, backprop and checkpoint agree (tol 1e-9: within 1e-5)', () => {
    const f = nn.mlp({ dims: [3, 32, 32, 3], time: 'concatsquash', activation: 'softplus', seed: 5 });
    const y0 = [0.5, -1, 0.25, 1.5, 0.2, -0.4];
    const ts = linspace(0, 1.5, 6);
    const w = Array.from({ length: 36 }, (_, i) => Math.cos(0.9 * i));
    const g = MODES.map((grad) => odeintWithGrad(f, y0, ts, { grad, rtol: 1e-9, atol: 1e-9 }).backward(w));
    for (const k of ['y0', 'params', 'ts'] as const) {
      expect(maxAbsDiff(g[0]![k], g[1]![k])).toBeLessThan(1e-5);
      expect(Array.from(g[2]![k])).toEqual(Array.from(g[1]![k]));
    }
    f.dispose();
  });

  it('unused parameters get exactly zero gradient in every mode', () => {
    // hidden unit 0 is dead (ReLU of a large negative constant): its weights cannot matter
    const f = nn.sequential([nn.linear(2, 8), nn.relu(), nn.linear(8, 2)], { seed: 2 });
    const p = f.params;
    p[0] = 0; p[1] = 0; p[16] = -10; // W1[0][:] = 0, b1[0] = −10
    for (const grad of MODES) {
      const g = odeintWithGrad(f, [0.3, -0.2], [0, 0.5, 1], { grad }).backward([0, 0, 1, -1, 0.5, 2]);
      expect(g.params[0]).toBe(0);
      expect(g.params[1]).toBe(0);
      expect(g.params[16]).toBe(0);
      expect(g.params[24]).toBe(0); // W2[0][0]
      expect(g.params[32]).toBe(0); // W2[1][0]
      expect(g.params.filter((v) => v !== 0).length).toBeGreaterThan(10);
    }
    f.dispose();
  });

  it("adjoint backward NFE equals torchdiffeq's (1557 seminorm, 1611 full) on ode_demo; seminorm is clearly cheaper on a wide MLP", () => {
    const ref = loadReference('ode_demo_mlp_grad.json');
    const demo = nn.mlp({ dims: [2, 50, 2], activation: 'tanh', inputCube: true });
    demo.params.set(ref.params);
    const nfe = (f: typeof demo, y0: number[], ts: number[], w: number[], adjointNorm: 'full' | 'seminorm') =>
      odeintWithGrad(f, y0, ts, { grad: 'adjoint', adjointNorm }).backward(w).stats.nfe;
    expect(nfe(demo, flat(ref.y0), ref.t, flat(ref.w), 'seminorm')).toBe(ref.nfe_default_tol.adjoint_backward_seminorm.nfe);
    expect(nfe(demo, flat(ref.y0), ref.t, flat(ref.w), 'full')).toBe(ref.nfe_default_tol.adjoint_backward.nfe);
    // width 512, default tolerances: the 1,500+ parameter adjoints no longer drive the step size
    const wide = nn.mlp({ dims: [2, 512, 2], activation: 'tanh', seed: 1 });
    const ts = linspace(0, 5, 10);
    const w = Array.from({ length: 8 * 10 }, (_, i) => Math.sin(i));
    const y0 = [1, 0, 0.5, -0.5, -1, 0.2, 0.1, 0.9];
    const semi = nfe(wide, y0, ts, w, 'seminorm');
    const full = nfe(wide, y0, ts, w, 'full');
    expect(semi).toBeLessThan(0.9 * full);
    demo.dispose(); wide.dispose();
  });

  it('memory (core bytes): adjoint constant in T, backprop grows with steps × stages, checkpoint with steps', () => {
    const ref = loadReference('ode_demo_mlp.json');
    const f = nn.mlp({ dims: [2, 50, 2], activation: 'tanh', inputCube: true });
    f.params.set(ref.params);
    const y0 = flat(ref.y0);
    const n = y0.length;
    const rows = [25, 100, 400].map((T) => {
      const ts = linspace(0, T * 0.025, T);
      const w = new Array(T * n).fill(0.01);
      return Object.fromEntries(MODES.map((grad) => {
        resetPeakMemory();
        const base = memoryStats().liveBytes;
        const sol = odeintWithGrad(f, y0, ts, { grad });
        const stored = sol.storedBytes - T * n * 8; // beyond the outputs themselves
        sol.backward(w);
        const peak = memoryStats().peakBytes - base;
        return [grad, { stored, peak, steps: sol.stats.steps }];
      }));
    });
    for (const r of rows) {
      expect(r.adjoint!.stored).toBe(0);
      expect(r.checkpoint!.stored).toBe(r.checkpoint!.steps * n * 8);
      // backprop: y0 + 7 dopri5 stages per step, plus each stage's evaluation record (the
      // network's activations: cube output and hidden layer, 2 + 50 per row) so the backward
      // VJPs skip their forward pass — stages 1-6 of every step (stage 0 is the previous step's
      // last: FSAL) and the first step's stage 0
      const recBytes = (n / 2) * (2 + 50) * 8;
      expect(r.backprop!.stored).toBe(r.backprop!.steps * (1 + 7) * n * 8 + (6 * r.backprop!.steps + 1) * recBytes);
    }
    expect(rows[2]!.backprop!.steps).toBeGreaterThan(4 * rows[0]!.backprop!.steps);
    // the adjoint's working memory does not depend on the number of steps: same T, 10× the steps
    const peak = (rtol: number) => {
      const ts = linspace(0, 2.5, 25);
      resetPeakMemory();
      const base = memoryStats().liveBytes;
      const sol = odeintWithGrad(f, y0, ts, { grad: 'adjoint', rtol, atol: rtol * 1e-2 });
      sol.backward(new Array(25 * n).fill(0.01));
      return { peak: memoryStats().peakBytes - base, steps: sol.stats.steps };
    };
    const loose = peak(1e-4), tight = peak(1e-10);
    expect(tight.steps).toBeGreaterThan(5 * loose.steps);
    expect(tight.peak).toBe(loose.peak);
    f.dispose();
  });
});
