/**
 * odeintEvent: solve until events (issue 10). Root finding, per-row stopping and the event
 * time's gradient run in the core (solver/events.rs, grad/events.rs); this file validates and
 * packs the arguments.
 */
import { invalid } from './errors.js';
import { isCoreField, packOptions, type CoreField, type Rhs, type SolveOptions, type SolveStats } from './odeint.js';
import { activeRhs, callCore, core, Scratch, solverHooks } from './wasm.js';
import { odeintWithGrad, GRAD_MODES, type GradMode, type GradSolution, type VjpPair } from './grad.js';
import { finiteArray, oneOf, positiveNumber } from './validate.js';

/** g(t, yRow) → number; the event happens where g crosses zero. */
export type EventFunction = (t: number, y: Float64Array, row: number) => number;

export interface EventSpec {
  /** A JavaScript event function of (t, row state, row index)… */
  fn?: EventFunction;
  /** …or the built-in linear form g = linear·y + time·t + offset (evaluated in the core). */
  linear?: ArrayLike<number>;
  time?: number;
  offset?: number;
  /** 'up': g goes from negative to ≥ 0 as the solver advances; 'down': positive to ≤ 0; default 'both'. */
  direction?: 'up' | 'down' | 'both';
  /** Stop the row at this event (default true). Non-terminal events are only logged. */
  terminal?: boolean;
  /** For gradients through a JavaScript event function: writes ∂g/∂y into outY, returns ∂g/∂t. */
  grad?: (t: number, y: Float64Array, outY: Float64Array, row: number) => number;
}

export interface EventOptions extends SolveOptions {
  events: EventSpec[];
  /** Stop here if no terminal event happened (default: go on until maxSteps, then MAX_STEPS). */
  tEnd?: number;
  /** Without tEnd: integrate forward (default) or backward in time. */
  reverse?: boolean;
  /** Extra output times strictly between t0 and tEnd (states are NaN after a row stopped). */
  ts?: ArrayLike<number>;
  /** Root-finding tolerance on t, relative to 1 + |t| (default 1e-12). */
  eventTol?: number;
  /** Most non-terminal events logged per call (default 1000). */
  maxEvents?: number;
  /** Make the result differentiable (float64 only): `backward` gives dL/dy0, dL/dθ and dL/dt0
   *  through the event times (implicit function theorem). f must then be a vector field or
   *  { f, vjp }. */
  grad?: GradMode;
  adjointRtol?: number;
  adjointAtol?: number;
}

export interface EventGrads { y0: Float64Array; params: Float64Array; t0: number; stats: SolveStats }

export interface EventOccurrence { row: number; event: number; t: number; y: Float64Array }

export interface EventSolution {
  /** Per row: the time it stopped (its terminal event, or tEnd). */
  t: Float64Array;
  /** Per row: the state there (batch × dim). */
  y: Float64Array;
  /** Per row: index of the terminal event that stopped it, −1 for none. */
  event: Int32Array;
  /** States at t0 and at options.ts ((1 + ts.length) × state length). */
  ys: Float64Array | Float32Array;
  /** Non-terminal events, in the order found (row by row). */
  log: EventOccurrence[];
  stats: SolveStats & { rows: SolveStats[] };
  /** With options.grad: dL/dt (per row) and dL/dy (batch × dim, at the stop states) → gradients.
   *  Rows without a terminal event contribute through y(tEnd) only. Call once. */
  backward?: (dL: { dLdt?: ArrayLike<number>; dLdy?: ArrayLike<number> }) => EventGrads;
}

const EVENT_KEYS = ['events', 'tEnd', 'reverse', 'ts', 'eventTol', 'maxEvents', 'grad', 'adjointRtol', 'adjointAtol'];

