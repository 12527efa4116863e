/** Issue 10: events, the stiff solver (kvaerno5), Adams methods, jumpTs and step callbacks. */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { init, nn, odeint, odeintEvent, NeurodeError } from '../ts/index.js';

const ref = JSON.parse(readFileSync(new URL('./fixtures/stiff_reference.json', import.meta.url), 'utf8'));

beforeAll(async () => { await init(); });

// torchdiffeq's tests/problems.py: ConstantODE (a = 0.2, b = 3) and SineODE, t in linspace(1, 8, 10)
const A = 0.2, B = 3;
const constant = (t: number, y: Float64Array, dy: Float64Array) => { dy[0] = A + (y[0]! - (A * t + B)) ** 5; };
const sineExact = (t: number) => -0.5 * t ** 4 * cosT(2 * t) + 0.5 * t ** 3 * sinT(2 * t) + 0.25 * t * t * cosT(2 * t) - t ** 3 + 2 * t ** 4 + (Math.PI - 0.25) * t * t;
const sine = (t: number, y: Float64Array, dy: Float64Array) => { dy[0] = 2 * y[0]! / t + t ** 4 * sinT(2 * t) - t * t + 4 * t ** 3; };
// test-only trigonometry (the library itself never calls Math in ts/)
function sinT(x: number) { return Math['sin'](x); }
function cosT(x: number) { return Math['cos'](x); }
const tPoints = Array.from({ length: 10 }, (_, i) => 1 + (7 * i) / 9);

function expectCode(fn: () => unknown, code: string, argument?: string) {
  try { fn(); } catch (e) {
    expect(e).toBeInstanceOf(NeurodeError);
    expect((e as NeurodeError).code).toBe(code);
    if (argument) expect((e as NeurodeError).argument).toBe(argument);
    return;
  }
  throw new Error('expected a NeurodeError ' + code);
}

