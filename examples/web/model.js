// The model the page trains, behind a small adapter so that it can be swapped:
//   { name, train({ iterations, seed, pool, signal, onProgress }) → History, draw(ctx, w, h), score(), digest(), dispose() }
// Plain JavaScript on the package's public API: the browser page and the Node test
// (test/browser.test.ts, which checks the page's digest against Node's) import this same file.
import { nn, odeint, fitTrajectory, CNF, datasets, densityGrid, paramDigest } from '../../dist/index.js';

/** Training settings of the page; URL parameters override them (see main.js). */
export const DEFAULTS = { model: 'cnf', seed: 0, iterations: 300, batchTime: 10, batchSize: 20, shardSize: 5, lr: 1e-3 };

/**
 * torchdiffeq's ode_demo: learn the spiral y' = (y³)A from windows of its trajectory (RMSprop),
 * drawn as the observed spiral and the trajectory of the learned field from y0 = [2, 0].
 */
export function spiralModel(o = {}) {
  const c = { ...DEFAULTS, ...o };
  const A = [[-0.1, 2], [-2, -0.1]];
  const t = Array.from({ length: 1000 }, (_, i) => (25 * i) / 999);
  const y = odeint((_t, v, dy) => {
    const a = v[0] * v[0] * v[0], b = v[1] * v[1] * v[1];
    dy[0] = a * A[0][0] + b * A[1][0];
    dy[1] = a * A[0][1] + b * A[1][1];
  }, [2, 0], t).ys;
  // ode_demo's initialisation: weights ~ N(0, 0.1²), biases 0 (drawn in the core from the seed)
  const field = nn.mlp({ dims: [2, 50, 2], activation: 'tanh', inputCube: true, seed: c.seed, initStd: 0.1 });
  return {
    name: 'spiral ODE (torchdiffeq ode_demo), score = mean |trajectory error|',
    train: ({ iterations, seed = c.seed, pool, signal, onProgress }) => fitTrajectory(field, { t, y }, {
      iterations, batchTime: c.batchTime, batchSize: c.batchSize, shardSize: c.shardSize, lr: c.lr, seed, pool, signal, onProgress,
    }),
    draw(ctx, w, h) {
      const learned = odeint(field, [2, 0], t).ys;
      const X = (v) => w / 2 + (v * w) / 5, Y = (v) => h / 2 - (v * h) / 5;
      ctx.fillStyle = '#fff';
      ctx.fillRect(0, 0, w, h);
      ctx.fillStyle = '#999';
      for (let i = 0; i < t.length; i += 4) ctx.fillRect(X(y[2 * i]) - 1, Y(y[2 * i + 1]) - 1, 2, 2);
      ctx.strokeStyle = '#1f6feb';
      ctx.lineWidth = 2;
      ctx.beginPath();
      for (let i = 0; i < t.length; i++) {
        const [a, b] = [learned[2 * i], learned[2 * i + 1]];
        if (!(Math.abs(a) < 10 && Math.abs(b) < 10)) break; // a diverging early model
        if (i === 0) ctx.moveTo(X(a), Y(b)); else ctx.lineTo(X(a), Y(b));
      }
      ctx.stroke();
    },
    /** Mean |learned − observed| over the whole trajectory from y0 (lower is better). */
    score() {
      const learned = odeint(field, [2, 0], t).ys;
      let e = 0;
      for (let i = 0; i < learned.length; i++) e += Math.abs(learned[i] - y[i]);
      return e / learned.length;
    },
    digest: () => field.digest(),
    dispose: () => field.dispose(),
  };
}

/**
 * A 2-D continuous normalizing flow (paper Section 4) fitted by maximum likelihood to samples of
 * two circles, drawn as its density exp(logProb) over a grid (the core normalises the grid).
 */
export function cnfModel(o = {}) {
  const c = { ...DEFAULTS, ...o };
  const data = datasets.twoCircles(4096, c.seed);
  const heldOut = datasets.twoCircles(512, c.seed + 1);
  const cnf = new CNF({ dim: 2, hidden: [32, 32], seed: c.seed, dtype: 'float32' });
  const N = 48, L = 4.5; // grid of N × N cells on [−L, L]²
  const grid = new Float64Array(2 * N * N);
  for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) {
    grid[2 * (i * N + j)] = -L + (2 * L * (j + 0.5)) / N;
    grid[2 * (i * N + j) + 1] = L - (2 * L * (i + 0.5)) / N;
  }
  return {
    name: '2-D CNF on two circles, score = held-out NLL',
    train: ({ iterations, seed = c.seed, pool, signal, onProgress }) => cnf.fit(data, { iterations, batchSize: 256, lr: 3e-3, seed, pool, signal, onProgress }),
    draw(ctx, w, h) {
      const { density } = densityGrid(cnf.logProb(grid), ((2 * L) / N) ** 2);
      let max = 0;
      for (const v of density) if (v > max) max = v;
      const img = ctx.createImageData(N, N);
      for (let k = 0; k < N * N; k++) {
        const v = max > 0 ? density[k] / max : 0;
        img.data.set([255 * (1 - v), 255 * (1 - 0.6 * v), 255, 255], 4 * k);
      }
      const tmp = typeof OffscreenCanvas === 'function' ? new OffscreenCanvas(N, N) : null;
      if (tmp) {
        tmp.getContext('2d').putImageData(img, 0, 0);
        ctx.imageSmoothingEnabled = true;
        ctx.drawImage(tmp, 0, 0, w, h);
      } else {
        ctx.putImageData(img, 0, 0);
      }
    },
    /** Held-out negative log-likelihood (lower is better). */
    score() {
      const lp = cnf.logProb(heldOut);
      let s = 0;
      for (const v of lp) s -= v;
      return s / lp.length;
    },
    digest: () => paramDigest(cnf.params),
    dispose: () => cnf.dispose(),
  };
}

export const MODELS = { cnf: cnfModel, spiral: spiralModel };

export function createModel(kind, o) {
  const make = MODELS[kind];
  if (!make) throw new Error(`unknown model '${kind}' (have: ${Object.keys(MODELS).join(', ')})`);
  return make(o);
}