/** Packs event specs: per event [kind, direction, terminal, time, offset, w(dim)]. */
export function packEvents(raw: unknown, dim: number): { spec: Float64Array; fns: Array<EventFunction | undefined>; list: EventSpec[] } {
  if (!Array.isArray(raw) || raw.length === 0) throw invalid('events', 'must be a non-empty array of { fn | linear, direction, terminal }');
  const stride = 5 + dim;
  const spec = new Float64Array(raw.length * stride);
  const fns: Array<EventFunction | undefined> = [];
  raw.forEach((e: unknown, k) => {
    const name = `events[${k}]`;
    if (e === null || typeof e !== 'object') throw invalid(name, 'must be an object');
    const ev = e as EventSpec & Record<string, unknown>;
    for (const key of Object.keys(ev)) {
      if (!['fn', 'linear', 'time', 'offset', 'direction', 'terminal', 'grad'].includes(key)) throw invalid(`${name}.${key}`, 'is not a known event option');
    }
    const hasFn = ev.fn !== undefined, hasLin = ev.linear !== undefined;
    if (hasFn === hasLin) throw invalid(name, 'needs exactly one of fn (a function) or linear (weights)');
    if (hasFn && typeof ev.fn !== 'function') throw invalid(`${name}.fn`, 'must be a function (t, y, row) => number');
    const dir = oneOf(`${name}.direction`, ev.direction ?? 'both', ['up', 'down', 'both'] as const);
    if (ev.terminal !== undefined && typeof ev.terminal !== 'boolean') throw invalid(`${name}.terminal`, 'must be a boolean');
    const o = k * stride;
    spec[o] = hasFn ? 1 : 0;
    spec[o + 1] = dir === 'up' ? 1 : dir === 'down' ? -1 : 0;
    spec[o + 2] = ev.terminal === false ? 0 : 1;
    if (hasLin) {
      const w = finiteArray(`${name}.linear`, ev.linear);
      if (w.length !== dim) throw invalid(`${name}.linear`, `must hold ${dim} numbers (the row width), got ${w.length}`);
      spec.set(w, o + 5);
      spec[o + 3] = finiteNumber(`${name}.time`, ev.time ?? 0);
      spec[o + 4] = finiteNumber(`${name}.offset`, ev.offset ?? 0);
    } else if (ev.time !== undefined || ev.offset !== undefined) {
      throw invalid(name, 'time and offset belong to the linear form');
    }
    fns.push(hasFn ? ev.fn : undefined);
  });
  return { spec, fns, list: raw as EventSpec[] };
}

function finiteNumber(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalid(name, `must be a finite number (got ${String(v)})`);
  return v;
}

/**
 * Solves dy/dt = f(t, y) from y(t0) = y0 until a terminal event, per row of the batch: a row
 * that meets one stops there, the others go on. Returns the stop times and states, and a log of
 * non-terminal events.
 */