describe('events', () => {
  for (const reverse of [false, true]) {
    for (const [name, f, exact] of [['constant', constant, (t: number) => A * t + B], ['sine', sine, sineExact]] as const) {
      for (const method of ['dopri5', 'tsit5', 'kvaerno5'] as const) {
        it(`${name} problem${reverse ? ' reversed' : ''} (${method}): event at the third grid time`, () => {
          const ts = reverse ? [...tPoints].reverse() : tPoints;
          const target = exact(ts[2]!);
          // a JavaScript event function, as torchdiffeq's event_fn = sum(y − sol[2])
          const r = odeintEvent(f, [exact(ts[0]!)], ts[0]!, { events: [{ fn: (_t, y) => y[0]! - target }], tEnd: ts[9], method, rtol: 1e-11, atol: 1e-11 });
          expect(r.event[0]).toBe(0);
          expect(Math.abs(r.t[0]! - ts[2]!)).toBeLessThan(1e-6);
          expect(Math.abs(r.y[0]! - target)).toBeLessThan(1e-6 * Math.max(1, Math.abs(target)));
        });
      }
    }
  }

  it('linear built-in events: per-row stopping, direction and a non-terminal log', () => {
    // free fall from heights 1, 4, 9: ground at t = √2, √8, √18; height 0.5 passed non-terminally
    const fall = (_t: number, y: Float64Array, dy: Float64Array) => { for (let i = 0; i < y.length; i += 2) { dy[i] = y[i + 1]!; dy[i + 1] = -1; } };
    const r = odeintEvent(fall, [1, 0, 4, 0, 9, 0], 0, {
      dim: 2, rtol: 1e-10, atol: 1e-12, ts: [1, 3],
      events: [
        { linear: [1, 0], direction: 'down' },
        { linear: [1, 0], offset: -0.5, direction: 'down', terminal: false },
        { linear: [1, 0], offset: -100, direction: 'up' }, // never reached
      ],
    });
    const want = [Math.sqrt(2), Math.sqrt(8), Math.sqrt(18)];
    for (let b = 0; b < 3; b++) {
      expect(r.event[b]).toBe(0);
      expect(Math.abs(r.t[b]! - want[b]!)).toBeLessThan(1e-9);
      expect(Math.abs(r.y[2 * b + 1]! + want[b]!)).toBeLessThan(1e-9); // velocity −t at impact
    }
    // at t = 3 only the row from height 9 is still falling: 9 − 4.5
    expect(Number.isNaN(r.ys[2 * 6])).toBe(true);
    expect(Number.isNaN(r.ys[2 * 6 + 2])).toBe(true);
    expect(Math.abs(r.ys[2 * 6 + 4]! - 4.5)).toBeLessThan(1e-9);
    expect(r.log.map((e) => e.row)).toEqual([0, 1, 2]);
    for (const e of r.log) expect(Math.abs(e.y[0]! - 0.5)).toBeLessThan(1e-9);
    expect(r.stats.rows.length).toBe(3);
    expect(r.stats.rows[0]!.steps).toBeLessThan(r.stats.rows[2]!.steps + 1);
  });

  it('tEnd without an event gives event −1 and the state at tEnd; no tEnd and no event → MAX_STEPS', () => {
    const decay = (_t: number, y: Float64Array, dy: Float64Array) => { dy[0] = -y[0]!; };
    const r = odeintEvent(decay, [1], 0, { events: [{ linear: [1], offset: 2 }], tEnd: 1, rtol: 1e-10, atol: 1e-12 });
    expect(r.event[0]).toBe(-1);
    expect(r.t[0]).toBe(1);
    expect(Math.abs(r.y[0]! - 0.36787944117144233)).toBeLessThan(1e-9);
    expectCode(() => odeintEvent(decay, [1], 0, { events: [{ linear: [1], offset: 2 }], maxSteps: 50 }), 'MAX_STEPS');
  });

  it('works with a core vector field and reports bad input with stable codes', () => {
    const field = nn.mlp({ dims: [2, 8, 2], seed: 3 });
    const r = odeintEvent(field, [0.5, 0.5, -0.5, 0.2], 0, { events: [{ fn: (t) => t - 0.25 }], tEnd: 1 });
    expect(Array.from(r.t).every((t) => Math.abs(t - 0.25) < 1e-9)).toBe(true);
    field.dispose();
    const f = (_t: number, _y: Float64Array, dy: Float64Array) => { dy[0] = 1; };
    expectCode(() => odeintEvent(f, [0], 0, { events: [] }), 'INVALID_ARGUMENT', 'events');
    expectCode(() => odeintEvent(f, [0], 0, { events: [{ linear: [1, 2] }] }), 'INVALID_ARGUMENT', 'events[0].linear');
    expectCode(() => odeintEvent(f, [0], 0, { events: [{ linear: [1], direction: 'sideways' as 'up' }] }), 'INVALID_ARGUMENT', 'events[0].direction');
    expectCode(() => odeintEvent(f, [0], 0, { events: [{ fn: (t) => t, linear: [1] }] }), 'INVALID_ARGUMENT', 'events[0]');
    expectCode(() => odeintEvent(f, [0], 0, { events: [{ linear: [1] }], eventTol: -1 }), 'INVALID_ARGUMENT', 'eventTol');
    expectCode(() => odeintEvent(f, [0], Number.NaN, { events: [{ linear: [1] }] }), 'INVALID_ARGUMENT', 't0');
    expectCode(() => odeintEvent(f, [0], 0, { events: [{ linear: [1] }], tEnd: 0 }), 'INVALID_ARGUMENT');
    expectCode(() => odeintEvent(f, [0], 0, { events: [{ linear: [1] }], tEnd: 1, ts: [2] }), 'INVALID_ARGUMENT');
    // an event function that throws: its exception comes through
    expect(() => odeintEvent(f, [0], 0, { events: [{ fn: () => { throw new RangeError('boom'); } }], tEnd: 1 })).toThrow('boom');
  });
});

