import { beforeAll, describe, expect, it } from 'vitest';
import { init, nn, odeint, odeintWithGrad, fitTrajectory, memoryStats, NeurodeError, LatentODE, ODENetClassifier, spirals, type Checkpoint } from '../ts/index.js';
import { core, triggerPanicForTesting } from '../ts/wasm.js';
import { linspace } from './helpers.js';

beforeAll(async () => {
  await init();
});

const A = [[-0.1, 2], [-2, -0.1]];
const spiralData = () => {
  const t = linspace(0, 5, 200);
  const y = odeint((_t, y, dy) => { const a = y[0]! ** 3, b = y[1]! ** 3; dy[0] = a * A[0]![0]! + b * A[1]![0]!; dy[1] = a * A[0]![1]! + b * A[1]![1]!; }, [2, 0], t).ys;
  return { t, y };
};

describe('training that stops loses nothing', () => {
  it('resuming from a checkpoint gives the same bits as an uninterrupted run', async () => {
    const data = spiralData();
    const run = async (o: object) => {
      const f = nn.mlp({ dims: [2, 16, 2], activation: 'tanh', inputCube: true, seed: 4 });
      const h = await fitTrajectory(f, data, { iterations: 24, batchSize: 8, seed: 7, ...o });
      return { f, h };
    };
    const whole = await run({});
    const saved: Checkpoint[] = [];
    const ac = new AbortController();
    const part = await run({ checkpoint: { every: 5, save: (c: Checkpoint) => { saved.push(JSON.parse(JSON.stringify(c))); if (c.iteration === 10) ac.abort(); } }, signal: ac.signal });
    expect(part.h.aborted).toBe(true);
    expect(part.h.loss).toHaveLength(10);
    const last = saved[saved.length - 1]!;
    expect(last.iteration).toBe(10);
    const resumed = await run({ resume: last });
    expect(resumed.h.loss).toEqual(whole.h.loss);
    expect(resumed.f.digest()).toBe(whole.f.digest());
    const f2 = nn.mlp({ dims: [2, 16, 2], activation: 'tanh', inputCube: true, seed: 4 });
    await expect(fitTrajectory(f2, data, { iterations: 24, resume: { ...last, format: 'x' } as unknown as Checkpoint })).rejects.toThrow(NeurodeError);
    f2.dispose();
    [whole.f, part.f, resumed.f].forEach((f) => f.dispose());
  });
});

describe('memory stays flat', () => {
  it('10⁴ create / solve / grad / dispose cycles return the core to the same live bytes', () => {
    const cycle = () => {
      const f = nn.mlp({ dims: [2, 8, 2], seed: 1 });
      odeint(f, [1, 0.5], [0, 0.5]);
      const s = odeintWithGrad(f, [1, 0.5], [0, 0.5], { grad: 'backprop' });
      s.backward([0, 0, 1, 1]);
      f.dispose();
    };
    for (let i = 0; i < 50; i++) cycle(); // warm-up: allocator pools settle
    const objects = core().exports.nd_object_count();
    const before = memoryStats();
    for (let i = 0; i < 10_000; i++) cycle();
    const after = memoryStats();
    expect(after.liveBytes).toBe(before.liveBytes);
    expect(after.liveBlocks).toBe(before.liveBlocks);
    expect(core().exports.nd_object_count()).toBe(objects);
  });

  it('10⁴ create / predict / dispose cycles of the models keep the core flat too', () => {
    const series = spirals({ n: 2, ntotal: 40, nsample: 6, seed: 3 }).observed;
    const img = new Float32Array(2 * 64).fill(0.5);
    const cycle = (i: number) => {
      if (i % 2) {
        const m = new LatentODE({ obsDim: 2, latentDim: 2, hidden: 4, rnnHidden: 3, seed: i });
        m.predict(series, [0, 0.5], { samples: 0 });
        m.dispose();
      } else {
        const m = new ODENetClassifier({ inputShape: [1, 8, 8], classes: 3, arch: 'mlp', width: 4, seed: i, stepSize: 0.5, method: 'rk4' } as never);
        m.predict(img);
        m.dispose();
      }
    };
    for (let i = 0; i < 50; i++) cycle(i);
    const objects = core().exports.nd_object_count();
    const before = memoryStats();
    for (let i = 0; i < 10_000; i++) cycle(i);
    const after = memoryStats();
    expect(after.liveBytes).toBe(before.liveBytes);
    expect(after.liveBlocks).toBe(before.liveBlocks);
    expect(core().exports.nd_object_count()).toBe(objects);
  });

  it('objects dropped without dispose() are reclaimed by the FinalizationRegistry', async () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    expect(typeof gc, 'run with --expose-gc (vitest.config.ts sets it)').toBe('function');
    const count0 = core().exports.nd_object_count();
    (() => { for (let i = 0; i < 200; i++) nn.mlp({ dims: [2, 4, 2], seed: i }); })();
    expect(core().exports.nd_object_count()).toBe(count0 + 200);
    for (let k = 0; k < 200 && core().exports.nd_object_count() > count0; k++) {
      gc!();
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(core().exports.nd_object_count()).toBe(count0);
  });
});

describe('faults', () => {
  it('a panic becomes WASM_PANIC; the next call works; old objects report INSTANCE_RESET', () => {
    const f = nn.mlp({ dims: [2, 4, 2] });
    let caught: unknown;
    try { triggerPanicForTesting(); } catch (e) { caught = e; }
    expect(caught).toBeInstanceOf(NeurodeError);
    expect((caught as NeurodeError).code).toBe('WASM_PANIC');
    expect((caught as Error).message).toMatch(/deliberate panic/);
    expect(odeint((_t, y, dy) => { dy[0] = -y[0]!; }, [1], [0, 1]).ys[1]).toBeCloseTo(Math.exp(-1), 6);
    expect(() => f.eval(0, [1, 2])).toThrow(expect.objectContaining({ code: 'INSTANCE_RESET' }));
    f.dispose(); // harmless
    const g = nn.mlp({ dims: [2, 4, 2] });
    expect(g.eval(0, [1, 2])).toHaveLength(2);
    g.dispose();
  });

  it('dynamics that blow up → NON_FINITE or STEP_UNDERFLOW with the time; stiff → MAX_STEPS; never a hang', () => {
    // y' = exp(y) overflows to Infinity in finite time (t ≈ 1 for y0 = 0)
    let e: NeurodeError | undefined;
    try { odeint((_t, y, dy) => { dy[0] = y[0]! > 700 ? Infinity : Math.exp(y[0]!); }, [0], [0, 2]); } catch (err) { e = err as NeurodeError; }
    expect(['NON_FINITE', 'STEP_UNDERFLOW', 'MAX_STEPS']).toContain(e?.code);
    expect(e?.time).toBeGreaterThan(0.9);
    expect(e?.time).toBeLessThan(1.1);
    try { odeint((_t, y, dy) => { dy[0] = -1e9 * (y[0]! - 1); }, [0], [0, 1], { maxSteps: 500 }); } catch (err) { e = err as NeurodeError; }
    expect(e?.code).toBe('MAX_STEPS');
  });
});