export function odeintEvent(f: Rhs | CoreField | VjpPair, y0: ArrayLike<number>, t0: number, options: EventOptions): EventSolution {
  if (options !== null && typeof options === 'object' && options.grad !== undefined) return odeintEventWithGrad(f, y0, t0, options);
  const x = core().exports;
  if (typeof f !== 'function' && !isCoreField(f)) throw invalid('f', 'must be a function (t, y, dydt) => void or a vector field');
  if (options === null || typeof options !== 'object') throw invalid('options', 'must be an object with events');
  const y = finiteArray('y0', y0);
  const start = finiteNumber('t0', t0);
  const field = isCoreField(f) ? f : undefined;
  const p = packOptions(options, y.length, field?.dim, EVENT_KEYS);
  if (options.onStep !== undefined) throw invalid('onStep', 'is not supported by odeintEvent yet');
  const dtype = field ? field.dtype : p.dtype;
  const f32 = dtype === 'float32';
  const n = y.length, dim = p.dim, batch = n / dim;
  const { spec, fns, list } = packEvents(options.events, dim);
  const tEnd = options.tEnd === undefined ? NaN : finiteNumber('tEnd', options.tEnd);
  if (options.reverse !== undefined && typeof options.reverse !== 'boolean') throw invalid('reverse', 'must be a boolean');
  const outTs = options.ts === undefined ? new Float64Array(0) : finiteArray('ts', options.ts, { allowEmpty: true });
  const tol = options.eventTol === undefined ? 1e-12 : positiveNumber('eventTol', options.eventTol);
  const maxEvents = options.maxEvents === undefined ? 1000 : options.maxEvents;
  if (typeof maxEvents !== 'number' || !Number.isInteger(maxEvents) || maxEvents < 0 || maxEvents > 1e6) throw invalid('maxEvents', 'must be a whole number from 0 to 1e6');
  const sc = Float64Array.of(start, tEnd, options.reverse ? -1 : 1, tol, maxEvents);
  const handle = field ? field.coreHandle() : 0;
  const rhsFn = typeof f === 'function' ? (f as (t: number, y: Float64Array | Float32Array, dy: Float64Array | Float32Array) => void) : () => { throw new Error('no JavaScript right-hand side'); };
  const rhs = activeRhs(rhsFn, f32);
  const s = new Scratch(x);
  const logStride = 3 + dim;
  try {
    const y0p = s.put(y, f32), scp = s.put(sc), tsp = s.put(outTs), optp = s.put(p.opts), atolp = s.put(p.atol), gridp = s.put(p.grid), evp = s.put(spec);
    const tp = s.alloc(batch * 8), yp = s.alloc(n * 8), ip = s.alloc(batch * 8), ysp = s.alloc((1 + outTs.length) * n * (f32 ? 4 : 8));
    const logp = s.alloc(Math.max(1, maxEvents * logStride) * 8), cntp = s.alloc(8), stp = s.alloc(3 * batch * 8), lastp = s.alloc(40);
    solverHooks.event = (t, yRow, row, which, out) => {
      if (which < 0) {
        for (let k = 0; k < fns.length; k++) {
          const g = fns[k];
          if (g !== undefined) {
            const v = g(t, yRow, row);
            if (typeof v !== 'number') throw invalid(`events[${k}].fn`, `must return a number (got ${typeof v})`);
            out[k] = v;
          }
        }
      }
    };
    void list;
    try {
      callCore((c) => c.nd_odeint_event(f32 ? 1 : 0, handle, p.method, y0p, n, dim, scp, tsp, outTs.length, optp, atolp, p.atol.length, gridp, p.grid.length, evp, fns.length, tp, yp, ip, ysp, logp, cntp, stp), rhs);
    } finally {
      solverHooks.event = undefined;
    }
    const count = s.f64(cntp, 1)[0]!;
    const logv = s.f64(logp, Math.max(1, count * logStride));
    const log: EventOccurrence[] = [];
    for (let i = 0; i < count; i++) {
      const o = i * logStride;
      log.push({ row: logv[o]!, event: logv[o + 1]!, t: logv[o + 2]!, y: logv.slice(o + 3, o + logStride) });
    }
    const st = s.f64(stp, 3 * batch);
    const rows: SolveStats[] = [];
    let nfe = 0, steps = 0, rejected = 0;
    for (let b = 0; b < batch; b++) {
      rows.push({ nfe: st[3 * b]!, steps: st[3 * b + 1]!, rejected: st[3 * b + 2]! });
      nfe += st[3 * b]!; steps += st[3 * b + 1]!; rejected += st[3 * b + 2]!;
    }
    const idx = s.f64(ip, batch);
    const event = new Int32Array(batch);
    for (let b = 0; b < batch; b++) event[b] = idx[b]!;
    const result: EventSolution = {
      t: s.f64(tp, batch).slice(),
      y: s.f64(yp, n).slice(),
      event,
      ys: f32 ? s.f32(ysp, (1 + outTs.length) * n).slice() : s.f64(ysp, (1 + outTs.length) * n).slice(),
      log,
      stats: { nfe, steps, rejected, rows, ...newtonFrom(s, lastp) },
    };
    return result;
  } finally {
    s.free();
  }
}