describe('stiff solver (kvaerno5)', () => {
  const robertson = (_t: number, y: Float64Array, dy: Float64Array) => {
    dy[0] = -0.04 * y[0]! + 1e4 * y[1]! * y[2]!;
    dy[2] = 3e7 * y[1]! * y[1]!;
    dy[1] = -dy[0] - dy[2];
  };

  it('Robertson to t = 1e5 at rtol 1e-6 matches scipy Radau (rtol 1e-12) to 1e-5 relative in < 2000 steps', () => {
    const { ts, ys } = ref.robertson as { ts: number[]; ys: number[][] };
    const sol = odeint(robertson, [1, 0, 0], ts, { method: 'kvaerno5', rtol: 1e-6, atol: [1e-12, 1e-16, 1e-12] });
    let worst = 0;
    for (let i = 0; i < ts.length; i++) {
      for (let c = 0; c < 3; c++) {
        const truth = ys[i]![c]!;
        if (truth !== 0) worst = Math.max(worst, Math.abs(sol.ys[3 * i + c]! - truth) / Math.abs(truth));
      }
    }
    expect(worst).toBeLessThan(1e-5);
    expect(sol.stats.steps).toBeLessThan(2000);
    expect(sol.stats.newton).toBeGreaterThan(0);
    expect(sol.stats.jacobians).toBeGreaterThan(0);
    expect(sol.stats.nfe).toBeGreaterThan(sol.stats.newton!);
    // dopri5 cannot do it in the same budget
    expectCode(() => odeint(robertson, [1, 0, 0], ts, { method: 'dopri5', rtol: 1e-6, atol: [1e-12, 1e-16, 1e-12], maxSteps: 20000 }), 'MAX_STEPS');
  });

  it('Van der Pol μ = 1000 over one period matches scipy Radau; dopri5 hits MAX_STEPS', () => {
    const mu = ref.vanDerPol.mu as number;
    const vdp = (_t: number, y: Float64Array, dy: Float64Array) => { dy[0] = y[1]!; dy[1] = mu * (1 - y[0]! * y[0]!) * y[1]! - y[0]!; };
    const { ts, ys, downCrossings } = ref.vanDerPol as { ts: number[]; ys: number[][]; downCrossings: number[] };
    const sol = odeint(vdp, [2, 0], ts, { method: 'kvaerno5', rtol: 1e-8, atol: 1e-10 });
    for (let i = 0; i < ts.length; i++) expect(Math.abs(sol.ys[2 * i]! - ys[i]![0]!)).toBeLessThan(1e-5);
    // one period: two successive downward zero crossings of y1 found as events (non-terminal log)
    const ev = odeintEvent(vdp, [2, 0], 0, { method: 'kvaerno5', rtol: 1e-8, atol: 1e-10, tEnd: 2500, events: [{ linear: [1, 0], direction: 'down', terminal: false }] });
    expect(ev.log.length).toBe(2);
    const period = ev.log[1]!.t - ev.log[0]!.t;
    const refPeriod = downCrossings[1]! - downCrossings[0]!;
    expect(Math.abs(period - refPeriod) / refPeriod).toBeLessThan(1e-5);
    expect(ev.stats.steps).toBeLessThan(5000);
    expectCode(() => odeint(vdp, [2, 0], [0, refPeriod], { method: 'dopri5', rtol: 1e-8, atol: 1e-10, maxSteps: 100000 }), 'MAX_STEPS');
  });

  it('a core field gets its exact Jacobian rows from the VJP (fewer evaluations than finite differences would need)', () => {
    const field = nn.mlp({ dims: [3, 16, 3], seed: 7 });
    const y0 = [0.3, -0.2, 0.1];
    const a = odeint(field, y0, [0, 1], { method: 'kvaerno5', rtol: 1e-9, atol: 1e-11 });
    const b = odeint(field, y0, [0, 1], { method: 'dopri8', rtol: 1e-12, atol: 1e-13 });
    for (let i = 0; i < 3; i++) expect(Math.abs(a.ys[3 + i]! - b.ys[3 + i]!)).toBeLessThan(1e-7);
    field.dispose();
  });
});

