#!/usr/bin/env node
// A loopback-only static file server for the page. `node examples/web/serve.mjs` serves the
// repository root so the page runs as plain ES modules from source (after `make build`):
// open http://127.0.0.1:8080/examples/web/. `--dir examples/web/dist` serves a Vite build.
// No cross-origin isolation headers are needed (the pool uses no SharedArrayBuffer).
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.css': 'text/css', '.map': 'application/json', '.png': 'image/png' };

// Module workers get no import map: when serving sources, their bare `comlink` import is pointed
// at the package file here (a Vite build has none left).
const BARE_COMLINK = /(from\s*|import\s*\(\s*)(['"])comlink\2/g;

/** Starts the server on 127.0.0.1; resolves to { url, close() }. */
export function startServer(root, { port = 0, rewriteBare = true } = {}) {
  const base = path.resolve(root);
  const server = createServer(async (req, res) => {
    try {
      const u = new URL(req.url ?? '/', 'http://127.0.0.1');
      let file = path.join(base, decodeURIComponent(u.pathname));
      if (!file.startsWith(base)) throw Object.assign(new Error('outside root'), { status: 403 });
      if ((await stat(file)).isDirectory()) file = path.join(file, 'index.html');
      let body = await readFile(file);
      const type = TYPES[path.extname(file)] ?? 'application/octet-stream';
      if (rewriteBare && type === 'text/javascript') body = Buffer.from(body.toString('utf8').replace(BARE_COMLINK, '$1$2/node_modules/comlink/dist/esm/comlink.mjs$2'));
      res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    } catch (e) {
      res.writeHead(e.status ?? 404, { 'content-type': 'text/plain' });
      res.end(String(e.message));
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const { port: p } = server.address();
      resolve({ url: `http://127.0.0.1:${p}`, close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { dir: { type: 'string' }, port: { type: 'string', default: '8080' } } });
  const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  const root = values.dir ?? repo;
  const { url } = await startServer(root, { port: Number(values.port), rewriteBare: values.dir === undefined });
  console.log(`serving ${root} at ${url}${values.dir === undefined ? '/examples/web/' : '/'} (Ctrl-C to stop)`);
}
