import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { mnist, mnistFromIdx, mnistTrainCounts, parseIdx, NeurodeError } from '../ts/index.js';

/** An IDX file: magic 0x0800 + dims, big-endian sizes, then bytes. */
function idx(dims: number[], data: Uint8Array, magic = 0x0800 + dims.length): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, magic, false);
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

function writeSet(dir: string, prefix: string, n: number, opts: { gz?: boolean } = {}) {
  const px = Uint8Array.from({ length: n * 784 }, (_, i) => (i * 37) % 256);
  const lb = Uint8Array.from({ length: n }, (_, i) => (i * 3) % 10);
  const put = (name: string, b: Uint8Array) => writeFileSync(path.join(dir, opts.gz ? name + '.gz' : name), opts.gz ? gzipSync(b) : b);
  put(`${prefix}-images-idx3-ubyte`, idx([n, 28, 28], px));
  put(`${prefix}-labels-idx1-ubyte`, idx([n], lb));
  return { px, lb };
}

describe('mnist data', () => {
  it('embedded digits: 8,000 train / 2,000 test, per-digit file-order split, values in [0, 1]', async () => {
    const d = await mnist();
    expect(d.train.y.length).toBe(8000);
    expect(d.test.y.length).toBe(2000);
    expect(d.train.x.length).toBe(8000 * 784);
    expect(d.test.x.length).toBe(2000 * 784);
    let lo = Infinity, hi = -Infinity;
    for (const v of d.train.x) { if (v < lo) lo = v; if (v > hi) hi = v; }
    expect(lo).toBe(0);
    expect(hi).toBe(1);
    // every digit appears in both parts, about 80/20
    for (let k = 0; k < 10; k++) {
      const a = d.train.y.filter((v) => v === k).length, b = d.test.y.filter((v) => v === k).length;
      expect(Math.abs(a / (a + b) - 0.8)).toBeLessThan(0.002);
    }
    // deterministic: a second call gives the same bits
    const e = await mnist();
    expect(Buffer.from(e.test.x.buffer).equals(Buffer.from(d.test.x.buffer))).toBe(true);
    const peer = await mnist({ split: 'peer' });
    expect([peer.train.y.length, peer.test.y.length]).toEqual([7996, 2004]); // MODELS_PEER.md
  });

  it('train counts: floor(0.8 n) per digit, remainders to reach exactly 80%', () => {
    expect(mnistTrainCounts([10, 10, 7], 'peer')).toEqual([8, 8, 5]);
    expect(mnistTrainCounts([10, 10, 7])).toEqual([8, 8, 6]); // 0.8·27 = 21.6 → 22
  });

  it('reads standard IDX files (plain and .gz) the test writes itself', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'idx-'));
    const tr = writeSet(dir, 'train', 5);
    const te = writeSet(dir, 't10k', 3, { gz: true });
    const d = await mnistFromIdx(dir);
    expect(d.train.y).toEqual(tr.lb);
    expect(d.test.y).toEqual(te.lb);
    expect(d.train.x.length).toBe(5 * 784);
    for (let i = 0; i < 784 * 5; i += 97) expect(d.train.x[i]).toBeCloseTo(tr.px[i]! / 255, 7);
    expect(d.test.x[100]).toBeCloseTo(te.px[100]! / 255, 7);
  });

  it('bad IDX files throw NeurodeError: wrong magic, truncated, count mismatch, missing', async () => {
    const data = new Uint8Array(2 * 784);
    expect(() => parseIdx(idx([2, 28, 28], data, 0x0801), 'f', 3)).toThrow(/wrong magic/);
    expect(() => parseIdx(idx([2, 28, 28], data).subarray(0, 500), 'f', 3)).toThrow(/truncated/);
    expect(() => parseIdx(new Uint8Array(6), 'f', 3)).toThrow(/truncated/);
    const dir = mkdtempSync(path.join(tmpdir(), 'idx-bad-'));
    await expect(mnistFromIdx(dir)).rejects.toThrow(/not found/);
    writeSet(dir, 'train', 2);
    writeSet(dir, 't10k', 2);
    writeFileSync(path.join(dir, 't10k-labels-idx1-ubyte'), idx([3], new Uint8Array(3)));
    await expect(mnistFromIdx(dir)).rejects.toThrow(/3 labels for 2 images/);
    writeFileSync(path.join(dir, 't10k-images-idx3-ubyte'), idx([2, 28, 28], data).subarray(0, 100));
    const err = await mnistFromIdx(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NeurodeError);
    expect((err as NeurodeError).code).toBe('INVALID_ARGUMENT');
    expect((err as NeurodeError).message).toMatch(/t10k-images-idx3-ubyte: truncated/);
  });
});