describe('Adams methods, jumpTs and onStep', () => {
  const decay = (t: number, y: Float64Array, dy: Float64Array) => { dy[0] = -y[0]! * (1 + 0 * t); };

  it('explicit and implicit Adams converge with their order; NFE as torchdiffeq counts them', () => {
    // y' = cos t·(1 + y − sin t): y = sin t (non-stiff, where order-11 Adams–Bashforth is stable)
    const f = (t: number, y: Float64Array, dy: Float64Array) => { dy[0] = cosT(t) * (1 + y[0]! - sinT(t)); };
    const err = (method: 'explicit_adams' | 'implicit_adams', h: number) => {
      const s = odeint(f, [0], [0, 2], { method, stepSize: h, rtol: 1e-12, atol: 1e-12 });
      return { e: Math.abs(s.ys[1]! - sinT(2)), s };
    };
    for (const m of ['explicit_adams', 'implicit_adams'] as const) {
      const a = err(m, 0.02), b = err(m, 0.01);
      expect(a.e).toBeLessThan(1e-6);
      expect(b.e).toBeLessThan(a.e / 8); // at least third order
      expect(a.s.stats.steps).toBe(100);
    }
    // torchdiffeq: f0 per step, 2 RK4 starting steps with 3 more each; here + the final f (dense output)
    const s = err('explicit_adams', 0.02).s;
    expect(s.stats.steps).toBe(100);
    expect(s.stats.nfe).toBe(100 + 2 * 3 + 1);
    const si = err('implicit_adams', 0.02).s;
    expect(si.stats.newton).toBeGreaterThan(0);
    expect(si.stats.nfe).toBe(100 + 2 * 3 + 1 + si.stats.newton!);
  });

  it('jumpTs at a known discontinuity costs fewer evaluations (torchdiffeq test_odeint_jump_t)', () => {
    const jump = (t: number, y: Float64Array, dy: Float64Array) => { for (let i = 0; i < y.length; i++) dy[i] = t < 0.5 ? -0.5 * y[i]! : y[i]! * y[i]!; };
    for (const method of ['bosh3', 'dopri5', 'tsit5', 'kvaerno5'] as const) {
      const simple = odeint(jump, [1, 2], [0, 1], { method, atol: 1e-6 });
      const better = odeint(jump, [1, 2], [0, 1], { method, rtol: 1e-6, atol: 1e-6, jumpTs: [0.5] });
      expect(better.stats.nfe).toBeLessThan(simple.stats.nfe);
    }
  });

  it('onStep sees every attempt: accepted ones chain from t0 to the end', () => {
    const seen: Array<[number, boolean, number]> = [];
    const sol = odeint(decay, [1], [0, 3], { rtol: 1e-8, atol: 1e-10, firstStep: 2, onStep: (t, y, ok, h) => { expect(y.length).toBe(1); seen.push([t, ok, h]); } });
    const acc = seen.filter((s) => s[1]);
    expect(acc.length).toBe(sol.stats.steps);
    expect(seen.length - acc.length).toBe(sol.stats.rejected);
    expect(sol.stats.rejected).toBeGreaterThan(0); // the first step of 2 is too long
    for (let i = 1; i < acc.length; i++) expect(acc[i]![0]).toBeCloseTo(acc[i - 1]![0] + acc[i - 1]![2], 12);
    expect(() => odeint(decay, [1], [0, 1], { onStep: () => { throw new TypeError('stop'); } })).toThrow('stop');
    expectCode(() => odeint(decay, [1], [0, 1], { onStep: 3 as unknown as () => void }), 'INVALID_ARGUMENT', 'onStep');
    expectCode(() => odeint(decay, [1], [0, 1], { jumpTs: [Number.NaN] }), 'INVALID_ARGUMENT', 'jumpTs');
    expectCode(() => odeint(decay, [1], [0, 1], { method: 'explicit_adams' }), 'INVALID_ARGUMENT', 'stepSize');
  });
});

