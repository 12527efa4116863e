/**
 * The paper's Table 1 on the embedded MNIST digits: test error, parameters and core memory of
 * MLP, ResNet, RK-Net and ODE-Net, each trained on the 8,000 training digits and scored on the
 * 2,000 held-out ones. Shared by `neurode demo mnist` and examples/mnist/run.mjs.
 */
import { mnist } from './mnist.js';
import { ODENetClassifier, type ClassifierArch, type ODENetClassifierOptions } from './odenet.js';
import type { GradMode } from './grad.js';

export type Table1Model = 'mlp' | 'resnet' | 'rknet' | 'odenet';
export const TABLE1_MODELS: readonly Table1Model[] = ['mlp', 'resnet', 'rknet', 'odenet'];

const SPECS: Record<Table1Model, { label: string; arch: ClassifierArch; grad?: GradMode; memory: string }> = {
  mlp: { label: '1-layer MLP', arch: 'mlp-baseline', memory: 'O(1)' },
  resnet: { label: 'ResNet', arch: 'resnet', memory: 'O(L)' },
  rknet: { label: 'RK-Net', arch: 'conv', grad: 'backprop', memory: 'O(L~)' },
  odenet: { label: 'ODE-Net', arch: 'conv', grad: 'adjoint', memory: 'O(1)' },
};

export interface Table1Options {
  models?: Table1Model[];
  epochs?: number;
  /** Training rows (default all 8,000) and test rows (default all 2,000). */
  trainRows?: number;
  testRows?: number;
  optimizer?: 'adam' | 'sgd';
  lr?: number;
  /** Epochs after which the learning rate is multiplied by 0.1. */
  milestones?: number[];
  batchSize?: number;
  seed?: number;
  dtype?: 'float32' | 'float64';
  /** Called after every batch and every evaluation (for progress output). */
  log?: (line: string, done: number, total: number) => void;
}

export interface Table1Row {
  model: Table1Model;
  label: string;
  params: number;
  testError: number;
  bestTestAccuracy: number;
  bestEpoch: number;
  finalTestAccuracy: number;
  epochs: number;
  wallSeconds: number;
  msPerBatch: number;
  /** Mean forward/backward NFE per ODE solve over the first 10 batches and the last epoch. */
  nfeStart?: [number, number];
  nfeEnd?: [number, number];
  /** Core bytes of one training step on a batch of 128 after training, and the part the depth stores. */
  memoryBytes: number;
  depthBytes: number;
  memoryClass: string;
  testAccuracyPerEpoch: number[];
}

const mean = (a: number[]) => (a.length ? a.reduce((s, v) => s + v, 0) / a.length : NaN);

