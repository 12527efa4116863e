/** Argument checks shared by the public API. Each failure names the argument. */
import { invalid } from './errors.js';

export function isArrayLike(v: unknown): v is ArrayLike<number> {
  return (ArrayBuffer.isView(v) && !(v instanceof DataView)) || Array.isArray(v);
}

/** A non-empty array of finite numbers (copied to a Float64Array). */
export function finiteArray(name: string, v: unknown, opts: { allowEmpty?: boolean } = {}): Float64Array {
  if (!isArrayLike(v)) throw invalid(name, 'must be an array or typed array of numbers');
  if (v.length === 0 && !opts.allowEmpty) throw invalid(name, 'must not be empty');
  const out = new Float64Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (typeof x !== 'number' && typeof x !== 'bigint') throw invalid(name, `element ${i} is not a number`);
    const n = Number(x);
    if (!Number.isFinite(n)) throw invalid(name, `element ${i} is ${n} (must be finite)`);
    out[i] = n;
  }
  return out;
}

/** Output times: finite, strictly increasing or strictly decreasing. */
export function timeGrid(name: string, v: unknown): Float64Array {
  const ts = finiteArray(name, v);
  if (ts.length > 1) {
    const up = ts[1]! > ts[0]!;
    for (let i = 1; i < ts.length; i++) {
      const ok = up ? ts[i]! > ts[i - 1]! : ts[i]! < ts[i - 1]!;
      if (!ok) throw invalid(name, `must be strictly increasing or strictly decreasing (element ${i} is ${ts[i]} after ${ts[i - 1]})`);
    }
  }
  return ts;
}

export function positiveNumber(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || !(v > 0)) throw invalid(name, `must be a finite number > 0 (got ${String(v)})`);
  return v;
}

export function nonNegativeNumber(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw invalid(name, `must be a finite number >= 0 (got ${String(v)})`);
  return v;
}

export function positiveInteger(name: string, v: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw invalid(name, `must be a whole number from 1 to ${max} (got ${String(v)})`);
  return v;
}

export function oneOf<T extends string>(name: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw invalid(name, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')} (got ${typeof v === 'string' ? `'${v}'` : String(v)})`);
  }
  return v as T;
}

export function plainObject(name: string, v: unknown): Record<string, unknown> {
  if (v === undefined) return {};
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw invalid(name, 'must be an object');
  return v as Record<string, unknown>;
}
