// The gemm accumulation-order contract (crates/neurode-core/src/tensor/gemm.rs) checked on the
// wasm SIMD kernels, bit for bit: every output element is 0 (or C) + a·b for p increasing, then
// + bias, each operation rounded separately. A plain JavaScript triple loop in that order (with
// Math.fround after every operation for float32) is the independent truth. Two linear layers
// d → h → d exercise the forward (NT), input-gradient (NN) and weight-gradient (TN) products
// with register tiles, partial tiles, and columns narrower than a vector (n = 2, 3).
import { beforeAll, describe, expect, it } from 'vitest';
import { init, nn } from '../ts/index.js';

beforeAll(async () => {
  await init();
});

type Round = (x: number) => number;

/** out[r][o] = Σ_i x[r][i]·w[o][i] (i increasing) + b[o] */
function linear(x: number[], rows: number, dIn: number, dOut: number, w: number[], b: number[], q: Round): number[] {
  const out = new Array<number>(rows * dOut);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < dOut; o++) {
      let acc = 0;
      for (let i = 0; i < dIn; i++) acc = q(acc + q(x[r * dIn + i]! * w[o * dIn + i]!));
      out[r * dOut + o] = q(acc + b[o]!);
    }
  }
  return out;
}

/** dW[o][i] = Σ_r g[r][o]·x[r][i] (r increasing), db[o] = Σ_r g[r][o], dx[r][i] = Σ_o g[r][o]·w[o][i] */
function linearBack(x: number[], g: number[], rows: number, dIn: number, dOut: number, w: number[], q: Round) {
  const dw = new Array<number>(dOut * dIn), db = new Array<number>(dOut), dx = new Array<number>(rows * dIn);
  for (let o = 0; o < dOut; o++) {
    let sb = 0;
    for (let r = 0; r < rows; r++) sb = q(sb + g[r * dOut + o]!);
    db[o] = sb;
    for (let i = 0; i < dIn; i++) {
      let acc = 0;
      for (let r = 0; r < rows; r++) acc = q(acc + q(g[r * dOut + o]! * x[r * dIn + i]!));
      dw[o * dIn + i] = acc;
    }
  }
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < dIn; i++) {
      let acc = 0;
      for (let o = 0; o < dOut; o++) acc = q(acc + q(g[r * dOut + o]! * w[o * dIn + i]!));
      dx[r * dIn + i] = acc;
    }
  }
  return { dw, db, dx };
}

describe('gemm kernels: bitwise equal to the documented accumulation order', () => {
  for (const dtype of ['float64', 'float32'] as const) {
    it(`${dtype}: forward, input and weight gradients of d → h → d linear layers`, () => {
      const q: Round = dtype === 'float32' ? Math.fround : (x) => x;
      for (const [d, h] of [[2, 64], [3, 17], [2, 5]] as const) {
        const f = nn.sequential([nn.linear(d, h), nn.linear(h, d)], { seed: 4, dtype });
        const p = Array.from(f.params);
        const w1 = p.slice(0, h * d), b1 = p.slice(h * d, h * d + h);
        const w2 = p.slice(h * d + h, h * d + h + d * h), b2 = p.slice(2 * h * d + h);
        for (const rows of [1, 7, 13, 512]) {
          // values exactly representable in float32, varied signs and magnitudes
          const y = Array.from({ length: rows * d }, (_, k) => q(((k * 7919) % 211) / 53 - 2));
          const a = Array.from({ length: rows * d }, (_, k) => q(((k * 104729) % 97) / 31 - 1.5));
          const hid = linear(y, rows, d, h, w1, b1, q);
          const want = linear(hid, rows, h, d, w2, b2, q);
          expect(Array.from(f.eval(0, y)), `eval d=${d} h=${h} rows=${rows}`).toEqual(want);
          const g2 = linearBack(hid, a, rows, h, d, w2, q);
          const g1 = linearBack(y, g2.dx, rows, d, h, w1, q);
          const got = f.vjp(0, y, a);
          expect(Array.from(got.params), `vjp params d=${d} h=${h} rows=${rows}`).toEqual([...g1.dw, ...g1.db, ...g2.dw, ...g2.db]);
          expect(Array.from(got.y), `vjp y d=${d} h=${h} rows=${rows}`).toEqual(g1.dx);
        }
        f.dispose();
      }
    });
  }

  it('square 64 → 64 products at batch 512 (full register tiles, packed panels)', () => {
    for (const dtype of ['float64', 'float32'] as const) {
      const q: Round = dtype === 'float32' ? Math.fround : (x) => x;
      const f = nn.sequential([nn.linear(64, 64)], { seed: 9, dtype });
      const p = Array.from(f.params);
      const w = p.slice(0, 4096), b = p.slice(4096);
      const rows = 512;
      const y = Array.from({ length: rows * 64 }, (_, k) => q(((k * 7919) % 211) / 53 - 2));
      const a = Array.from({ length: rows * 64 }, (_, k) => q(((k * 104729) % 97) / 31 - 1.5));
      expect(Array.from(f.eval(0, y))).toEqual(linear(y, rows, 64, 64, w, b, q));
      const g = linearBack(y, a, rows, 64, 64, w, q);
      const got = f.vjp(0, y, a);
      expect(Array.from(got.params)).toEqual([...g.dw, ...g.db]);
      expect(Array.from(got.y)).toEqual(g.dx);
      f.dispose();
    }
  });
});
