// The `neurode` command line (dist/cli.js; make test builds first): usage errors exit 2 with a
// one-line message and the usage, and a small spiral demo writes its JSON, figures and report,
// with plain progress lines when stderr is not a terminal.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const out = mkdtempSync(path.join(os.tmpdir(), 'neurode-cli-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function run(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('neurode CLI', () => {
  it('help prints the usage and exits 0', () => {
    const r = run('help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: neurode <command>/);
    expect(r.stdout).toContain('--iterations N');
  });

  it.each([
    [['frobnicate'], /^neurode: unknown command 'frobnicate'$/],
    [['demo', 'nope'], /^neurode: unknown demo 'nope'/],
    [['demo', 'spiral', '--bogus'], /^neurode: Unknown option '--bogus'/],
    [['demo', 'spiral', '--workers', 'two'], /^neurode: --workers must be a whole number/],
    [['demo', 'spiral', '--seed', '1.5'], /^neurode: --seed must be a whole number/],
    [['demo', 'spiral', '--seed', '-1'], /^neurode: Option '--seed' argument is ambiguous\./],
    [['demo', 'spiral', '--iterations', '0'], /^neurode: --iterations must be a whole number/],
    [['demo', 'mnist', '--epochs', '1.5'], /^neurode: --epochs must be a whole number/],
    [['demo', 'spiral', 'cnf'], /^neurode: demo takes one name/],
  ])('%j: one-line error, the usage, exit code 2', (args, message) => {
    const r = run(...args);
    expect(r.code).toBe(2);
    const [first, second] = r.stderr.split('\n');
    expect(first).toMatch(message);
    expect(second).toBe('usage: neurode <command> [options]');
    expect(r.stdout).toBe('');
  });

  it('demo spiral --iterations N writes metrics, figures and report.html; JSON on stdout; plain progress lines', () => {
    const r = run('demo', 'spiral', '--quick', '--iterations', '15', '--json', '--out', out);
    expect(r.code, r.stderr).toBe(0);
    const metrics = JSON.parse(r.stdout).spiral;
    expect(metrics.training.iterations).toBe(15);
    expect(metrics.training.lastLoss).toBeGreaterThan(0);
    expect(JSON.parse(readFileSync(path.join(out, 'spiral.json'), 'utf8'))).toEqual(metrics);
    for (const f of ['spiral.svg', 'spiral-loss.svg', 'spiral-nfe.svg', 'spiral-memory.svg']) {
      expect(readFileSync(path.join(out, f), 'utf8')).toMatch(/^<svg[\s\S]*<\/svg>$/);
    }
    const report = readFileSync(path.join(out, 'report.html'), 'utf8');
    expect(report).toContain('<html');
    expect(report).toContain('spiral');
    expect(r.stderr).toContain(`report: ${path.join(out, 'report.html')}`);
    // stderr is a pipe here: no carriage-return redraws
    expect(r.stderr).not.toContain('\r');
    expect(existsSync(path.join(out, 'cnf.json'))).toBe(false);
  });
});
