#!/usr/bin/env node
/** The `neurode` command line: demos that write JSON + SVG + report.html, and the benchmarks. */
import { parseArgs } from 'node:util';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { init } from './index.js';
import { DEMOS, type DemoContext, type DemoResult } from './demos.js';
import { writeReport } from './report/html.js';

const USAGE = `usage: neurode <command> [options]

commands:
  demo [${Object.keys(DEMOS).join('|')}|all]   run a demo (default: all) and write results + report.html
  bench                           run the benchmark suite (tables on stderr, JSON file)
  help                            show this help

options:
  --out DIR       output folder (default ./neurode-out)
  --workers N     worker threads for training (default: none)
  --seed S        random seed (default 0)
  --json          also print the results as JSON on stdout
  --quick         smaller runs (benchmarks and demos)
  --iterations N  training iterations of the spiral, cnf and latent demos
  --epochs N      training epochs of the mnist demo
  --only LIST     bench: only these sections (comma-separated)`;

class UsageError extends Error {}

function fail(message: string): never {
  process.stderr.write(`neurode: ${message}\n${USAGE}\n`);
  process.exit(2);
}

async function main(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        out: { type: 'string', default: 'neurode-out' },
        workers: { type: 'string' },
        seed: { type: 'string', default: '0' },
        json: { type: 'boolean', default: false },
        quick: { type: 'boolean', default: false },
        only: { type: 'string' },
        iterations: { type: 'string' },
        epochs: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    fail((e as Error).message.split('\n')[0]!); // node's parseArgs can add hint lines: keep the error to one line
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const seed = Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0) fail(`--seed must be a whole number >= 0 (got '${values.seed}')`);
  const workers = values.workers === undefined ? 0 : Number(values.workers);
  if (!Number.isInteger(workers) || workers < 0 || workers > 64) fail(`--workers must be a whole number from 0 to 64 (got '${values.workers}')`);
  const size = (name: 'iterations' | 'epochs'): number | undefined => {
    const v = values[name];
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 1e6) fail(`--${name} must be a whole number from 1 to 1000000 (got '${v}')`);
    return n;
  };
  const iterations = size('iterations'), epochs = size('epochs');
  if (command === 'bench') {
    if (rest.length) fail(`bench takes no arguments (got '${rest.join(' ')}')`);
    // The suite lives beside the package (bench/run.mjs); it imports dist/ itself.
    const benchPath = new URL('../bench/run.mjs', import.meta.url).href;
    const mod = (await import(benchPath)) as { runBench(argv: string[]): Promise<unknown> };
    await mod.runBench(['--out', values.out, ...(values.quick ? ['--quick'] : []), ...(values.json ? ['--json'] : []), ...(values.only ? ['--only', values.only] : [])]);
    return;
  }
  if (command !== 'demo') fail(`unknown command '${command}'`);
  if (rest.length > 1) fail(`demo takes one name (got '${rest.join(' ')}')`);
  const which = rest[0] ?? 'all';
  const names = which === 'all' ? Object.keys(DEMOS) : [which];
  for (const n of names) if (!(n in DEMOS)) fail(`unknown demo '${n}' (choose ${Object.keys(DEMOS).join(', ')} or all)`);
  await init();
  const out = path.resolve(values.out);
  mkdirSync(out, { recursive: true });
  const ctx: DemoContext = { out, seed, workers, quick: values.quick, iterations, epochs, progress: makeProgress() };
  const results: DemoResult[] = [];
  for (const n of names) {
    process.stderr.write(`\n== demo ${n}\n`);
    const r = await DEMOS[n]!(ctx);
    results.push(r);
    writeFileSync(path.join(out, `${n}.json`), JSON.stringify(r.metrics, null, 1));
    process.stderr.write(`${r.summary}\n`);
  }
  const report = writeReport(out, results);
  process.stderr.write(`\nreport: ${report}\n`);
  if (values.json) process.stdout.write(JSON.stringify(Object.fromEntries(results.map((r) => [r.name, r.metrics]))) + '\n');
}

/** Progress on stderr: a redrawn bar on a TTY, plain lines otherwise. */
function makeProgress(): DemoContext['progress'] {
  const tty = process.stderr.isTTY === true;
  let lastLine = 0;
  return (done, total, info) => {
    const now = Date.now();
    const frac = total > 0 ? done / total : 1;
    if (tty) {
      const width = 24;
      const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
      process.stderr.write(`\r[${bar}] ${done}/${total} ${info}`.padEnd(100) + (done >= total ? '\n' : ''));
    } else if (now - lastLine > 2000 || done >= total) {
      lastLine = now;
      process.stderr.write(`${done}/${total} ${info}\n`);
    }
  };
}

main(process.argv.slice(2)).catch((e) => {
  if (e instanceof UsageError) fail(e.message);
  process.stderr.write(`neurode: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
