// Loading the core: every synchronous API throws before init(); init() is idempotent and accepts
// a path, a URL, bytes or a compiled Module. (Each vitest file runs in a fresh module context.)
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { init, isInitialized, odeint, nn, NeurodeError } from '../ts/index.js';
import { loadModule } from '../ts/wasm.js';

const wasmUrl = new URL('../pkg/neurode.wasm', import.meta.url);

describe('init', () => {
  it('synchronous APIs throw NOT_INITIALIZED before init()', () => {
    expect(isInitialized()).toBe(false);
    for (const call of [() => odeint((_t, y, dy) => dy.set(y), [1], [0, 1]), () => nn.mlp({ dims: [2, 3, 2] })]) {
      let e: unknown;
      try { call(); } catch (err) { e = err; }
      expect(e).toBeInstanceOf(NeurodeError);
      expect((e as NeurodeError).code).toBe('NOT_INITIALIZED');
      expect((e as Error).message).toMatch(/init\(\)/);
    }
  });

  it('is idempotent and accepts a path, a URL, bytes or a Module', async () => {
    const p1 = init({ wasm: fileURLToPath(wasmUrl) });
    const p2 = init();
    expect(p2).toBe(p1);
    await p1;
    expect(isInitialized()).toBe(true);
    expect(odeint((_t, y, dy) => { dy[0] = -y[0]!; }, [1], [0, 1]).ys[1]).toBeCloseTo(Math.exp(-1), 6);
    // every source form loads the same module
    const bytes = readFileSync(wasmUrl);
    const compiled = await WebAssembly.compile(bytes);
    for (const source of [fileURLToPath(wasmUrl), wasmUrl, wasmUrl.href, new Uint8Array(bytes), bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length), compiled]) {
      const m = await loadModule(source as never);
      expect(WebAssembly.Module.exports(m).some((e) => e.name === 'nd_odeint')).toBe(true);
    }
    await expect(loadModule('/nonexistent/neurode.wasm')).rejects.toThrow();
  });
});