function odeintEventWithGrad(f: Rhs | CoreField | VjpPair, y0: ArrayLike<number>, t0: number, options: EventOptions): EventSolution {
  const mode = oneOf('grad', options.grad, GRAD_MODES);
  const isPair = typeof f === 'object' && f !== null && typeof (f as VjpPair).f === 'function' && typeof (f as VjpPair).vjp === 'function';
  if (!isCoreField(f) && !isPair) throw invalid('f', 'must be a vector field or { f, vjp } for gradients');
  if ((options.dtype ?? 'float64') !== 'float64' || (isCoreField(f) && f.dtype !== 'float64')) throw invalid('dtype', "event gradients need 'float64'");
  const { grad: _g, adjointRtol, adjointAtol, ...plain } = options;
  const fwd = odeintEvent(isPair ? (f as VjpPair).f : (f as CoreField), y0, t0, plain);
  const field = isCoreField(f) ? f : undefined;
  const dim = packOptions(plain, fwd.y.length, field?.dim, EVENT_KEYS).dim;
  const batch = fwd.t.length;
  const { spec, list } = packEvents(options.events, dim);
  const solveOpts: Record<string, unknown> = { ...plain, grad: mode, adjointRtol, adjointAtol, dim: undefined };
  for (const k of EVENT_KEYS) delete solveOpts[k];
  solveOpts.grad = mode;
  if (adjointRtol !== undefined) solveOpts.adjointRtol = adjointRtol;
  if (adjointAtol !== undefined) solveOpts.adjointAtol = adjointAtol;
  const rowAtol = (b: number) => {
    const a = plain.atol;
    if (a === undefined || typeof a === 'number') return a;
    const arr = Array.from(a);
    return arr.length === fwd.y.length ? arr.slice(b * dim, (b + 1) * dim) : arr;
  };
  // per row: the solve over [t0, t*] again (same steps up to t*), recording for its backward pass
  const y0a = finiteArray('y0', y0);
  const sols: GradSolution[] = [];
  for (let b = 0; b < batch; b++) {
    sols.push(odeintWithGrad(f as CoreField | VjpPair, y0a.slice(b * dim, (b + 1) * dim), [t0, fwd.t[b]!], { ...(solveOpts as object), atol: rowAtol(b) } as Parameters<typeof odeintWithGrad>[3]));
  }
  let used = false;
  fwd.backward = ({ dLdt, dLdy }) => {
    if (used) throw invalid('backward', 'may be called once');
    used = true;
    const dt = dLdt === undefined ? new Float64Array(batch) : finiteArray('dLdt', dLdt);
    const dy = dLdy === undefined ? new Float64Array(batch * dim) : finiteArray('dLdy', dLdy);
    if (dt.length !== batch) throw invalid('dLdt', `must hold one number per row (${batch})`);
    if (dy.length !== batch * dim) throw invalid('dLdy', `must hold batch × dim = ${batch * dim} numbers`);
    const out: EventGrads = { y0: new Float64Array(batch * dim), params: new Float64Array(0), t0: 0, stats: { nfe: 0, steps: 0, rejected: 0 } };
    const x = core().exports;
    for (let b = 0; b < batch; b++) {
      const k = fwd.event[b]!;
      let a = dy.slice(b * dim, (b + 1) * dim);
      if (k >= 0) {
        const ev = list[k]!;
        const s = new Scratch(x);
        try {
          const evp = s.put(spec), yp = s.put(sols[b]!.ys.slice(dim, 2 * dim)), dlp = s.put(a), outp = s.alloc(dim * 8);
          const rhs = activeRhs(isPair ? ((f as VjpPair).f as never) : () => { throw new Error('no JavaScript right-hand side'); }, false);
          solverHooks.event = (t, yRow, row, which, o) => {
            if (which < 0) return;
            if (typeof ev.grad !== 'function') throw invalid(`events[${which}].grad`, 'is needed to differentiate a JavaScript event function: (t, y, outY, row) => dg/dt');
            const g = ev.grad(t, yRow, o.subarray(0, dim), row);
            o[dim] = typeof g === 'number' ? g : 0;
          };
          try {
            callCore((c) => c.nd_event_cotangent(field ? field.coreHandle() : 0, evp, list.length, dim, k, b, fwd.t[b]!, yp, dt[b]!, dlp, outp), rhs);
          } finally {
            solverHooks.event = undefined;
          }
          a = s.f64(outp, dim).slice();
        } finally {
          s.free();
        }
      }
      const w = new Float64Array(2 * dim);
      w.set(a, dim);
      const g = sols[b]!.backward(w);
      out.y0.set(g.y0, b * dim);
      if (out.params.length === 0) out.params = new Float64Array(g.params.length);
      for (let i = 0; i < g.params.length; i++) out.params[i]! += g.params[i]!;
      out.t0 += g.ts[0]!;
      out.stats.nfe += g.stats.nfe; out.stats.steps += g.stats.steps; out.stats.rejected += g.stats.rejected;
    }
    return out;
  };
  return fwd;
}

function newtonFrom(s: Scratch, p: number): { newton: number; jacobians: number } {
  core().exports.nd_last_stats(p);
  const v = s.f64(p, 5);
  return { newton: v[3]!, jacobians: v[4]! };
}


