#!/usr/bin/env node
// Bouncing ball with state reset (issue 10; torchdiffeq's examples/bouncing_ball.py idea):
// height x, velocity v, x' = v, v' = −g. Each impact (x crosses 0 downward) is a terminal event;
// the velocity is then reset to −e·v and the solve restarts from the impact. Two balls restart at
// different times, so after each reset every ball is solved from its own impact time. Prints the
// impact times against the closed form, the event-time gradients dt1/dx0 = 1/sqrt(2·g·x0) and
// dt1/dv0 = 1/g (at v0 = 0) through the event (implicit function theorem), and writes the
// trajectories to --out (default ./neurode-out/bouncing-ball.json).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { init, odeint, odeintEvent } from '../../dist/index.js';

const { values } = parseArgs({ options: { out: { type: 'string', default: 'neurode-out' }, bounces: { type: 'string', default: '6' } } });
await init();
const G = 9.81, E = 0.8;
const fall = (_t, y, dy) => { for (let i = 0; i < y.length; i += 2) { dy[i] = y[i + 1]; dy[i + 1] = -G; } };
const ground = { linear: [1, 0], direction: 'down' };

let state = Float64Array.of(1, 0, 2.5, 0); // two balls dropped from 1 m and 2.5 m
let t = [0, 0];
const bounces = [[], []];
const paths = [[], []];
for (let k = 0; k < Number(values.bounces); k++) {
  // each row restarts from its own last impact: solve the rows one by one from their own times
  for (let b = 0; b < 2; b++) {
    const y0 = state.slice(2 * b, 2 * b + 2);
    const r = odeintEvent(fall, y0, t[b], { events: [ground], rtol: 1e-10, atol: 1e-12 });
    const seg = odeint(fall, y0, Array.from({ length: 21 }, (_, i) => t[b] + ((r.t[0] - t[b]) * i) / 20), { rtol: 1e-10, atol: 1e-12 });
    for (let i = 0; i < 21; i++) paths[b].push([t[b] + ((r.t[0] - t[b]) * i) / 20, seg.ys[2 * i]]);
    t[b] = r.t[0];
    bounces[b].push(r.t[0]);
    state[2 * b] = 0;
    state[2 * b + 1] = -E * r.y[1]; // reset: reverse and damp the velocity
  }
}
// closed form: first impact sqrt(2h/g), then each flight lasts 2·e^k·v1/g
const closed = (h) => {
  const v1 = Math.sqrt(2 * G * h);
  const out = [v1 / G];
  for (let k = 1; k < bounces[0].length; k++) out.push(out[k - 1] + (2 * v1 * E ** k) / G);
  return out;
};
for (const [b, h] of [[0, 1], [1, 2.5]]) {
  const c = closed(h);
  const worst = Math.max(...bounces[b].map((x, i) => Math.abs(x - c[i])));
  console.log(`ball ${b} (from ${h} m): impacts ${bounces[b].map((x) => x.toFixed(6)).join(', ')}; max |error| vs closed form ${worst.toExponential(2)}`);
}
// gradient of the first impact time w.r.t. the drop height, through the event (IFT):
// t1 = sqrt(2·x0/g) → dt1/dx0 = 1/sqrt(2·g·x0)
const pair = { f: fall, vjp: (_t, _y, a, oy) => { oy[0] = 0; oy[1] = a[0]; } };
const r = odeintEvent(pair, [2.5, 0], 0, { events: [ground], grad: 'backprop', rtol: 1e-10, atol: 1e-12 });
const g = r.backward({ dLdt: [1] });
console.log(`dt1/dx0 = ${g.y0[0].toFixed(8)} (closed form ${(1 / Math.sqrt(2 * G * 2.5)).toFixed(8)}), dt1/dv0 = ${g.y0[1].toFixed(8)} (closed form ${(1 / G).toFixed(8)})`);
mkdirSync(values.out, { recursive: true });
const file = path.join(values.out, 'bouncing-ball.json');
writeFileSync(file, JSON.stringify({ g: G, restitution: E, impacts: bounces, paths }, null, 1));
console.log(`wrote ${file}`);
