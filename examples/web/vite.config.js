// Vite build of the page: `npx vite build examples/web` → examples/web/dist (relative URLs, so it
// can be served from any folder). Workers are ES modules (the pool's worker uses top-level await).
import { defineConfig } from 'vite';

export default defineConfig({
  base: './',
  build: { target: 'es2022', outDir: 'dist', emptyOutDir: true },
  worker: { format: 'es' },
  server: { fs: { allow: ['../..'] } },
});