export async function mnistTable(o: Table1Options = {}): Promise<{ rows: Table1Row[]; train: number; test: number }> {
  const data = await mnist();
  const nTrain = Math.min(o.trainRows ?? data.train.y.length, data.train.y.length);
  const nTest = Math.min(o.testRows ?? data.test.y.length, data.test.y.length);
  // the parts are ordered by digit: a subset takes evenly spaced rows so every digit is in it
  const pick = (part: { x: Float32Array; y: Uint8Array }, k: number) => {
    const n = part.y.length;
    if (k === n) return part;
    const x = new Float32Array(k * 784), y = new Uint8Array(k);
    for (let j = 0; j < k; j++) {
      const r = Math.floor((j * n) / k);
      x.set(part.x.subarray(r * 784, (r + 1) * 784), j * 784);
      y[j] = part.y[r]!;
    }
    return { x, y };
  };
  const { x: xTr, y: yTr } = pick(data.train, nTrain);
  const { x: xTe, y: yTe } = pick(data.test, nTest);
  const epochs = o.epochs ?? 10;
  const batchSize = o.batchSize ?? 128;
  const perEpoch = Math.ceil(nTrain / batchSize);
  const models = o.models ?? [...TABLE1_MODELS];
  const log = o.log ?? (() => {});
  const rows: Table1Row[] = [];
  for (const name of models) {
    const spec = SPECS[name];
    const opts: ODENetClassifierOptions = { inputShape: [1, 28, 28], classes: 10, arch: spec.arch, seed: o.seed ?? 0, dtype: o.dtype ?? 'float32' };
    if (spec.grad) opts.grad = spec.grad;
    const m = new ODENetClassifier(opts);
    const acc: number[] = [];
    const nfe: Array<[number, number]> = [];
    const t0 = Date.now();
    let evalMs = 0;
    await m.fit(xTr, yTr, {
      epochs, batchSize, seed: o.seed ?? 0, optimizer: o.optimizer ?? 'adam', ...(o.lr ? { lr: o.lr } : {}),
      lrSchedule: { milestones: o.milestones ?? [], gamma: 0.1 },
      onProgress: (p) => {
        nfe.push([p.nfeForward, p.nfeBackward]);
        const total = epochs * perEpoch;
        log(`${spec.label} epoch ${p.epoch} batch ${p.iteration}/${total} loss ${p.loss.toFixed(4)} acc ${(p.accuracy ?? 0).toFixed(3)} NFE ${p.nfeForward}/${p.nfeBackward} ${(p.elapsedMs / 1000).toFixed(0)} s`, p.iteration, total);
        if (p.iteration % perEpoch === 0) {
          const e0 = Date.now();
          const ev = m.evaluate(xTe, yTe);
          evalMs += Date.now() - e0;
          acc.push(ev.accuracy);
          log(`${spec.label} epoch ${p.epoch}: test accuracy ${(100 * ev.accuracy).toFixed(2)}% (loss ${ev.loss.toFixed(4)}, NFE ${ev.nfe.toFixed(1)})`, p.iteration, total);
        }
      },
    });
    const wall = (Date.now() - t0) / 1000;
    const step = m.lossGrad(xTr.subarray(0, Math.min(128, nTrain) * 784), yTr.subarray(0, Math.min(128, nTrain)));
    const best = acc.reduce((b, v, i) => (v > acc[b]! ? i : b), 0);
    const isOde = spec.arch === 'conv';
    rows.push({
      model: name, label: spec.label, params: m.numParams,
      testError: 1 - acc[acc.length - 1]!, bestTestAccuracy: acc[best]!, bestEpoch: best + 1, finalTestAccuracy: acc[acc.length - 1]!,
      epochs, wallSeconds: wall, msPerBatch: (wall * 1000 - evalMs) / (epochs * perEpoch),
      ...(isOde ? {
        nfeStart: [mean(nfe.slice(0, 10).map((v) => v[0])), mean(nfe.slice(0, 10).map((v) => v[1]))] as [number, number],
        nfeEnd: [mean(nfe.slice(-perEpoch).map((v) => v[0])), mean(nfe.slice(-perEpoch).map((v) => v[1]))] as [number, number],
      } : {}),
      memoryBytes: step.memoryBytes, depthBytes: step.depthBytes, memoryClass: spec.memory, testAccuracyPerEpoch: acc,
    });
    m.dispose();
  }
  return { rows, train: nTrain, test: nTest };
}

/** Table 1 as text. */
export function formatTable1(rows: Table1Row[]): string {
  const head = ['model', 'test error', 'params', 'memory (core MB)', 'depth part (MB)', 'memory', 'NFE fwd/bwd start → end', 'epochs', 'ms/batch'];
  const body = rows.map((r) => [
    r.label, `${(100 * r.testError).toFixed(2)}%`, `${(r.params / 1e6).toFixed(3)}M`, (r.memoryBytes / 2 ** 20).toFixed(1), (r.depthBytes / 2 ** 20).toFixed(2), r.memoryClass,
    r.nfeStart && r.nfeEnd ? `${r.nfeStart[0].toFixed(0)}/${r.nfeStart[1].toFixed(0)} → ${r.nfeEnd[0].toFixed(0)}/${r.nfeEnd[1].toFixed(0)}` : '–',
    String(r.epochs), r.msPerBatch.toFixed(0),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (c: string[]) => c.map((v, i) => v.padEnd(w[i]!)).join('  ');
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...body.map(line)].join('\n');
}
