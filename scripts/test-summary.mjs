#!/usr/bin/env node
// Combine the Rust (cargo test) and TypeScript (vitest) results into the closing line CI reads:
//   total: N passed, N failed
// Inputs in test-output/ (written by `make test`): cargo.log + cargo.status, vitest.json + vitest.status.
// A run that exited non-zero without any failing test (build error, a test file that failed to
// load) counts as one failure, so the total line can never hide a broken run. Exit 1 on any failure.
import { existsSync, readFileSync } from 'node:fs';

const dir = process.argv[2] ?? 'test-output';
const read = (name) => (existsSync(`${dir}/${name}`) ? readFileSync(`${dir}/${name}`, 'utf8') : null);
const status = (name) => { const s = read(name); return s === null ? null : Number(s.trim()); };

// cargo: one "test result: ok. 12 passed; 0 failed; 1 ignored; ..." line per test binary / doc-tests.
const cargo = { passed: 0, failed: 0, ignored: 0, exit: status('cargo.status') };
for (const m of (read('cargo.log') ?? '').matchAll(/^test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored/gm)) {
  cargo.passed += +m[1]; cargo.failed += +m[2]; cargo.ignored += +m[3];
}
let cargoNote = '';
if (cargo.exit === null) { cargo.failed += 1; cargoNote = ' (cargo test did not run: counted as 1 failure)'; }
else if (cargo.exit !== 0 && cargo.failed === 0) { cargo.failed += 1; cargoNote = ` (cargo test exited ${cargo.exit} with no failing test, e.g. a build error: counted as 1 failure)`; }

// vitest: JSON reporter (jest-compatible). No test files at all is 0 tests, not a failure.
const vt = { passed: 0, failed: 0, skipped: 0, exit: status('vitest.status') };
const json = read('vitest.json');
let vitestNote = '';
if (json) {
  const r = JSON.parse(json);
  vt.passed = r.numPassedTests; vt.failed = r.numFailedTests;
  vt.skipped = r.numPendingTests + (r.numTodoTests ?? 0);
  const broken = (r.testResults ?? []).filter((f) => f.status === 'failed' && !f.assertionResults?.some((a) => a.status === 'failed'));
  for (const f of broken) console.log(`vitest: file failed without a failing test (counted as 1 failure): ${f.name}\n  ${(f.message ?? '').split('\n')[0]}`);
  vt.failed += broken.length;
}
if (vt.exit === null) { vt.failed += 1; vitestNote = ' (vitest did not run: counted as 1 failure)'; }
else if (vt.exit !== 0 && vt.failed === 0) { vt.failed += 1; vitestNote = ` (vitest exited ${vt.exit} with no failing test: counted as 1 failure)`; }

console.log(`rust (cargo test): ${cargo.passed} passed, ${cargo.failed} failed, ${cargo.ignored} ignored${cargoNote}`);
console.log(`typescript (vitest): ${vt.passed} passed, ${vt.failed} failed, ${vt.skipped} skipped${vitestNote}`);
const passed = cargo.passed + vt.passed, failed = cargo.failed + vt.failed;
console.log(`total: ${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