describe('event-time gradients (implicit function theorem)', () => {
  // y' = −p·y from y0 at t0; the event y = c happens at t* = t0 + ln(y0/c)/p
  const p = 0.7, c = 0.25, Y0 = 2, T0 = 0.3;
  const pair = {
    f: (_t: number, y: Float64Array, dy: Float64Array) => { dy[0] = -p * y[0]!; },
    vjp: (_t: number, y: Float64Array, a: Float64Array, oy: Float64Array, op: Float64Array) => { oy[0] = -p * a[0]!; op[0] = -a[0]! * y[0]!; },
    numParams: 1,
  };
  const lnT = (x: number) => Math['log'](x);
  for (const grad of ['backprop', 'checkpoint', 'adjoint'] as const) {
    it(`dt*/dy0, dt*/dp, dt*/dt0 and dy*/d· match the closed form (${grad})`, () => {
      const r = odeintEvent(pair, [Y0], T0, { events: [{ linear: [1], offset: -c, direction: 'down' }], grad, rtol: 1e-11, atol: 1e-12 });
      expect(Math.abs(r.t[0]! - (T0 + lnT(Y0 / c) / p))).toBeLessThan(1e-8);
      const g = r.backward!({ dLdt: [1] });
      expect(Math.abs(g.y0[0]! - 1 / (p * Y0))).toBeLessThan(1e-6);
      expect(Math.abs(g.params[0]! - -lnT(Y0 / c) / (p * p))).toBeLessThan(1e-5);
      expect(Math.abs(g.t0 - 1)).toBeLessThan(1e-6);
      // the state at the event is always c: its gradient vanishes once t* moves with the inputs
      const r2 = odeintEvent(pair, [Y0], T0, { events: [{ linear: [1], offset: -c, direction: 'down' }], grad, rtol: 1e-11, atol: 1e-12 });
      const g2 = r2.backward!({ dLdy: [1] });
      expect(Math.abs(g2.y0[0]!)).toBeLessThan(1e-6);
      expect(Math.abs(g2.params[0]!)).toBeLessThan(1e-6);
    });
  }

  it('a core field with a JavaScript event function and its grad: dt*/dy0 against finite differences, per row', () => {
    const field = nn.mlp({ dims: [2, 12, 2], seed: 11 });
    // event: 0.1·(y0 + 2·y1) + 0.1·t reaches 0.4, gradient given by hand
    const ev = { fn: (t: number, y: Float64Array) => 0.1 * (y[0]! + 2 * y[1]!) - 0.4 + 0.1 * t, grad: (_t: number, _y: Float64Array, out: Float64Array) => { out[0] = 0.1; out[1] = 0.2; return 0.1; } };
    const y0 = [0.1, 0.05, -0.2, 0.1];
    const o = { events: [ev], tEnd: 20, rtol: 1e-12, atol: 1e-12 } as const;
    const base = odeintEvent(field, y0, 0, o);
    expect(Array.from(base.event)).toEqual([0, 0]);
    const r = odeintEvent(field, y0, 0, { ...o, grad: 'backprop' });
    const g = r.backward!({ dLdt: [1, 1] });
    const h = 1e-6;
    for (let i = 0; i < 4; i++) {
      const a = [...y0], b = [...y0];
      a[i]! += h; b[i]! -= h;
      const row = i < 2 ? 0 : 1;
      const fd = (odeintEvent(field, a, 0, o).t[row]! - odeintEvent(field, b, 0, o).t[row]!) / (2 * h);
      expect(Math.abs(g.y0[i]! - fd)).toBeLessThan(1e-5 * Math.max(1, Math.abs(fd)));
    }
    // a JavaScript event function without grad cannot be differentiated
    const r2 = odeintEvent(field, y0, 0, { ...o, events: [{ fn: ev.fn }], grad: 'backprop' });
    expectCode(() => r2.backward!({ dLdt: [1, 1] }), 'INVALID_ARGUMENT', 'events[0].grad');
    field.dispose();
  });
});

describe('onStep in odeintWithGrad', () => {
  it('is called on the forward and on the backward pass in every mode', async () => {
    const { odeintWithGrad } = await import('../ts/index.js');
    const pair = {
      f: (_t: number, y: Float64Array, dy: Float64Array) => { dy[0] = y[1]!; dy[1] = -y[0]!; },
      vjp: (_t: number, _y: Float64Array, a: Float64Array, oy: Float64Array) => { oy[0] = -a[1]!; oy[1] = a[0]!; },
    };
    for (const grad of ['adjoint', 'backprop', 'checkpoint'] as const) {
      const fwd: number[] = [], bwd: Array<[number, number]> = [];
      const sol = odeintWithGrad(pair, [1, 0], [0, 1, 2], { grad, rtol: 1e-8, atol: 1e-10, onStep: (t, _y, ok) => { if (ok) fwd.push(t); }, onBackwardStep: (t, y, ok) => { if (ok) bwd.push([t, y.length]); } });
      expect(fwd.length).toBe(sol.stats.steps);
      const g = sol.backward([0, 0, 0, 0, 1, 0]);
      expect(bwd.length).toBeGreaterThan(0);
      if (grad === 'adjoint') {
        expect(bwd.length).toBe(g.stats.steps);
        expect(bwd.every(([, len]) => len === 2 * 2 + 1)).toBe(true); // [z, a, a_t] (no parameters)
        expect(bwd[0]![0]).toBeCloseTo(2, 12); // the backward solve starts at the last time
      } else {
        expect(bwd.length).toBe(sol.stats.steps); // every recorded step once, in reverse
        expect(bwd.map(([t]) => t)).toEqual([...fwd].reverse());
      }
    }
  });
});
