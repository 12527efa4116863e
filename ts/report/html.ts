/** One self-contained report.html gathering every demo's figures and metrics. */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { DemoResult } from '../demos.js';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function writeReport(out: string, results: DemoResult[]): string {
  const sections = results.map((r) => {
    const figs = r.figures.map((f) => `<figure>${readFileSync(path.join(out, f.file), 'utf8')}<figcaption>${esc(f.caption)}</figcaption></figure>`).join('\n');
    return `<section><h2>${esc(r.title)}</h2>${figs}<pre>${esc(JSON.stringify(r.metrics, null, 1))}</pre></section>`;
  });
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>neurode report</title>
<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}figure{display:inline-block;margin:0.5em}pre{background:#f6f6f6;padding:0.6em;overflow:auto;font-size:12px}</style>
</head><body><h1>neurode report</h1><p>Generated ${new Date().toISOString()} by <code>neurode demo</code>.</p>
${sections.join('\n')}</body></html>`;
  const file = path.join(out, 'report.html');
  writeFileSync(file, html);
  return file;
}
