// End to end in a real browser (issue 8, "Browser"): Debian's chromium, headless, driven by
// playwright-core (no browser download), loads examples/web from a loopback static server —
// once as a Vite build and once as plain ES modules — and trains in a WorkerPool of Web
// Workers. Checks: the SIMD core is the one running (the page's wasm bytes are pkg/neurode.wasm,
// which holds SIMD instructions, and the engine validates SIMD), training makes progress, and
// the parameter digest after a fixed number of iterations equals Node's for the same run.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fnv1a, init } from '../dist/index.js';
// @ts-ignore plain JavaScript modules of the example (no types)
import { createModel } from '../examples/web/model.js';
// @ts-ignore
import { startServer } from '../examples/web/serve.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'test-output');
const CHROMIUM = '/usr/bin/chromium';
// TOOLCHAIN.md §6: without the networking flags chromium keeps calling the (closed) network.
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];

interface DemoState {
  ready: boolean; done: boolean; error: string | null; iteration: number; loss: number[]; progressEvents: number;
  digest: string | null; initialScore: number; score: number | null; simd: boolean; wasmBytes: number; wasmDigest: string; workers: number; model: string;
}

let browser: Browser;

/** The parameter digest Node gets for the page's run (same model module, no pool). */
async function nodeDigest(iterations: number, seed: number): Promise<string> {
  const m = createModel('cnf', { seed });
  try {
    await m.train({ iterations, seed });
    return m.digest();
  } finally {
    m.dispose();
  }
}

async function runPage(serveDir: string, pagePath: string, o: { iterations: number; seed: number; screenshot?: string; rewriteBare: boolean; then?: (page: import('playwright-core').Page) => Promise<void> }): Promise<DemoState> {
  const server = await startServer(serveDir, { rewriteBare: o.rewriteBare });
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  try {
    await page.goto(`${server.url}${pagePath}?iterations=${o.iterations}&seed=${o.seed}&workers=2&autostart=1`);
    await page.waitForFunction(() => {
      const s = (window as unknown as { neurodeDemo?: DemoState }).neurodeDemo;
      return s !== undefined && (s.done || s.error !== null);
    }, null, { timeout: 50_000 });
    const state = await page.evaluate(() => (window as unknown as { neurodeDemo: DemoState }).neurodeDemo);
    if (o.screenshot) await page.screenshot({ path: o.screenshot });
    await o.then?.(page);
    expect(errors).toEqual([]);
    return state;
  } finally {
    await page.close();
    await server.close();
  }
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/toolchain.sh --chromium (make toolchain-chromium)`);
  await init();
  mkdirSync(out, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
});

afterAll(async () => {
  await browser?.close();
});

describe('examples/web in Chromium', () => {
  it('Vite build: SIMD core, a pool of Web Workers, progress, and the digest Node computes', async () => {
    const dist = path.join(out, 'web-dist');
    await build({ root: path.join(root, 'examples/web'), configFile: path.join(root, 'examples/web/vite.config.js'), logLevel: 'error', build: { outDir: dist, emptyOutDir: true } });
    const iterations = 20, seed = 3;
    const s = await runPage(dist, '/', { iterations, seed, rewriteBare: false, screenshot: path.join(out, 'browser-web.png') });
    expect(s.error).toBeNull();
    expect(s.workers).toBe(2);

    // The bytes the page instantiated are pkg/neurode.wasm, which is full of SIMD instructions,
    // and this engine runs wasm SIMD.
    const wasm = readFileSync(path.join(root, 'pkg/neurode.wasm'));
    expect(s.wasmBytes).toBe(wasm.length);
    expect(s.wasmDigest).toBe(fnv1a(wasm));
    const check = execFileSync(process.execPath, [path.join(root, 'scripts/check-wasm.mjs'), path.join(root, 'pkg/neurode.wasm'), '--min=1000'], { encoding: 'utf8' });
    expect(Number(/(\d+) SIMD instructions/.exec(check)?.[1])).toBeGreaterThan(1000);
    expect(s.simd).toBe(true);

    // Progress: one event per iteration, and the learned trajectory got closer to the data.
    expect(s.iteration).toBe(iterations);
    expect(s.progressEvents).toBe(iterations);
    expect(s.loss).toHaveLength(iterations);
    expect(s.score!).toBeLessThan(s.initialScore);

    // Determinism across engines and worker kinds: Chromium + 2 Web Workers = Node, no pool.
    expect(s.digest).toBe(await nodeDigest(iterations, seed));
    expect(existsSync(path.join(out, 'browser-web.png'))).toBe(true);
  });

  it('plain ES modules (sources served as they are): the same digest; a crashing Web Worker is replaced', async () => {
    const iterations = 6, seed = 5;
    let crash: unknown;
    const s = await runPage(root, '/examples/web/', {
      iterations, seed, rewriteBare: true, screenshot: path.join(out, 'browser-web-plain.png'),
      // A Web Worker that throws uncaught: its call rejects with WORKER_CRASHED, it is replaced and the pool serves on.
      then: async (page) => {
        crash = await page.evaluate(async () => {
          const pool = (window as unknown as { neurodePool: { crashNextCallForTesting(h: string): void; ping(): Promise<void>; stats: object } }).neurodePool;
          pool.crashNextCallForTesting('throw');
          const code = await pool.ping().then(() => 'resolved', (e: { code?: string }) => e.code);
          await pool.ping();
          return { code, stats: pool.stats };
        });
      },
    });
    expect(crash).toEqual({ code: 'WORKER_CRASHED', stats: { workersStarted: 3, crashes: 1, retries: 0 } });
    expect(s.error).toBeNull();
    expect(s.simd).toBe(true);
    expect(s.iteration).toBe(iterations);
    expect(s.score!).toBeLessThan(s.initialScore);
    expect(s.digest).toBe(await nodeDigest(iterations, seed));
  });
});
