// The page: loads the SIMD core, starts a WorkerPool of Web Workers and trains the model of
// model.js on it while drawing. URL parameters: model, seed, iterations, workers, autostart=1.
// State for tests and curious users: window.neurodeDemo.
import { init, WorkerPool, fnv1a } from '../../dist/index.js';
import { createModel, DEFAULTS } from './model.js';

const q = new URLSearchParams(location.search);
const num = (k) => (q.has(k) ? Number(q.get(k)) : DEFAULTS[k]);
const cfg = { model: q.get('model') ?? DEFAULTS.model, seed: num('seed'), iterations: num('iterations') };
const $ = (id) => document.getElementById(id);
const state = (window.neurodeDemo = { ready: false, running: false, done: false, iteration: 0, loss: [], progressEvents: 0, digest: null, error: null });

// A one-instruction SIMD module (i8x16.splat): validates only where wasm SIMD is supported.
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 8, 1, 6, 0, 65, 0, 253, 15, 11]);

async function main() {
  // Fetch the core ourselves so the page can report which bytes run (the test compares them with pkg/).
  const bytes = new Uint8Array(await (await fetch(new URL('../../pkg/neurode.wasm', import.meta.url))).arrayBuffer());
  await init({ wasm: bytes });
  const pool = await WorkerPool.create(q.has('workers') ? { size: Number(q.get('workers')) } : {});
  window.neurodePool = pool; // for tests and the console
  const model = createModel(cfg.model, cfg);
  Object.assign(state, { ready: true, simd: WebAssembly.validate(SIMD_PROBE), wasmBytes: bytes.length, wasmDigest: fnv1a(bytes), workers: pool.size, model: model.name, config: cfg, initialScore: model.score(), score: null });
  $('model').textContent = `${model.name} (score, lower is better: initially ${state.initialScore.toFixed(3)}): ${pool.size} Web Workers, SIMD ${state.simd ? 'on' : 'off'}, ${cfg.iterations} iterations, seed ${cfg.seed}`;
  const ctx = $('canvas').getContext('2d');
  const draw = () => model.draw(ctx, ctx.canvas.width, ctx.canvas.height);
  draw();

  let controller = null;
  const t0 = performance.now();
  const show = () => {
    $('progress').value = state.iteration / cfg.iterations;
    $('status').textContent = `iteration ${state.iteration}/${cfg.iterations}  loss ${state.loss.at(-1)?.toFixed(4) ?? '–'}  ` +
      `${((performance.now() - t0) / 1000).toFixed(1)} s${state.done ? `  done, score ${state.score.toFixed(3)}, parameter digest ${state.digest}` : ''}`;
  };
  async function start() {
    if (state.running || state.iteration >= cfg.iterations) return;
    state.running = true;
    controller = new AbortController();
    $('start').disabled = true;
    $('stop').disabled = false;
    const done = state.iteration;
    let lastDraw = 0;
    try {
      // After a stop, training resumes with the next window streams (seed + iterations done).
      await model.train({
        iterations: cfg.iterations - done, seed: cfg.seed + done, pool, signal: controller.signal,
        onProgress: (p) => {
          state.iteration = done + p.iteration;
          state.loss.push(p.loss);
          state.progressEvents += 1;
          if (performance.now() - lastDraw > 100) { draw(); lastDraw = performance.now(); }
          show();
        },
      });
      if (state.iteration >= cfg.iterations) {
        state.digest = model.digest();
        state.score = model.score();
        state.done = true;
      }
    } catch (e) {
      state.error = String(e?.stack ?? e);
      $('status').textContent = `error: ${e?.message ?? e}`;
    } finally {
      state.running = false;
      $('start').disabled = state.done;
      $('stop').disabled = true;
      draw();
      show();
    }
  }
  $('start').onclick = start;
  $('stop').onclick = () => controller?.abort();
  $('start').disabled = false;
  show();
  if (q.get('autostart') === '1') start();
}

main().catch((e) => {
  state.error = String(e?.stack ?? e);
  $('model').textContent = `failed: ${e?.message ?? e}`;
});
