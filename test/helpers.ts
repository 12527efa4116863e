/** Shared test utilities: reference fixtures and small reference computations (test-only math). */
import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The peers' reference figures live in ../shared/reference (beside the checkout, as in CI). */
export function referencePath(name: string): string {
  const dir = process.env.NEURODE_REFERENCE ?? path.resolve(root, '..', 'shared', 'reference');
  const p = path.join(dir, name);
  if (!existsSync(p)) throw new Error(`reference fixture ${p} not found (set NEURODE_REFERENCE to the folder holding it)`);
  return p;
}

export function loadReference<T = any>(name: string): T {
  return JSON.parse(readFileSync(referencePath(name), 'utf8')) as T;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function maxRelError(truth: ArrayLike<number>, est: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < truth.length; i++) m = Math.max(m, Math.abs((truth[i]! - est[i]!) / truth[i]!));
  return m;
}

export function flat(nested: unknown): number[] {
  return (nested as unknown[]).flat(Infinity as 1) as number[];
}

/** exp(M)·v for a small dense matrix (scaling and squaring with a Taylor series). */
export function expmTimes(M: number[][], v: number[]): number[] {
  const n = M.length;
  let norm = 0;
  for (const row of M) norm = Math.max(norm, row.reduce((s, x) => s + Math.abs(x), 0));
  const squarings = Math.max(0, Math.ceil(Math.log2(norm + 1e-300)) + 1);
  const scale = 2 ** -squarings;
  const mul = (A: number[][], B: number[][]) => A.map((r) => B[0]!.map((_, j) => r.reduce((s, x, k) => s + x * B[k]![j]!, 0)));
  const I = M.map((_, i) => M.map((__, j) => (i === j ? 1 : 0)));
  const A = M.map((r) => r.map((x) => x * scale));
  let term = I;
  let E = I.map((r) => r.slice());
  for (let k = 1; k <= 30; k++) {
    term = mul(term, A).map((r) => r.map((x) => x / k));
    E = E.map((r, i) => r.map((x, j) => x + term[i]![j]!));
  }
  for (let s = 0; s < squarings; s++) E = mul(E, E);
  return E.map((r) => r.reduce((s, x, k) => s + x * v[k]!, 0));
}

/** A deterministic pseudo-random sequence for building test problems. */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

export function linspace(a: number, b: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => a + ((b - a) * i) / (n - 1));
}
