import { defineConfig } from 'vitest/config';

// `make test` runs this and sums the JSON report with cargo's results (scripts/test-summary.mjs).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    pool: 'forks',
    // reliability tests check FinalizationRegistry reclamation with global.gc()
    execArgv: ['--expose-gc'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    passWithNoTests: true,
    reporters: ['default', 'json'],
    outputFile: { json: 'test-output/vitest.json' },
  },
});
